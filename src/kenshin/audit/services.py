"""Public face of the audit app: appending to the chain, and what other apps may ask of it."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import connection, transaction

from kenshin.audit import chain
from kenshin.audit.models import AuditEvent
from kenshin.core.audit import Entry

# pg_advisory_xact_lock key: one chain per database, one writer at a time (LOG-02).
_CHAIN_LOCK = 0x4B454E5348494E01


def _lock_chain() -> None:
    """Serialise appends until the end of the current transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions begin IMMEDIATE
    (settings), so the write lock is already held by the time we read the head.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK])


def append(entry: Entry) -> int:
    """Append one entry to the chain inside the caller's transaction; return its seq."""
    detail = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    with transaction.atomic():
        _lock_chain()
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, chain.GENESIS)
        fields = {
            "seq": seq,
            "at": entry.at,
            "municipality_code": settings.MUNICIPALITY_CODE,
            "event": entry.event,
            "user_id": entry.actor.user_id,
            "username": entry.actor.username,
            "roles": entry.actor.roles,
            "address": entry.actor.address,
            "break_glass": entry.actor.break_glass,
            "function": entry.function,
            "subject_kind": entry.subject_kind,
            "subject_ref": entry.subject_ref,
            "purpose": entry.purpose,
            "result": entry.result,
            "detail": detail,
        }
        AuditEvent.objects.create(prev_hash=prev, hash=chain.row_hash(prev, fields), **fields)
    return seq
