"""The hash chain: how one audit row's hash is computed from its fields and its predecessor.

Why a pure module: ``append`` and ``verify`` must compute exactly the same bytes; keeping the
canonical form in one place is what makes a chain checkable years later.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical_time(at: datetime) -> str:
    """UTC, microseconds, always the same width — both databases give this back unchanged."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes that are hashed: a JSON array in a fixed field order."""
    row = [
        fields["seq"],
        canonical_time(fields["at"]),
        fields["municipality_code"],
        fields["event"],
        fields["user_id"],
        fields["username"],
        fields["roles"],
        fields["address"],
        bool(fields["break_glass"]),
        fields["function"],
        fields["subject_kind"],
        fields["subject_ref"],
        fields["purpose"],
        fields["result"],
        fields["detail"],
    ]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256(prev_hash || canonical(fields)), hex."""
    h = hashlib.sha256()
    h.update(prev_hash.encode("ascii"))
    h.update(canonical(fields))
    return h.hexdigest()
