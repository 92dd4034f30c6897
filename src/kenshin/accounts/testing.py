"""Helpers for tests in every app: users with roles and TOTP, and fully signed-in clients.

Shipped in the package (as Django ships django.test) so that each app's tests and the
end-to-end tests build staff the same way the real sign-in does.
"""

from __future__ import annotations

from datetime import date

from django.contrib.auth import get_user_model
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from kenshin.accounts.models import Institution, Role, RoleAssignment
from kenshin.accounts.roles import STANDARD_ROLES

PASSWORD = "correct horse battery staple 42"  # noqa: S105  # nosec B105 - test fixture


def ensure_standard_roles() -> None:
    """Transactional tests flush the tables the migration seeded; put the roles back."""
    for spec in STANDARD_ROLES:
        Role.objects.get_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "functions": spec["functions"],
                "is_emergency": spec.get("is_emergency", False),
                "builtin": True,
            },
        )


def make_user(
    username: str,
    *,
    roles: tuple[str, ...] | list[str] = (),
    scope: tuple[str, str] | None = None,
    institution: Institution | None = None,
    password: str = PASSWORD,
    totp: bool = True,
    **fields,
):
    """A user with the given standard roles (from 2020-01-01, open-ended) and a TOTP device."""
    ensure_standard_roles()
    user = get_user_model().objects.create_user(
        username=username, password=password, institution=institution, **fields
    )
    for code in roles:
        RoleAssignment.objects.create(
            user=user,
            role=Role.objects.get(code=code),
            scope_kind=scope[0] if scope else "",
            scope_value=scope[1] if scope else "",
            valid_from=date(2020, 1, 1),
        )
    if totp:
        user.totp = TOTPDevice.objects.create(user=user, name="認証アプリ", confirmed=True)
    return user


def current_code(device: TOTPDevice) -> str:
    """The TOTP code the user's authenticator app shows now."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def signed_in_client(user, client: Client | None = None) -> Client:
    """A client signed in with password and second factor, as the real sign-in leaves it."""
    client = client or Client()
    client.force_login(user)
    device = getattr(user, "totp", None) or TOTPDevice.objects.filter(user=user).first()
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def code_for(user) -> str:
    """A code the step-up will accept now: each TOTP step is good once, and earlier wrong
    codes in the same test would otherwise throttle the device."""
    device = user.totp
    device.refresh_from_db()
    device.last_t = -1
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.save()
    return current_code(device)


def wrong_code(user) -> str:
    """A code that differs from the one the step-up would accept now."""
    right = code_for(user)
    return f"{(int(right) + 1) % 1_000_000:06d}"
