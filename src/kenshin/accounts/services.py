"""Public face of accounts: functions other apps (and the demo) may call."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model


def ensure_demo_user(username: str, display_name: str, *, is_superuser: bool = False) -> str:
    """Create (or reset) a demo account and return its freshly generated password.

    Why random: no default password ever exists, even in the demo; the demo prints it once.
    """
    user_model = get_user_model()
    password = secrets.token_urlsafe(12)
    user, _ = user_model.objects.get_or_create(username=username)
    user.display_name = display_name
    user.is_staff = is_superuser
    user.is_superuser = is_superuser
    user.set_password(password)
    user.save()
    return password
