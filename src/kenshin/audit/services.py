"""Public face of the audit app: appending to the chain, and what other apps may ask of it."""

from __future__ import annotations

import json
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction

from kenshin.audit import chain, schema
from kenshin.audit.models import AuditEvent
from kenshin.core.audit import Entry


@lru_cache(maxsize=1)
def _columns() -> tuple[str, ...]:
    """The audit table's columns in chain order, then the two hashes (from the model)."""
    names = {f.column for f in AuditEvent._meta.concrete_fields}
    cols = (*chain.FIELDS, "prev_hash", "hash")
    if set(cols) != names:  # a model change without a chain change would corrupt the chain
        raise RuntimeError(f"audit columns changed: {sorted(names ^ set(cols))}")
    return cols


# PostgreSQL: one statement locks the head row (a row lock held until commit serialises
# writers — the same effect as pg_advisory_xact_lock without a separate round trip), lets the
# server hash ``prev_hash || "[" seq || tail`` with the built-in sha256(), moves the head, and
# inserts the row. READ COMMITTED (Django's default) re-reads the head row after waiting for
# its lock, so every writer sees its predecessor's committed head; under REPEATABLE READ a
# concurrent append would fail with a serialization error instead — never fork the chain.
_PG_APPEND = """
WITH h AS (
    UPDATE audit_chainhead
    SET seq = seq + 1,
        prev_hash = hash,
        hash = encode(sha256(convert_to(hash || '[' || (seq + 1)::text, 'UTF8') || %s), 'hex')
    WHERE id = 1
    RETURNING seq, prev_hash, hash
)
INSERT INTO audit_auditevent ({cols})
SELECT h.seq, {params}, h.prev_hash, h.hash FROM h
RETURNING seq
"""


def _detail_text(entry: Entry) -> str:
    return json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _tail(entry: Entry) -> list:
    """The row's values after ``seq``, in chain order, as they are stored."""
    actor = entry.actor
    return [
        entry.at,
        settings.MUNICIPALITY_CODE,
        entry.event,
        actor.user_id,
        actor.username,
        actor.roles,
        actor.address,
        bool(actor.break_glass),
        entry.function,
        entry.subject_kind,
        entry.subject_ref,
        entry.purpose,
        entry.result,
        _detail_text(entry),
    ]


def append(entry: Entry) -> int:
    """Append one entry to the chain inside the caller's transaction; return its seq.

    Why inside the caller's transaction: the event and the action it records commit or roll
    back together, so the log has no events for actions that did not happen and no gaps.
    Concurrent writers are serialised by the lock on the head row, held until commit; on
    SQLite by the database's single write lock (transactions begin IMMEDIATE, settings; even
    without that, SQLite refuses a stale writer rather than letting it fork the chain).
    ``seq`` is the primary key: a chain can never fork. A missing head is only recreated when
    the log is empty too; otherwise ``ChainHeadMissing`` is raised (fail closed).
    """
    values = _tail(entry)
    tail = chain.tail_bytes(values)  # also refuses a naive time
    stored = [connection.ops.adapt_datetimefield_value(values[0]), *values[1:]]
    if connection.vendor == "postgresql":
        if connection.get_autocommit():
            # Outside any transaction the one statement is its own transaction: no
            # BEGIN/COMMIT round trips, and the head row's lock still lasts until commit.
            return _write(_append_pg, tail, stored)
        step = _append_pg
    else:
        step = _append_generic
    # savepoint=False: no SAVEPOINT round trips; a failure dooms the caller's transaction,
    # which is what we want (fail closed: no action without its event).
    with transaction.atomic(savepoint=False):
        return _write(step, tail, stored)


class ChainHeadMissing(RuntimeError):
    """The head row is gone while the log has rows: appending would hide a truncation."""


HEAD_MISSING = (
    "監査ログの末尾の記録（audit_chainhead）がありません。監査ログには行があるため、"
    "末尾から行が削除された可能性があり、自動では作り直しません。操作は記録できないため"
    "中止しました。システム管理者は kenshin audit verify（--from-anchor 付き）で確認してください"
)


def _write(step, tail: bytes, stored: list) -> int:
    with connection.cursor() as cur:
        seq = step(cur, tail, stored)
        if seq is None:  # no head row: a fresh or flushed database — or a removed head
            schema.start_head(connection)  # only when the log is empty too
            seq = step(cur, tail, stored)
    if seq is None:  # fail closed: no action without its event, no guessed head
        raise ChainHeadMissing(HEAD_MISSING)
    return seq


@lru_cache(maxsize=1)
def _pg_sql() -> str:
    cols = _columns()
    return _PG_APPEND.format(cols=", ".join(cols), params=", ".join(["%s"] * (len(cols) - 3)))


def _append_pg(cur, tail: bytes, stored: list) -> int | None:
    """One round trip: lock and move the head, hash in the server, insert (see _PG_APPEND)."""
    cur.execute(_pg_sql(), [tail, *stored])
    row = cur.fetchone()
    return row[0] if row else None


def _append_generic(cur, tail: bytes, stored: list) -> int | None:
    """SQLite: the same steps, hashing in Python (statements are in-process, so cheap).

    The head moves in one UPDATE (seq + 1, prev_hash = old hash, new hash): the only change
    its guard allows. The read and the write happen under SQLite's single write lock
    (transactions begin IMMEDIATE, settings); without it a stale writer is refused by SQLite
    (or by ``seq = %s``/the primary key) — the chain never forks.
    """
    cur.execute("SELECT seq, hash FROM audit_chainhead WHERE id = 1")
    row = cur.fetchone()
    if row is None:
        return None
    seq, prev = row[0] + 1, row[1]
    digest = chain.hash_bytes(prev, seq, tail)
    cur.execute(
        "UPDATE audit_chainhead SET seq = %s, prev_hash = %s, hash = %s WHERE id = 1 AND seq = %s",
        [seq, prev, digest, seq - 1],
    )
    if cur.rowcount != 1:  # pragma: no cover - only without the write lock
        raise RuntimeError("audit chain head moved during append")
    cols = _columns()
    cur.execute(
        f"INSERT INTO audit_auditevent ({', '.join(cols)}) "  # noqa: S608 # nosec B608 - model column names
        f"VALUES ({', '.join(['%s'] * len(cols))})",
        [seq, *stored, prev, digest],
    )
    return seq


def open_review_task(
    kind: str,
    reason: str,
    *,
    subject_kind: str = "",
    subject_ref: str = "",
    created_by_id: int | None = None,
) -> int:
    """Open a task a 課長 or auditor must look at and close; return its id.

    Raised by break-glass approvals (BG-01) and privileged role grants (accounts.actions).

    Why here: accounts raises the task, the audit app owns the table and its review screen.
    Text is neutralised like an audit field, since reviewers read it on screen.
    """
    from kenshin.audit.models import ReviewTask
    from kenshin.core import audit as core_audit
    from kenshin.core import clock

    task = ReviewTask.objects.create(
        kind=core_audit.neutralise(kind)[:30],
        reason=core_audit.neutralise(reason)[:300],
        subject_kind=core_audit.neutralise(subject_kind)[:30],
        subject_ref=core_audit.neutralise(subject_ref)[:100],
        created_at=clock.now(),
        created_by_id=created_by_id,
    )
    return task.pk


# Read-only review queries other apps may use (the home page's task count).
from kenshin.audit.queries import anomaly_counts, open_review_task_count  # noqa: E402

__all__ = ["anomaly_counts", "append", "open_review_task", "open_review_task_count"]
