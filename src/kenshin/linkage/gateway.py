"""The door of the 番号連携サーバ: who is calling, for which 事務, and the access log.

Every call passes :func:`authenticate` first. It checks the system's credential
(``kl_<prefix>_<secret>``: the prefix finds the row, the secret is compared as a SHA-256 hash in
constant time), that the credential is neither revoked nor expired, that the system is active,
and that the 事務 code named is known (rules.JIMU) and allowed for that system. A refusal is
written to the LinkageEvent table before contract.Refused is raised — a refused call is as
interesting to the access review as an accepted one. The token itself is never written.

Why a short cache: a look-up by 個人番号 must cost well under a millisecond (bench target
5,000/s in-process, issue 4). Reading the credential and its system for every call would double
the queries. An accepted credential is remembered for ``CACHE_SECONDS``, keyed by the hash of
the whole token (so a wrong secret never hits the cache). Revoking in this process drops the
entry at once; another process (a second ``linkage serve`` worker) notices within
``CACHE_SECONDS``. Expiry is honoured exactly: an entry never outlives its credential.

Events are written only through :func:`insert_event` (one INSERT on the ``linkage``
connection) or :func:`insert_events` (a batch), both building their rows with
:func:`event_values`, which passes the actor through :func:`clean_actor`. Inside an action
they share the action's transaction (actions.py); for reads and refusals they commit on their
own. On PostgreSQL such a stand-alone log entry commits with ``synchronous_commit = off`` for
that one transaction: waiting for the WAL flush would cap look-ups at about 1,000/s on one
connection, and a crash can lose at most the last fraction of a second of *read* log entries —
the same guarantee SQLite gives in WAL mode with ``synchronous=NORMAL`` (settings).
Registrations, merges, credential changes and key rotations (and their events, written with
``durable=True``) always commit durably: a 統合宛名番号 that was handed
out must never be issued again after a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

from django.db import connections

from kenshin.core import clock
from kenshin.core import mynumber as core_mynumber
from kenshin.core.bulk import bulk_insert
from kenshin.linkage import rules
from kenshin.linkage.contract import Refused
from kenshin.linkage.models import DB, LinkageEvent, SystemCredential

CACHE_SECONDS = 5.0
# The literal first part of every token (not a secret).
TOKEN_PREFIX = "kl"  # noqa: S105  # nosec B105
_TOKEN = re.compile(r"kl_([0-9a-f]{8,16})_([A-Za-z0-9_\-]{16,128})")
_ACTOR_MAX = LinkageEvent._meta.get_field("actor").max_length or 150


@dataclass(frozen=True)
class Caller:
    """An authenticated call: the system, its 事務 and who acts. Actions and reads take this."""

    system_id: int
    system_code: str
    jimu: str
    actor: str
    credential: str  # the credential's prefix (not secret): which credential was used


@dataclass(frozen=True)
class _Cached:
    until: float
    prefix: str
    system_id: int
    system_code: str
    jimu_codes: frozenset[str]


_cache: dict[str, _Cached] = {}
_cache_lock = threading.Lock()


def secret_hash(secret: str) -> str:
    """What SystemCredential.secret_hash stores: SHA-256 of the secret part, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token, else None."""
    m = _TOKEN.fullmatch(token or "")
    return (m.group(1), m.group(2)) if m else None


def forget(prefix: str) -> None:
    """Drop every cached authentication of this credential (revocation, system change)."""
    with _cache_lock:
        for key in [k for k, v in _cache.items() if v.prefix == prefix]:
            del _cache[key]


def forget_all() -> None:
    """Drop the whole cache (tests; a system's 事務 list or active flag changed)."""
    with _cache_lock:
        _cache.clear()


@lru_cache(maxsize=1024)
def clean_actor(actor: str) -> str:
    """The actor as the log keeps it: no 個人番号 look-alike, bounded length.

    Why: the actor name comes from the caller; a careless system could put anything in it,
    and the access log must never hold a 個人番号 (MN-03).
    """
    return core_mynumber.mask_in_text((actor or "").strip())[:_ACTOR_MAX]


def authenticate(token: str, jimu: str, actor: str, operation: str) -> Caller:
    """The Caller for a token, 事務 code and actor, or contract.Refused (and a logged refusal)."""
    key = hashlib.sha256((token or "").encode("utf-8")).hexdigest()
    entry = _cache.get(key)
    now = time.monotonic()
    if entry is None or entry.until < now:
        entry = _load(token, key, jimu, actor, operation, now)
    actor = clean_actor(actor)
    if not actor:
        _refuse(entry.system_code, "", jimu, operation, "no_actor", "操作者が指定されていません")
    if jimu not in entry.jimu_codes or jimu not in rules.JIMU:
        if not jimu:
            reason, message = "no_jimu", "事務コードが指定されていません"
        elif jimu not in rules.JIMU:
            reason, message = "unknown_jimu", "事務コードが定義されていません"
        else:
            reason, message = "jimu_not_allowed", "このシステムには許可されていない事務です"
        _refuse(entry.system_code, actor, jimu, operation, reason, message)
    return Caller(entry.system_id, entry.system_code, jimu, actor, entry.prefix)


def _load(token: str, key: str, jimu: str, actor: str, operation: str, now: float) -> _Cached:
    """Check the credential against the database and cache it; refuse (logged) if it fails."""
    actor = clean_actor(actor)
    if not token:
        _refuse("", actor, jimu, operation, "no_credential", "連携認証情報がありません")
    parsed = parse_token(token)
    if parsed is None:
        _refuse(
            "",
            actor,
            jimu,
            operation,
            "malformed_credential",
            "連携認証情報の形式が正しくありません",
        )
    prefix, secret = parsed
    row = (
        SystemCredential.objects.using(DB)
        .filter(prefix=prefix)
        .values_list(
            "secret_hash",
            "revoked_at",
            "expires_at",
            "system_id",
            "system__code",
            "system__jimu_codes",
            "system__active",
        )
        .first()
    )
    if row is None:
        _refuse("", actor, jimu, operation, "unknown_credential", "連携認証情報が正しくありません")
    stored, revoked_at, expires_at, system_id, system_code, jimu_codes, active = row
    if not hmac.compare_digest(stored, secret_hash(secret)):
        _refuse(system_code, actor, jimu, operation, "bad_secret", "連携認証情報が正しくありません")
    if revoked_at is not None:
        _refuse(system_code, actor, jimu, operation, "revoked", "連携認証情報は失効しています")
    wall = clock.now()
    if expires_at is not None and expires_at <= wall:
        _refuse(
            system_code, actor, jimu, operation, "expired", "連携認証情報の有効期限が切れています"
        )
    if not active:
        _refuse(
            system_code, actor, jimu, operation, "system_inactive", "連携システムが停止されています"
        )
    until = now + CACHE_SECONDS
    if expires_at is not None:
        until = min(until, now + (expires_at - wall).total_seconds())
    entry = _Cached(until, prefix, system_id, system_code, frozenset(jimu_codes or ()))
    with _cache_lock:
        _cache[key] = entry
    return entry


def _refuse(
    system_code: str, actor: str, jimu: str, operation: str, reason: str, message: str
) -> NoReturn:
    """Log the refused call (never the token; an unknown 事務 code only as "?") and raise."""
    insert_event(
        system_code=system_code,
        actor=actor,
        jimu=jimu if jimu in rules.JIMU else ("?" if jimu else ""),
        operation=operation,
        unified="",
        result="refused",
        detail={"reason": reason},
    )
    raise Refused(message)


# --- the access log -------------------------------------------------------------------------------

_at_field = LinkageEvent._meta.get_field("at")
_detail_field = LinkageEvent._meta.get_field("detail")
EVENT_FIELDS = (
    "at", "system_code", "actor", "jimu_code", "operation", "unified_atena_no", "result", "detail",
)  # fmt: skip
EVENT_SQL = (
    "INSERT INTO linkage_linkageevent (at, system_code, actor, jimu_code, operation, "
    "unified_atena_no, result, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# set_config(..., true) is local to the statement's own (implicit) transaction; its commit
# then does not wait for the WAL flush. The WHERE makes sure the call is evaluated.
EVENT_SQL_ASYNC = (
    "INSERT INTO linkage_linkageevent (at, system_code, actor, jimu_code, operation, "
    "unified_atena_no, result, detail) SELECT %s, %s, %s, %s, %s, %s, %s, %s "
    "FROM (SELECT set_config('synchronous_commit', 'off', true) AS v) AS c WHERE c.v = 'off'"
)


def event_values(
    *,
    system_code: str,
    actor: str,
    jimu: str,
    operation: str,
    unified: str = "",
    result: str = "ok",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> tuple:
    """One LinkageEvent's values in the order of EVENT_FIELDS, not yet adapted to a database.

    Why one builder: every writer of the log (a look-up, a refusal, a batch of registrations,
    an administrator's change, a key rotation) goes through it, so the actor is always passed
    through :func:`clean_actor` — no 個人番号 look-alike, bounded length — whoever called.
    ``detail`` holds codes and 統合宛名番号 only: callers never put a 個人番号, a token or
    free text from outside in it.
    """
    return (
        at or clock.now(),
        system_code,
        clean_actor(actor),
        jimu,
        operation,
        unified,
        result,
        detail or {},
    )


def insert_event(*, durable: bool = False, **values: Any) -> None:
    """Append one LinkageEvent with a single INSERT (the hot path of every look-up).

    ``values``: the keywords of :func:`event_values`. ``durable=False`` (reads, refusals): on
    PostgreSQL, outside a transaction, the entry commits without waiting for the WAL flush
    (module docstring). ``durable=True`` (state changes, administration, key rotation): always
    the plain INSERT. Inside a caller's transaction it is always the plain INSERT — that
    transaction's commit must stay durable.
    """
    conn = connections[DB]
    at, *middle, detail = event_values(**values)
    params = (
        _at_field.get_db_prep_value(at, conn),
        *middle,
        _detail_field.get_db_prep_value(detail, conn),
    )
    fast = not durable and conn.vendor == "postgresql" and not conn.in_atomic_block
    with conn.cursor() as cursor:
        cursor.execute(EVENT_SQL_ASYNC if fast else EVENT_SQL, params)


def insert_events(rows: Iterable[tuple]) -> None:
    """Append many LinkageEvents at once (a batch of registrations), inside the caller's
    transaction: COPY on PostgreSQL, executemany on SQLite (core.bulk).

    ``rows``: tuples made by :func:`event_values`, adapted here the way the ORM stores them.
    """
    conn = connections[DB]
    adapt = conn.ops.adapt_datetimefield_value
    stamps: dict[datetime, Any] = {}  # a batch shares one timestamp: adapt it once
    out = []
    for at, *middle, detail in rows:
        if at not in stamps:
            stamps[at] = adapt(at)
        out.append((stamps[at], *middle, json.dumps(detail)))
    if out:
        bulk_insert(LinkageEvent, EVENT_FIELDS, out, using=DB)


def record(caller: Caller, operation: str, unified: str = "", result: str = "ok", **detail: Any):
    """Log one accepted call of ``caller`` (reads; detail: codes and 統合宛名番号 only)."""
    insert_event(
        system_code=caller.system_code,
        actor=caller.actor,
        jimu=caller.jimu,
        operation=operation,
        unified=unified,
        result=result,
        detail=detail,
    )


def systems_changed() -> None:
    """A system's 事務 list or active flag changed: forget every cached authentication."""
    forget_all()
