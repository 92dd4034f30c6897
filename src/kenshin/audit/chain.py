"""The hash chain: how one audit row's hash is computed from its fields and its predecessor.

Why a pure module: ``append`` and ``verify`` must compute exactly the same bytes; keeping the
canonical form in one place is what makes a chain checkable years later.

The canonical form is a JSON array in a fixed field order (``FIELDS``), compact separators,
UTF-8, times in UTC with microseconds. A row's hash is ``sha256(prev_hash || canonical)`` in
lower-case hex. On PostgreSQL the writer lets the server compute the same digest (one round
trip per append, see services.append): it sends ``tail`` (everything after the seq) as bytes
and the server prefixes ``prev_hash`` and ``"[" + seq``. ``canonical`` is defined through
``tail`` so that both paths hash the very same bytes; tests pin the form with a known answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

#: The hashed fields, in the order they are hashed. ``seq`` comes first and is not in ``tail``.
FIELDS: tuple[str, ...] = (
    "seq",
    "at",
    "municipality_code",
    "event",
    "user_id",
    "username",
    "roles",
    "address",
    "break_glass",
    "function",
    "subject_kind",
    "subject_ref",
    "purpose",
    "result",
    "detail",
)
TAIL_FIELDS = FIELDS[1:]


def canonical_time(at: datetime) -> str:
    """UTC, microseconds, always the same width — both databases give this back unchanged.

    Same text as ``strftime("%Y-%m-%dT%H:%M:%S.%fZ")``; isoformat is several times faster,
    which matters to verify (one call per row).
    """
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    if at.utcoffset():
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_tail(row: list[Any]) -> bytes:
    """The tail from values already in canonical shape (time text, flag bool)."""
    return ("," + _ENCODE(row)[1:]).encode("utf-8")


def tail_bytes(values: Sequence[Any]) -> bytes:
    """``,"<at>",…,"<detail>"]`` — the canonical bytes after ``[<seq>``.

    ``values`` are the row's fields after ``seq`` in ``TAIL_FIELDS`` order, as stored: ``at``
    an aware datetime, ``break_glass`` a bool or 0/1 (SQLite gives integers back).
    """
    row = list(values)
    row[0] = canonical_time(row[0])
    row[7] = bool(row[7])
    return encode_tail(row)


def tail(fields: Mapping[str, Any]) -> bytes:
    """The canonical bytes after ``[<seq>`` for one row given as a mapping of its fields."""
    return tail_bytes([fields[name] for name in TAIL_FIELDS])


def head(seq: int) -> bytes:
    """``[<seq>`` — what the database prefixes to ``tail`` on the PostgreSQL path."""
    return b"[" + str(int(seq)).encode("ascii")


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: a JSON array in the fixed field order."""
    return head(fields["seq"]) + tail(fields)


def hash_bytes(prev_hash: str, seq: int, tail_bytes: bytes) -> str:
    """sha256(prev_hash || "[" seq || tail), hex — the hot path of verify."""
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(head(seq))
    h.update(tail_bytes)
    return h.hexdigest()


def row_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """sha256(prev_hash || canonical(fields)), hex."""
    return hash_bytes(prev_hash, fields["seq"], tail(fields))
