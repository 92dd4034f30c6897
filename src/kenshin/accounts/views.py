"""Sign-in, second factor, enrolment, logout and the own-password page (AUTH-01/05/07).

Why one generic failure message and status: a different answer for "no such user", "wrong
password" and "disabled account" tells an attacker which IDs exist (AUTH-05). The same holds
for lockout: django-axes counts failures by user name *and* address, whether the name exists
or not, so the lockout page cannot tell either.
"""

from __future__ import annotations

from typing import Any

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from kenshin.accounts import mfa, passwords, sessions
from kenshin.accounts.forms import (
    GENERIC_FAILURE,
    CodeForm,
    EnrolForm,
    LoginForm,
    PasswordChangeForm,
)
from kenshin.accounts.signals import attempted_username
from kenshin.core import audit
from kenshin.core.permissions import pre_mfa, public

NEXT_KEY = "kenshin_next"
FAILURES_KEY = "kenshin_mfa_failures"
RECOVERY_KEY = "kenshin_recovery_codes"
LOCKOUT_STATUS = 429
LOCKOUT_MESSAGE = (
    "ログインに続けて失敗したため、しばらくの間ログインできません。"
    "15分ほど待ってからやり直すか、システム管理者に連絡してください。"
)


def _safe_next(request: HttpRequest, value: str) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return ""


def _after_sign_in(request: HttpRequest) -> HttpResponse:
    """Where a fully signed-in user goes: the page they first asked for, or home."""
    return redirect(request.session.pop(NEXT_KEY, "") or settings.LOGIN_REDIRECT_URL)


def _complete(request: HttpRequest, device: Any, factor: str) -> None:
    """Second factor passed: mark the session verified under a new id, record the sign-in."""
    django_otp.login(request, device)
    old_key = request.session.session_key
    request.session.cycle_key()  # privilege changed: a new id, as at the password step
    sessions.rekey(request, old_key)
    request.session.pop(FAILURES_KEY, None)
    audit.record(audit.Event.LOGIN, request, second_factor=factor)


@public("ログイン画面（利用者IDとパスワード）")
@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_authenticated and request.method == "GET":
        if user.is_verified():  # type: ignore[attr-defined]
            return redirect(settings.LOGIN_REDIRECT_URL)
        return redirect(mfa.next_step_url(user))
    form = LoginForm(request.POST or None)
    failed = False
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"]
        user = authenticate(request, username=username, password=form.cleaned_data["password"])
        if user is not None and not (
            passwords.temporary_usable(user) and passwords.mark_temporary_used(user)
        ):
            # An expired or already-used temporary password fails like a wrong one, and
            # counts toward the lockout like one. Spending it is one conditional UPDATE
            # before the session exists, so of two simultaneous sign-ins only one gets in.
            user_login_failed.send(
                sender=__name__, credentials={"username": username}, request=request
            )
            user = None
        if user is not None:
            next_url = _safe_next(request, request.POST.get("next", ""))
            login(request, user)  # new session id (SESS-02)
            if next_url:
                request.session[NEXT_KEY] = next_url
            return redirect(mfa.next_step_url(user))
        failed = True
    elif request.method == "POST":
        failed = True
    return render(
        request,
        "accounts/auth/login.html",
        {
            "form": form,
            "error": GENERIC_FAILURE if failed else "",
            "next": _safe_next(request, request.POST.get("next") or request.GET.get("next", "")),
        },
    )


def lockout(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the same page and status whether the user name exists or not.

    axes calls it as ``(request, original_response, credentials)`` or, in older versions,
    ``(request, credentials)``; the credentials are the last dict given.
    """
    credentials = next(
        (a for a in reversed(args) if isinstance(a, dict)), kwargs.get("credentials")
    )
    if credentials is None:
        credentials = {"username": request.POST.get("username", "")}
    audit.record(
        audit.Event.LOCKOUT,
        audit.Actor(None, attempted_username(credentials), address=audit.client_address(request)),
        result=audit.Result.DENIED,
    )
    return render(
        request,
        "accounts/auth/login.html",
        {"form": LoginForm(), "error": GENERIC_FAILURE, "lockout": LOCKOUT_MESSAGE, "next": ""},
        status=LOCKOUT_STATUS,
    )


def _mfa_failed(request: HttpRequest, factor: str) -> HttpResponse | None:
    """Record a wrong code; after MAX_FAILURES in this session, end it (back to the password)."""
    audit.record(audit.Event.MFA_FAILED, request, result=audit.Result.FAILURE, second_factor=factor)
    failures = int(request.session.get(FAILURES_KEY, 0)) + 1
    request.session[FAILURES_KEY] = failures
    if failures >= mfa.MAX_FAILURES:
        audit.record(audit.Event.SESSION_ENDED, request, reason="mfa_failures")
        logout(request)
        messages.error(request, "確認コードを続けて誤ったため、ログインをやり直してください。")
        return redirect(settings.LOGIN_URL)
    return None


@pre_mfa("ログイン時の確認コード入力（認証アプリまたは回復コード）")
@sensitive_post_parameters("otp_token")
@never_cache
@require_http_methods(["GET", "POST"])
def verify_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_verified():  # type: ignore[attr-defined]
        return _after_sign_in(request)
    if not mfa.has_totp(user):
        return redirect("accounts:mfa_enrol")
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        device, factor = mfa.verify(user, form.cleaned_data["otp_token"])
        if device is not None:
            _complete(request, device, factor)
            if factor == "recovery":
                left = mfa.recovery_codes_left(user)
                messages.warning(
                    request,
                    f"回復コードでログインしました（残り {left} 個）。"
                    "認証アプリを使えない場合はシステム管理者に連絡してください。",
                )
            return _after_sign_in(request)
        ended = _mfa_failed(request, factor)
        if ended is not None:
            return ended
        error = "確認コードが正しくありません。新しいコードを入力してください。"
    elif request.method == "POST":
        error = "確認コードを入力してください。"
    return render(request, "accounts/auth/verify.html", {"form": form, "error": error})


@pre_mfa("初回ログイン時の認証アプリ登録")
@sensitive_post_parameters("otp_token")
@never_cache
@require_http_methods(["GET", "POST"])
def enrol_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if mfa.has_totp(user):
        # A password alone never adds a device: changing the app is an administrator's job.
        if user.is_verified():  # type: ignore[attr-defined]
            return _after_sign_in(request)
        return redirect("accounts:mfa_verify")
    device = mfa.pending_device(request.session, user)
    form = EnrolForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        if mfa.confirm_enrolment(request.session, device, form.cleaned_data["otp_token"]):
            audit.record(audit.Event.MFA_ENROLLED, request)
            _complete(request, device, "enrolment")
            request.session[RECOVERY_KEY] = mfa.issue_recovery_codes(user)
            return redirect("accounts:recovery_codes")
        ended = _mfa_failed(request, "enrolment")
        if ended is not None:
            return ended
        error = "確認コードが正しくありません。認証アプリの新しいコードを入力してください。"
    return render(
        request,
        "accounts/auth/enrol.html",
        {
            "form": form,
            "error": error,
            "qr_svg": mfa.qr_svg(device),
            "secret": mfa.secret_base32(device),
        },
    )


@pre_mfa("登録直後の回復コード表示（一度だけ）")
@never_cache
@require_http_methods(["GET"])
def recovery_codes_view(request: HttpRequest) -> HttpResponse:
    """Show the new recovery codes once; a reload shows nothing (they are not kept)."""
    if not request.user.is_verified():  # type: ignore[attr-defined]
        return redirect(mfa.next_step_url(request.user))
    codes = request.session.pop(RECOVERY_KEY, None)
    return render(request, "accounts/auth/recovery.html", {"codes": codes or []})


@pre_mfa("ログアウト（確認コード入力前でもできるように）")
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    audit.record(audit.Event.LOGOUT, request)
    logout(request)  # flushes the server-side session; the signal drops the register row
    messages.info(request, "ログアウトしました。")
    return redirect(settings.LOGOUT_REDIRECT_URL)


# pre_mfa so the gate's "change your password" redirect does not loop; the view itself
# insists on the second factor, so a password-only session still reaches nothing here.
@pre_mfa("自分のパスワード変更（変更が必要なときも開けるように）")
@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@never_cache
@require_http_methods(["GET", "POST"])
def password_change_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_verified():  # type: ignore[attr-defined]
        return redirect(mfa.next_step_url(user))
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        passwords.record_change(user)
        old_key = request.session.session_key
        update_session_auth_hash(request, user)  # keeps this session, under a new id
        sessions.rekey(request, old_key)
        sessions.end_all(user, keep=request.session.session_key)
        audit.record(audit.Event.PASSWORD_CHANGE, request, kind="own")
        messages.success(request, "パスワードを変更しました。")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(
        request,
        "accounts/auth/password_change.html",
        {"form": form, "required": passwords.change_required(user)},
    )
