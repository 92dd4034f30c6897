"""Sign-in events wired to the session register and the audit log (connected in apps.ready).

Why signals: Django's ``login``/``logout`` and ``authenticate`` (also called by axes and by the
test client's ``force_login``) announce themselves here, so no path into a session can skip
the register that ``end_all`` relies on.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from kenshin.core import audit, clock

UNKNOWN_USER = "(不明)"


@receiver(user_logged_in, dispatch_uid="kenshin.accounts.session_start")
def register_session(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from kenshin.accounts import sessions

    if request is not None and hasattr(request, "session"):
        sessions.start(request, user)


@receiver(user_logged_out, dispatch_uid="kenshin.accounts.session_forget")
def forget_session(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from kenshin.accounts import sessions

    if request is not None and hasattr(request, "session"):
        sessions.forget(request.session.session_key)


def attempted_username(credentials: dict[str, Any] | None) -> str:
    """The user name tried, only if such an account exists: a mistyped password in the user
    name box must not end up in the log."""
    name = str((credentials or {}).get("username") or "")[:150]
    if name and get_user_model().objects.filter(username=name).exists():
        return name
    return UNKNOWN_USER


@receiver(user_login_failed, dispatch_uid="kenshin.accounts.login_failed")
def record_login_failed(sender: Any, credentials: Any, request: Any = None, **kwargs: Any) -> None:
    address = audit.client_address(request) if request is not None else ""
    audit.record(
        audit.Event.LOGIN_FAILED,
        audit.Actor(None, attempted_username(credentials), address=address),
        result=audit.Result.FAILURE,
    )


@receiver(pre_save, sender="accounts.User", dispatch_uid="kenshin.accounts.password_stamp")
def stamp_password_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Every save that sets a new password records when (expiry counts from it).

    ``create_user`` assigns the hash directly, so a new account is stamped when first saved.
    """
    new_account = instance._state.adding and instance.password_changed_at is None
    if getattr(instance, "_password", None) is not None or new_account:
        instance.password_changed_at = clock.now()


@receiver(post_save, sender="accounts.User", dispatch_uid="kenshin.accounts.disable_ends")
def end_sessions_of_disabled(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Disabling an account ends its sessions at once, not at their next expiry (SESS-03)."""
    if not instance.is_active and not kwargs.get("raw"):
        from kenshin.accounts import sessions

        sessions.end_all(instance)
