"""Walking the audit chain and naming the first broken row (LOG-02).

Why a walk over every row: an attacker who can drop the triggers can edit or delete rows; the
only question a reviewer needs answered is "is every row still the row that was written, and
is none missing?". Each row's hash is recomputed from its fields and its stored predecessor
hash, each ``prev_hash`` must equal the previous row's hash, and ``seq`` must run 1, 2, 3 …
without gaps. An anchor kept outside the database (``kenshin audit anchor``) also catches a
rewrite of the whole tail, which a chain alone cannot.

Memory stays constant: rows are read in keyset batches (``WHERE seq > last ORDER BY seq
LIMIT n``), an index range scan on the primary key on both databases — the same streaming a
server-side cursor gives, without holding a cursor or a snapshot open for the whole walk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from kenshin.audit import chain, schema

BATCH = 5000

_COLUMNS = ", ".join((*chain.FIELDS, "prev_hash", "hash"))
_ANCHOR = re.compile(r"^([0-9a-f]{64})@([0-9]+)$")


@dataclass(frozen=True)
class Anchor:
    """A head kept outside the database: the row ``seq`` must still have this ``hash``."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``HASH@SEQ`` as printed by ``kenshin audit anchor``."""
        m = _ANCHOR.match(text.strip().lower())
        if not m:
            raise ValueError("アンカーは「ハッシュ@番号」の形で指定してください（例: 3fa4…@1200）")
        return cls(int(m.group(2)), m.group(1))


@dataclass(frozen=True)
class Problem:
    """What is wrong, at which row (``seq`` None for problems not tied to one row)."""

    seq: int | None
    kind: str  # missing | link | hash | tail | anchor | guards
    message: str


@dataclass(frozen=True)
class Report:
    rows: int
    last_seq: int
    last_hash: str
    problem: Problem | None
    guards_installed: bool

    @property
    def ok(self) -> bool:
        return self.problem is None


def _time_text(value: datetime | str) -> str:
    """The stored time in canonical text, one call per row.

    SQLite stores naive UTC (``YYYY-MM-DD HH:MM:SS[.ffffff]``) and its cursor gives it back
    as a naive datetime (or text, without Django's converters); PostgreSQL gives aware times.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds") + "Z"
    return chain.canonical_time(value)


def _missing(first: int, last: int, how: str = "削除された") -> str:
    rows = f"番号 {first}" if first == last else f"番号 {first}〜{last}"
    return f"{rows} の行がありません（{how}可能性があります）"


def verify(
    *,
    anchor: Anchor | None = None,
    batch: int = BATCH,
    progress: Callable[[int, int, int], None] | None = None,
) -> Report:
    """Check the chain from row 1 to the newest row present when the walk starts.

    Stops at the first problem. ``progress(done_seq, total_seq, rows)`` is called per batch.
    """
    with connection.cursor() as cur:
        # Head first, then max(seq): rows committed in between only raise max(seq), so a
        # max below the head means rows were taken off the end.
        cur.execute("SELECT seq FROM audit_chainhead WHERE id = 1")
        head = cur.fetchone()
        cur.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_auditevent")
        upto = cur.fetchone()[0]
        guards = schema.installed(connection)

        last, prev_hash, rows = 0, chain.GENESIS, 0
        problem: Problem | None = None
        while problem is None:
            cur.execute(
                f"SELECT {_COLUMNS} FROM audit_auditevent "  # noqa: S608 # nosec B608 - fixed column list
                "WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
                [last, upto, batch],
            )
            fetched = cur.fetchall()
            if not fetched:
                break
            for row in fetched:
                problem = _check(row, last, prev_hash, anchor)
                if problem is not None:
                    break
                last, prev_hash = row[0], row[-1]
                rows += 1
            if progress is not None:
                progress(last, upto, rows)

    if problem is None and head is not None and head[0] > last:
        problem = Problem(last + 1, "tail", _missing(last + 1, head[0], "末尾から削除された"))
    if problem is None and anchor is not None and anchor.seq > last:
        problem = Problem(
            anchor.seq,
            "anchor",
            f"アンカーの番号 {anchor.seq} の行がありません（末尾が削除された可能性があります）",
        )
    if problem is None and not guards:
        problem = Problem(
            None,
            "guards",
            "追記専用の保護（更新・削除を拒むトリガー）が外されています。"
            "マイグレーション audit 0003 を適用し直してください",
        )
    return Report(rows, last, prev_hash, problem, guards)


def _check(row: tuple, last: int, prev_hash: str, anchor: Anchor | None) -> Problem | None:
    seq, stored_prev, stored_hash = row[0], row[-2], row[-1]
    if seq != last + 1:
        return Problem(last + 1, "missing", _missing(last + 1, seq - 1))
    if stored_prev != prev_hash:
        return Problem(
            seq,
            "link",
            f"番号 {seq}: 直前の行（番号 {last}）とのつながりが切れています"
            "（どちらかの行が書き換えられた可能性があります）",
        )
    values = list(row[1:-2])
    values[0] = _time_text(values[0])
    values[7] = bool(values[7])
    if chain.hash_bytes(stored_prev, seq, chain.encode_tail(values)) != stored_hash:
        return Problem(
            seq,
            "hash",
            f"番号 {seq}: 行の内容がハッシュと一致しません（書き換えられた可能性があります）",
        )
    if anchor is not None and seq == anchor.seq and stored_hash != anchor.hash:
        return Problem(
            seq,
            "anchor",
            f"番号 {seq}: 保管しておいたアンカー（{anchor.hash[:12]}…）と一致しません"
            "（この行までが作り直された可能性があります）",
        )
    return None


def head() -> tuple[int, str]:
    """The newest row's (seq, hash), or (0, GENESIS) for an empty log."""
    with connection.cursor() as cur:
        cur.execute("SELECT seq, hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
    return (row[0], row[1]) if row else (0, chain.GENESIS)
