"""Step-up re-authentication: a fresh TOTP code inside the form of a sensitive action (ACL-05).

Why in the form and not a detour page: the code travels with the POST it authorises, so a
half-finished detour can never authorise a different action. Exports, role changes, password
resets, ending sessions and break-glass all ask for it.
"""

from __future__ import annotations

from django import forms
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from kenshin.core import audit

# What every form shows under a refused 確認コード (one wording across the system).
STEP_UP_ERROR = (
    "確認コードが正しくありません。認証アプリに表示されている最新の6桁を入力してください。"
)


class StepUpField(forms.CharField):
    """The 確認コード box every sensitive form carries."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "確認コード（認証アプリの6桁）")
        kwargs.setdefault("max_length", 8)
        kwargs.setdefault("min_length", 6)
        super().__init__(**kwargs)
        self.widget.attrs.update(
            {"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9]*"}
        )


def verify(request: HttpRequest, token: str, *, function: str) -> bool:
    """Check ``token`` against the user's confirmed TOTP device and record the outcome.

    Recovery codes do not count here: they are for getting in once, not for authorising.
    """
    user = request.user
    token = (token or "").strip()
    ok = False
    if token.isdigit():
        for device in TOTPDevice.objects.devices_for_user(user, confirmed=True):
            if device.verify_token(token):
                ok = True
                break
    audit.record(
        audit.Event.STEP_UP if ok else audit.Event.MFA_FAILED,
        request,
        function=function,
        result=audit.Result.SUCCESS if ok else audit.Result.FAILURE,
        step_up=True,
    )
    return ok
