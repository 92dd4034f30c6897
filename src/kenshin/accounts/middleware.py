"""Session policy and the access gate: the two checks every request passes.

Why middleware and not decorators alone: a decorator forgotten on one view would open it;
the gate refuses any view that has not declared its access (core.permissions), so the
default is "no" (ACL-01), and a session that has a password but no second factor yet reaches
only the pages marked ``pre_mfa`` (AUTH-01).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from kenshin.core import permissions


class SessionPolicyMiddleware:
    """Idle and absolute session limits (SESS-01, SESS-02). Implemented in accounts.sessions."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from kenshin.accounts import sessions

        expired = sessions.enforce(request)
        if expired is not None:
            return expired
        response = self.get_response(request)
        sessions.touch(request, response)
        return response


# Views outside our code that are allowed through: Django's static file server in the demo.
_EXTERNAL_PUBLIC = ("django.contrib.staticfiles.views.serve", "django.views.static.serve")


class AccessGateMiddleware:
    """Refuse views without a declared access; enforce sign-in, second factor, password change."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        access = permissions.access_of(view)
        if access is None:
            name = f"{getattr(view, '__module__', '')}.{getattr(view, '__name__', '')}"
            if name in _EXTERNAL_PUBLIC:
                return None
            raise PermissionDenied("この画面には権限の宣言がありません")
        request.kenshin_access = access  # type: ignore[attr-defined]
        if access.kind == permissions.PUBLIC:
            return None
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if access.kind == permissions.PRE_MFA:
            return None
        if not user.is_verified():  # type: ignore[attr-defined]
            from kenshin.accounts import mfa

            return redirect(mfa.next_step_url(user))
        from kenshin.accounts import passwords

        if passwords.change_required(user):
            return redirect("accounts:password_change")
        return None
