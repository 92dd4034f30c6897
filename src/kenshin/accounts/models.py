"""Staff and clinic user accounts.

A custom user model from day one: Django cannot swap AUTH_USER_MODEL cheaply later, and the
security spine (roles, MFA, password policy) hangs off this table.
"""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """One named person (no shared accounts). Roles and MFA arrive with the security issue."""

    display_name = models.CharField("表示名", max_length=100, blank=True)

    class Meta:
        verbose_name = "利用者"
        verbose_name_plural = "利用者"

    def __str__(self) -> str:
        return self.display_name or self.username
