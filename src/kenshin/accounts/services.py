"""Public face of accounts: functions other apps (and the demo) may call."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model


def ensure_institution(code: str, name: str, **fields: str) -> Any:
    """Create or update one 医療機関 of this municipality (the demo and data loads use it)."""
    from kenshin.accounts.models import Institution

    institution, _ = Institution.objects.update_or_create(
        municipality_code=settings.MUNICIPALITY_CODE, code=code, defaults={"name": name, **fields}
    )
    return institution


def ensure_demo_user(
    username: str,
    display_name: str,
    roles: list[str],
    scope: tuple[str, str] | None = None,
) -> tuple[str, str]:
    """Create (or reset) a demo account; return ``(password, TOTP key in base32)``.

    Why random: no default password ever exists, even in the demo; the demo prints it once.
    The account gets a confirmed authenticator device (demo only: real users enrol their own
    phone at first sign-in) so ``kenshin demo totp USER`` can show its current code.
    A ``("clinic", code)`` scope also ties the user to that institution.
    """
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from kenshin.accounts import mfa
    from kenshin.accounts.models import Institution, Role, RoleAssignment

    user_model = get_user_model()
    password = secrets.token_urlsafe(12)
    user, _ = user_model.objects.get_or_create(username=username)
    user.display_name = display_name
    user.is_staff = False
    user.is_superuser = False
    user.is_active = True
    user.must_change_password = False
    user.temp_password_expires_at = None
    user.temp_password_used = False
    user.institution = None
    if scope and scope[0] == "clinic":
        user.institution = Institution.objects.get(
            municipality_code=settings.MUNICIPALITY_CODE, code=scope[1]
        )
    user.set_password(password)
    user.save()
    RoleAssignment.objects.filter(user=user).delete()
    for code in roles:
        RoleAssignment.objects.create(
            user=user,
            role=Role.objects.get(code=code),
            scope_kind=scope[0] if scope else "",
            scope_value=scope[1] if scope else "",
            valid_from=date(2020, 4, 1),
        )
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=mfa.TOTP_NAME, confirmed=True)
    return password, mfa.secret_base32(device).replace(" ", "")


def demo_totp_code(username: str, *, demo_usernames: Collection[str]) -> str:
    """The current code of a demo account's authenticator device (``kenshin demo totp``).

    Why so narrow: this prints a valid second factor to whoever runs the command. It works
    only in demo mode and only for the accounts the demo itself creates (``demo_usernames``,
    the demo command's list); any other name — a real administrator added to a demo
    installation — raises LookupError like an unknown one.
    """
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not getattr(settings, "DEMO_MODE", False) or username not in set(demo_usernames):
        raise LookupError(username)
    device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
    if device is None:
        raise LookupError(username)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def staff_own_atena_nos() -> dict[int, str]:
    """user_id -> the staff member's own 宛名番号, for users who are also residents.

    Why: the access review reports staff opening their own or their household's record
    (LOG-07); the audit app reads this here instead of the accounts tables.
    """
    rows = get_user_model().objects.exclude(own_atena_no="").values_list("pk", "own_atena_no")
    return {pk: atena_no.strip() for pk, atena_no in rows if atena_no.strip()}


def usernames_of(user_ids: set[int] | list[int]) -> dict[int, str]:
    """user_id -> username, for review screens that store only ids (audit.ReviewTask)."""
    ids = [i for i in user_ids if i]
    if not ids:
        return {}
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


# How many administrators the server operator may create with ``bootstrap-admin``.
BOOTSTRAP_ADMINS = 2


def bootstrap_admin(username: str, *, email: str, display_name: str = "") -> None:
    """Create one of the first two system administrators; refused once two active ones exist.

    Why two: an administrator may not grant an administrator role to an account they created
    themself (accounts.actions), and break-glass needs a second administrator; so the first
    two come from the server operator, and later ones are made by one administrator and
    granted by the other. The temporary password goes to ``email`` only (AUTH-07); the event
    is recorded with the system as actor.
    """
    from django.db import transaction

    from kenshin.accounts import actions, grants
    from kenshin.accounts.models import Role, User
    from kenshin.core import audit

    role = Role.objects.get(code="system_admin")
    holders = User.objects.filter(is_active=True, assignments__role=role).distinct()
    if sum(1 for u in holders if grants.allows(u, "accounts.manage_users")) >= BOOTSTRAP_ADMINS:
        raise ValueError(
            f"システム管理者はすでに{BOOTSTRAP_ADMINS}人以上います。"
            "利用者は画面の「利用者管理」で作ってください。"
        )
    actor = audit.Actor.system("bootstrap-admin")
    with transaction.atomic():
        try:
            user = actions.create_user(actor, username, display_name, email, "")
        except actions.ActionRefused as exc:
            raise ValueError(str(exc)) from exc
        actions.assign_role(actor, user, role)
