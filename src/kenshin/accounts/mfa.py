"""PLACEHOLDER — being implemented (TOTP enrolment and verification)."""

from django.urls import reverse


def next_step_url(user) -> str:
    return reverse("accounts:login")
