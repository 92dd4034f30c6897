"""Session limits and the register of who is signed in where (SESS-01, SESS-02, SESS-03).

Why server-side limits: a shared counter terminal left signed in is the incident this guards
against. The browser cookie could be kept forever; the limits are in the session row on the
server, and ending a session deletes that row, so an old cookie is worth nothing.

* idle: 30 minutes, or 15 after a page that showed 個人番号 (the limit for the *next* request
  is decided by the page just shown, which the gate recorded in ``request.kenshin_access``);
* absolute: 12 hours after sign-in, however active;
* ``end_all``: logout, disabling an account and an administrator end every session.

Time comes from core.clock so tests and rehearsals can move it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from kenshin.core import audit, clock

LOGIN_AT = "kenshin_login_at"
SEEN_AT = "kenshin_seen_at"
IDLE_LIMIT = "kenshin_idle_limit"
# Write "last seen" at most this often: a page view should not always cost a session write.
TOUCH_EVERY_SECONDS = 60

EXPIRED_MESSAGE = {
    "idle": "一定時間操作がなかったため、ログアウトしました。もう一度ログインしてください。",
    "absolute": (
        "ログインから12時間が過ぎたため、ログアウトしました。もう一度ログインしてください。"
    ),
    "unknown": "セッションの有効期限が切れました。もう一度ログインしてください。",
}


def _now() -> float:
    return clock.now().timestamp()


def start(request: HttpRequest, user: Any) -> None:
    """At sign-in (signal): stamp the session and register it for ``end_all``."""
    from kenshin.accounts.models import UserSession

    now = clock.now()
    session = request.session
    session[LOGIN_AT] = now.timestamp()
    session[SEEN_AT] = now.timestamp()
    session[IDLE_LIMIT] = settings.SESSION_IDLE_SECONDS
    if session.session_key is None:
        session.save()
    UserSession.objects.update_or_create(
        session_key=session.session_key,
        defaults={
            "user": user,
            "created_at": now,
            "last_seen_at": now,
            "address": audit.client_address(request),
            "user_agent": str(request.META.get("HTTP_USER_AGENT", ""))[:200],
        },
    )


def rekey(request: HttpRequest, old_key: str | None) -> None:
    """After ``cycle_key`` (second factor passed): move the register row to the new key."""
    from kenshin.accounts.models import UserSession

    if old_key and request.session.session_key:
        UserSession.objects.filter(session_key=old_key).update(
            session_key=request.session.session_key
        )


def forget(session_key: str | None) -> None:
    """At logout (signal): the row goes with the session."""
    from kenshin.accounts.models import UserSession

    if session_key:
        UserSession.objects.filter(session_key=session_key).delete()


def expiry_reason(request: HttpRequest) -> str | None:
    """ "idle", "absolute", "unknown" (no stamps: not made by our sign-in) or None (still good)."""
    session = request.session
    login_at = session.get(LOGIN_AT)
    seen_at = session.get(SEEN_AT)
    if login_at is None or seen_at is None:
        return "unknown"
    now = _now()
    if now - float(login_at) > settings.SESSION_ABSOLUTE_SECONDS:
        return "absolute"
    idle = int(session.get(IDLE_LIMIT, settings.SESSION_IDLE_SECONDS))
    if now - float(seen_at) > idle:
        return "idle"
    return None


def enforce(request: HttpRequest) -> HttpResponse | None:
    """Before the view: end an expired session on the server and send the user to sign in."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    reason = expiry_reason(request)
    if reason is None:
        return None
    audit.record(audit.Event.SESSION_ENDED, request, reason=reason)
    logout(request)  # flushes the session row; the logout signal drops the register row
    messages.warning(request, EXPIRED_MESSAGE[reason])
    return redirect(settings.LOGIN_URL)


def touch(request: HttpRequest, response: HttpResponse) -> None:
    """After the view: remember when the user was last seen and the idle limit for next time."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    session = request.session
    if session.get(LOGIN_AT) is None:
        return
    access = getattr(request, "kenshin_access", None)
    limit = (
        settings.SESSION_IDLE_SECONDS_MYNUMBER
        if access is not None and access.shows_mynumber
        else settings.SESSION_IDLE_SECONDS
    )
    now = _now()
    stale = now - float(session.get(SEEN_AT, 0)) >= TOUCH_EVERY_SECONDS
    if session.get(IDLE_LIMIT) != limit:
        session[IDLE_LIMIT] = limit
    if stale:
        session[SEEN_AT] = now
        from kenshin.accounts.models import UserSession

        UserSession.objects.filter(session_key=session.session_key).update(last_seen_at=clock.now())


def end_all(
    user: Any, *, actor: Any = None, keep: str | None = None, record_empty: bool = True
) -> int:
    """Destroy every server-side session of ``user`` (except ``keep``); return how many.

    Called at account disable (signals), by administrators, on forced password change and
    reset, and on the user's own password change (``keep`` = the session they are using).
    An administrator's call is recorded even when nothing was open (they did act), unless
    ``record_empty`` is False (a reset of a new account: nothing to end, nothing to record).
    """
    from kenshin.accounts.models import UserSession

    rows = UserSession.objects.filter(user=user)
    if keep:
        rows = rows.exclude(session_key=keep)
    keys = list(rows.values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=keys).delete()
    rows.delete()
    if keys or (actor is not None and record_empty):
        audit.record(
            audit.Event.SESSION_ENDED,
            actor,
            audit.Subject.user(user.pk),
            reason="ended_by_system" if actor is None else "ended",
            count=len(keys),
        )
    return len(keys)
