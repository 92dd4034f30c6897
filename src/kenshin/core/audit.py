"""The audit API every feature calls: ``audit.record(event, actor, subject, purpose, **detail)``.

Why the API lives in core and the table in the ``audit`` app: every app (and core itself) must
be able to record, while the hash-chained storage is one app's business. ``record`` builds a
clean :class:`Entry` — who, from where, acting in which roles, on which resident (宛名番号 only,
never the data), why, with what result — and hands it to the writer named by the setting
``KENSHIN_AUDIT_WRITER`` (``kenshin.audit.services.append``). There is no fallback: if the
writer cannot be loaded, recording fails and so does the action (fail closed, LOG-01).

Logged text is neutralised here, once: control characters become visible escapes (LOG-05),
anything that looks like a valid 個人番号 is masked (MN-03), and overlong values are cut.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string

from kenshin.core import clock, mynumber


class Event(models.TextChoices):
    """What happened. Stored as the value; labels are for the review screens."""

    LOGIN = "login", "ログイン"
    LOGOUT = "logout", "ログアウト"
    LOGIN_FAILED = "login_failed", "ログイン失敗"
    LOCKOUT = "lockout", "ロックアウト"
    MFA_FAILED = "mfa_failed", "確認コード誤り"
    MFA_ENROLLED = "mfa_enrolled", "二要素認証の登録"
    STEP_UP = "step_up", "再認証"
    SESSION_ENDED = "session_ended", "セッション終了"
    ACCESS_DENIED = "access_denied", "権限なし"
    SEARCH = "search", "検索"
    VIEW = "view", "閲覧"
    CREATE = "create", "登録"
    UPDATE = "update", "更新"
    DELETE = "delete", "削除"
    PRINT = "print", "印刷"
    EXPORT = "export", "出力"
    IMPORT = "import", "取込"
    PERMISSION_CHANGE = "permission_change", "権限変更"
    PASSWORD_CHANGE = "password_change", "パスワード変更"
    BREAK_GLASS = "break_glass", "緊急アクセス"


class Result(models.TextChoices):
    SUCCESS = "success", "成功"
    FAILURE = "failure", "失敗"
    DENIED = "denied", "拒否"


@dataclass(frozen=True)
class Actor:
    """Who acted. ``user_id`` None means the system itself (a job, a feed, the demo)."""

    user_id: int | None
    username: str
    roles: str = ""
    address: str = ""
    break_glass: bool = False

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(None, name)


@dataclass(frozen=True)
class Subject:
    """What was acted on: a resident (by 宛名番号) or another object (kind + reference)."""

    kind: str
    ref: str

    @classmethod
    def resident(cls, atena_no: str) -> Subject:
        return cls("resident", atena_no)

    @classmethod
    def user(cls, user_id: int) -> Subject:
        """A staff account, named by id (never by name: staff are people too)."""
        return cls("user", str(user_id))


@dataclass(frozen=True)
class Entry:
    """One audit event, cleaned, as the writer stores it."""

    at: datetime
    event: str
    actor: Actor
    subject_kind: str
    subject_ref: str
    purpose: str
    function: str
    result: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def atena_no(self) -> str:
        return self.subject_ref if self.subject_kind == "resident" else ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 500


def neutralise(value: str) -> str:
    """Make one logged string safe to show: escape control characters, mask 個人番号, cut length.

    Why escapes rather than deletion: a reviewer must see that something odd was sent
    (``\\x0a`` in a user name is itself a finding), without it breaking lines or columns.
    """
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    text = mynumber.mask_in_text(text)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    return text


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 3:
        return neutralise(repr(value))
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, Mapping):
        return {neutralise(str(k)): _clean(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in list(value)[:50]]
    return neutralise(str(value))


def client_address(request: Any) -> str:
    """The client's address as the WSGI server saw it.

    Behind a reverse proxy the server (gunicorn ``--forwarded-allow-ips``) must put the real
    client into REMOTE_ADDR; headers are not trusted here (docs/security.md).
    """
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


def actor_of(who: Any) -> Actor:
    """An :class:`Actor` from a request, a user, an Actor, a name for the system (a job's
    requester, ``"demo"``, ``"cli"``), or None (the system)."""
    if isinstance(who, Actor):
        return who
    if who is None:
        return Actor.system()
    if isinstance(who, str):
        return Actor.system(neutralise(who))
    request = who if hasattr(who, "META") else None
    user = getattr(who, "user", None) if request is not None else who
    address = client_address(request) if request is not None else ""
    if user is None or not getattr(user, "is_authenticated", False):
        return Actor(None, "anonymous", address=address)
    roles_of = getattr(user, "audit_roles", None)
    glass_of = getattr(user, "under_break_glass", None)
    return Actor(
        user_id=user.pk,
        username=neutralise(user.get_username()),
        roles=neutralise(roles_of()) if callable(roles_of) else "",
        address=address,
        break_glass=bool(glass_of()) if callable(glass_of) else False,
    )


def _subject(subject: Subject | str | None) -> tuple[str, str]:
    if subject is None:
        return "", ""
    if isinstance(subject, Subject):
        return neutralise(subject.kind)[:30], neutralise(subject.ref)[:100]
    return "resident", neutralise(str(subject))[:100]


@lru_cache(maxsize=1)
def _writer(path: str):
    return import_string(path)


def record(
    event: str,
    actor: Any,
    subject: Subject | str | None = None,
    purpose: str = "",
    *,
    function: str = "",
    result: str = Result.SUCCESS,
    **detail: Any,
) -> Entry:
    """Record one audit event in the current transaction and return what was stored.

    ``actor`` is the request (preferred: it carries the address and roles), a user, an
    :class:`Actor`, or None for the system. ``subject`` is a 宛名番号 (str) or a :class:`Subject`.
    ``detail`` must never carry personal data itself (names, addresses, birth dates, results):
    reviewers need who/when/which/why, not a second copy of the record.
    """
    kind, ref = _subject(subject)
    entry = Entry(
        at=clock.now(),
        event=str(event),
        actor=actor_of(actor),
        subject_kind=kind,
        subject_ref=ref,
        purpose=neutralise(str(purpose or ""))[:40],
        function=neutralise(str(function or ""))[:80],
        result=str(result),
        detail=_clean(detail),
    )
    _writer(settings.KENSHIN_AUDIT_WRITER)(entry)
    return entry
