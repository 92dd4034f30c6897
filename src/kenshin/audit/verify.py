"""Walking the audit chain and naming the first broken row (LOG-02).

Why a walk over every row: an attacker who can drop the triggers can edit or delete rows; the
only question a reviewer needs answered is "is every row still the row that was written, and
is none missing?". Each row's hash is recomputed from its fields and its stored predecessor
hash, each ``prev_hash`` must equal the previous row's hash, and ``seq`` must run 1, 2, 3 …
without gaps. The head row (``audit_chainhead``) must name the last row exactly (seq, hash,
prev_hash): otherwise the last row could be rewritten with a recomputed hash unnoticed. An
anchor kept outside the database (``kenshin audit anchor``) also catches a rewrite of the
whole tail, which a chain alone cannot.

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
    kind: str  # missing | link | hash | tail | head | anchor | guards
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
        # The head and max(seq) in ONE statement: one snapshot on both databases, and an
        # append moves the head and inserts its row in the same transaction — so in any
        # snapshot the head must name exactly the newest row.
        cur.execute(
            "SELECT COALESCE((SELECT MAX(seq) FROM audit_auditevent), 0), "
            "(SELECT seq FROM audit_chainhead WHERE id = 1), "
            "(SELECT prev_hash FROM audit_chainhead WHERE id = 1), "
            "(SELECT hash FROM audit_chainhead WHERE id = 1)"
        )
        upto, *head = cur.fetchone()
        missing_guards = schema.missing(connection)

        last, prev_hash, last_prev, rows = 0, chain.GENESIS, chain.GENESIS, 0
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
                last, last_prev, prev_hash = row[0], row[-2], row[-1]
                rows += 1
            if progress is not None:
                progress(last, upto, rows)

    if problem is None:
        problem = _check_head(head, last, last_prev, prev_hash)
    if problem is None and anchor is not None and anchor.seq > last:
        problem = Problem(
            anchor.seq,
            "anchor",
            f"アンカーの番号 {anchor.seq} の行がありません（末尾が削除された可能性があります）",
        )
    if problem is None and missing_guards:
        problem = Problem(
            None,
            "guards",
            "追記専用の保護（更新・削除を拒むトリガー）が外されています"
            f"（{', '.join(missing_guards)}）。"
            "マイグレーション audit 0003・0004 を適用し直してください",
        )
    return Report(rows, last, prev_hash, problem, not missing_guards)


def _check_head(head: list, last: int, last_prev: str, last_hash: str) -> Problem | None:
    """The head row must name the newest row exactly: its seq, its hash and its prev_hash.

    Why all three: a head that only agrees on ``seq`` lets someone who can drop the triggers
    rewrite the last row with a recomputed hash — no later row's link would betray it.
    """
    seq, head_prev, head_hash = head
    if seq is None:
        if last == 0:
            return None  # a fresh or flushed database: the first append creates the head
        return Problem(
            None,
            "head",
            "監査ログの末尾の記録（audit_chainhead）がありません"
            "（末尾の行とともに削除された可能性があります。アンカーで確かめてください）",
        )
    if seq > last:
        return Problem(last + 1, "tail", _missing(last + 1, seq, "末尾から削除された"))
    if seq < last:
        rows = f"番号 {seq + 1}" if seq + 1 == last else f"番号 {seq + 1}〜{last}"
        return Problem(
            seq + 1,
            "head",
            f"{rows} の行が末尾の記録（audit_chainhead、番号 {seq}）より後にあります"
            "（正規の追記を経ずに書き込まれた可能性があります）",
        )
    if head_hash != last_hash or head_prev != last_prev:
        return Problem(
            last or None,
            "head",
            f"番号 {last}: 行のハッシュが末尾の記録（audit_chainhead）と一致しません"
            "（最後の行か末尾の記録が書き換えられた可能性があります）",
        )
    return None


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
