"""Re-encrypt every 個人番号 under the active key (``kenshin linkage rotate-key``; MN-04).

Why batches by primary key, each its own transaction: a rotation over a million rows must not
hold one lock or one transaction for its whole length, and must survive being stopped. Each
batch takes the next rows still under another key (``key_id <> active``, in person_id order
from where the previous batch ended), decrypts them with their own key, encrypts them under
the active one and writes them back in one set-based statement; a rerun after an interruption
simply finds the rows still left. Decrypting a row fails the run (DecryptError) rather than
skipping it: a row under a missing key needs an operator, not silence.

One LinkageEvent per run (operation ``rotate_key``): who, how many rows, which key ids —
never a number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

from django.db import connections, transaction
from django.db.models import Count

from kenshin.core.progress import ProgressLine
from kenshin.linkage import crypto, gateway
from kenshin.linkage.models import DB, MyNumber

SYSTEM = "linkage"  # events the server writes about itself, not on behalf of a caller


@dataclass
class RotationResult:
    rows: int  # rows re-encrypted by this run
    seconds: float
    remaining: int  # rows still under another key (0 unless stopped)
    active_key_id: int = 0
    batches: int = 0


def key_usage() -> dict[int, int]:
    """key id -> number of 個人番号 rows encrypted under it."""
    rows = MyNumber.objects.using(DB).values("key_id").annotate(n=Count("pk")).order_by("key_id")
    return {row["key_id"]: row["n"] for row in rows}


def record_event(operation: str, actor: str, result: str, detail: dict) -> None:
    """One vault event in the linkage server's log (key changes, rotations).

    Through gateway.insert_event like every other event: the actor (an operator's --actor)
    is cleaned the same way, so a 個人番号 typed there is stored masked. Durable: a key change
    must not lose its log entry in a crash.
    """
    gateway.insert_event(
        system_code=SYSTEM,
        actor=actor,
        jimu="",
        operation=operation,
        result=result,
        detail=detail,
        durable=True,
    )


def rotate_all(
    *,
    batch_size: int = 5000,
    progress: TextIO | None = None,
    stop_after: int | None = None,
    actor: str = "system",
) -> RotationResult:
    """Re-encrypt every row not under the active key; resumable; one event per run.

    ``progress``: a stream for the progress line (None: quiet). ``stop_after``: stop after
    that many batches, as an interruption would (tests, and an operator's time window).
    """
    if batch_size < 1:
        raise ValueError("batch_size は1以上にしてください")
    crypto.reset_keyring()  # a key file changed by `keys new --activate` is read afresh
    ring = crypto.keyring()
    active = ring.active_key_id
    before = key_usage()
    total = sum(n for key_id, n in before.items() if key_id != active)
    line = ProgressLine("鍵の切り替え", total, progress)
    started = time.monotonic()
    done = batches = 0
    outcome = "error"
    try:
        last = -1
        while stop_after is None or batches < stop_after:
            count, last = _rotate_batch(ring, active, last, batch_size)
            if not count:
                break
            done += count
            batches += 1
            line.update(done, done)
        line.finish(done)
        outcome = "ok"
    finally:
        remaining = MyNumber.objects.using(DB).exclude(key_id=active).count()
        if outcome == "ok" and remaining:
            outcome = "stopped"
        record_event(
            "rotate_key",
            actor,
            outcome,
            {
                "to_key": active,
                "from_keys": sorted(k for k in before if k != active),
                "rows": done,
                "batches": batches,
                "remaining": remaining,
            },
        )
    return RotationResult(
        rows=done,
        seconds=time.monotonic() - started,
        remaining=remaining,
        active_key_id=active,
        batches=batches,
    )


# Fixed statements on the MyNumber table ("linkage_mynumber"); only parameters vary.
_SELECT = (
    "SELECT person_id, ciphertext FROM linkage_mynumber "
    "WHERE key_id <> %s AND person_id > %s ORDER BY person_id LIMIT %s"
)
_UPDATE_ONE = "UPDATE linkage_mynumber SET key_id = %s, ciphertext = %s WHERE person_id = %s"
_UPDATE_SET = (
    "UPDATE linkage_mynumber AS m SET key_id = %s, ciphertext = v.ct "
    "FROM unnest(%s::bigint[], %s::bytea[]) AS v(id, ct) WHERE m.person_id = v.id"
)


def _rotate_batch(ring: crypto.Keyring, active: int, after: int, size: int) -> tuple[int, int]:
    """Rotate the next ``size`` rows after person_id ``after``: (rows, last person_id).

    PostgreSQL: the rows are locked while read (FOR UPDATE) and written back with one
    ``UPDATE ... FROM unnest(ids, blobs)`` (two array parameters). SQLite: the IMMEDIATE
    transaction already holds the write lock; executemany runs one prepared statement.
    """
    conn = connections[DB]
    pg = conn.vendor == "postgresql"
    with transaction.atomic(using=DB), conn.cursor() as cur:
        cur.execute(_SELECT + (" FOR UPDATE" if pg else ""), [active, after, size])
        rows = cur.fetchall()
        if not rows:
            return 0, after
        fresh = [(pid, ring.encrypt(ring.decrypt(blob, pid), pid, active)) for pid, blob in rows]
        if pg:
            ids, blobs = [pid for pid, _ in fresh], [blob for _, blob in fresh]
            cur.execute(_UPDATE_SET, [active, ids, blobs])
        else:
            cur.executemany(_UPDATE_ONE, [(active, blob, pid) for pid, blob in fresh])
    return len(rows), rows[-1][0]
