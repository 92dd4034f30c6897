"""The second factor: TOTP enrolment, verification and recovery codes (AUTH-01).

Why TOTP (an authenticator app) for everyone: a stolen or guessed password alone must open
nothing. A session with only the password reaches the second-factor page, enrolment and logout
(the gate in accounts.middleware); everything else redirects to ``next_step_url``.

Recovery codes: ten single-use codes shown once at enrolment, for the day the phone is lost.
They get the user in once; they do not authorise sensitive actions (accounts.stepup).

Failures: django-otp throttles each device (1, 2, 4, 8 … seconds between tries after a wrong
code, kept across sessions), every failure is an audit event, and after MAX_FAILURES wrong
codes in one session the session is ended so the password must be entered again — which counts
toward the axes lockout if it is wrong.
"""

from __future__ import annotations

from typing import Any

import segno
from django.db import transaction
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

TOTP_NAME = "認証アプリ"
RECOVERY_NAME = "回復コード"
RECOVERY_COUNT = 10
MAX_FAILURES = 5


def has_totp(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def next_step_url(user: Any) -> str:
    """Where a password-only session must go: the code page, or enrolment on first sign-in."""
    if has_totp(user):
        return reverse("accounts:mfa_verify")
    return reverse("accounts:mfa_enrol")


# The id of the device this session is enrolling (session data, server-side).
PENDING_KEY = "kenshin_pending_totp"


def pending_device(session: Any, user: Any) -> TOTPDevice:
    """The unconfirmed device this session is enrolling (the same one across reloads).

    Why per session: the secret on the enrolment page is what the real user's phone will
    hold. If every password-only session saw the same pending device, someone who knows only
    the password could read the secret and, once the real user confirms it, produce valid
    codes for ever. So a session that starts enrolment gets a fresh device and every other
    unconfirmed device of the user is deleted (a secret read elsewhere dies with it); only the
    device whose id this session holds can be confirmed here.
    """
    device_id = session.get(PENDING_KEY)
    if device_id is not None:
        device = TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()
        if device is not None:
            return device
    return start_enrolment(session, user)


def start_enrolment(session: Any, user: Any) -> TOTPDevice:
    """A fresh unconfirmed device for this session; the user's other pending ones go."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    session[PENDING_KEY] = device.pk
    return device


def secret_base32(device: TOTPDevice) -> str:
    """The key as the authenticator apps type it in, in groups of four."""
    from base64 import b32encode

    raw = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URI as inline SVG markup: no script, no style attribute (CSP)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=5, title="認証アプリ登録用のQRコード"
    )


def confirm_enrolment(session: Any, device: TOTPDevice, token: str) -> bool:
    """Confirm this session's pending device with a code from the app; other pending go.

    Refused when ``device`` is not the one this session enrolled, when it was deleted since
    (another session started enrolment), or when the user already has a confirmed device.
    """
    token = (token or "").strip().replace(" ", "")
    if not (token.isdigit() and len(token) == device.digits):
        return False
    if session.get(PENDING_KEY) != device.pk:
        return False
    with transaction.atomic():
        locked = (
            TOTPDevice.objects.select_for_update()
            .filter(pk=device.pk, user_id=device.user_id, confirmed=False)
            .first()
        )
        if locked is None or has_totp(locked.user):
            return False
        if not locked.verify_token(token):
            return False
        locked.confirmed = True
        locked.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user_id=locked.user_id, confirmed=False).delete()
    device.confirmed = True
    session.pop(PENDING_KEY, None)
    return True


def issue_recovery_codes(user: Any) -> list[str]:
    """Replace the user's recovery codes with ten new ones and return them (shown once)."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(
            user=user, name=RECOVERY_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(RECOVERY_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def verify(user: Any, token: str) -> tuple[Any | None, str]:
    """Check a code from the sign-in page: ``(device, "totp"|"recovery")`` or ``(None, kind)``.

    Six digits go to the authenticator device, anything else to the recovery codes, so a
    recovery code never counts as a failed TOTP (which would throttle the app's device).
    """
    token = (token or "").strip().replace(" ", "").replace("-", "")
    if token.isdigit() and len(token) == 6:
        with transaction.atomic():
            for device in TOTPDevice.objects.devices_for_user(user, confirmed=True):
                device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
                if device.verify_token(token):
                    return device, "totp"
        return None, "totp"
    token = token.lower()
    with transaction.atomic():
        for device in StaticDevice.objects.devices_for_user(user, confirmed=True):
            device = StaticDevice.objects.select_for_update().get(pk=device.pk)
            if device.verify_token(token):
                return device, "recovery"
    return None, "recovery"


def recovery_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def reset_devices(user: Any) -> None:
    """Lost phone: remove the user's authenticator and recovery codes; the next sign-in enrols.

    For the administrator's screen (with step-up); the user's sessions should end too.
    """
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
