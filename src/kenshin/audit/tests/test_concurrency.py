"""1,000 concurrent appends leave one valid chain, seq 1..1000 (LOG-02).

PostgreSQL: 8 threads, each with its own connection, in a transactional test (the rows must
really commit for the writers to see each other). Half the appends are single transactions,
half sit inside a caller's transaction that reads first and then appends two or three events.

SQLite: the test database is in memory with a shared cache, where a second writer gets
"table is locked" at once instead of waiting — not how Kenshin runs. So the SQLite case runs
the way production does: a file database in WAL mode, 4 separate processes (each its own
connection, BEGIN IMMEDIATE, busy timeout from settings) writing at the same time, then
`kenshin audit verify` in another process. SQLite has one writer lock, so its writers take
turns; the test proves they queue without forking or losing the chain.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from kenshin.audit.models import AuditEvent
from kenshin.audit.verify import verify
from kenshin.core import audit

TOTAL = 1000


def _writer(worker: int, count: int, start: threading.Barrier, errors: list) -> None:
    try:
        start.wait()
        done = 0
        while done < count:
            if done % 4 < 2:  # its own transaction (autocommit → append's atomic)
                audit.record(audit.Event.VIEW, None, f"{worker:06d}{done:06d}", "inquiry", w=worker)
                done += 1
            else:  # inside a caller's transaction that has read but not yet written
                n = min(1 + done % 3, count - done)
                with transaction.atomic():
                    AuditEvent.objects.filter(seq__lt=0).exists()
                    for _ in range(n):
                        audit.record(audit.Event.SEARCH, None, w=worker, i=done)
                        done += 1
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_1000_concurrent_appends_on_postgresql_leave_a_valid_chain():
    if connection.vendor != "postgresql":
        pytest.skip("see test_1000_concurrent_appends_on_sqlite_file_database")
    threads_n = 8
    start, errors = threading.Barrier(threads_n), []
    threads = [
        threading.Thread(target=_writer, args=(w, TOTAL // threads_n, start, errors))
        for w in range(threads_n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, TOTAL + 1)
    )
    report = verify()
    assert report.ok, report.problem
    assert report.rows == TOTAL


_CHILD = r"""
import os, sys, time
import django
django.setup()
from django.db import transaction
from kenshin.core import audit
worker, count, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.005)
done = 0
while done < count:
    if done % 4 < 2:
        audit.record(audit.Event.VIEW, None, f"{worker:06d}{done:06d}", "inquiry", w=worker)
        done += 1
    else:
        n = min(1 + done % 3, count - done)
        with transaction.atomic():
            from kenshin.audit.models import AuditEvent
            AuditEvent.objects.filter(seq__lt=0).exists()
            for _ in range(n):
                audit.record(audit.Event.SEARCH, None, w=worker, i=done)
                done += 1
"""


def _env(var: Path) -> dict[str, str]:
    env = dict(os.environ, KENSHIN_VAR_DIR=str(var), KENSHIN_ALLOW_DEV_SECRET="1")
    env["DJANGO_SETTINGS_MODULE"] = "kenshin.settings"
    env.pop("DATABASE_URL", None)
    return env


def test_1000_concurrent_appends_on_sqlite_file_database(tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite run covers this; PostgreSQL has its own test above")
    env = _env(tmp_path)
    kenshin = [sys.executable, "-m", "kenshin.cli"]
    subprocess.run([*kenshin, "migrate", "-v0"], env=env, check=True)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(w), str(TOTAL // 4), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    db = sqlite3.connect(tmp_path / "kenshin.sqlite3")
    seqs = [r[0] for r in db.execute("SELECT seq FROM audit_auditevent ORDER BY seq")]
    workers = {json.loads(r[0])["w"] for r in db.execute("SELECT detail FROM audit_auditevent")}
    db.close()
    assert seqs == list(range(1, TOTAL + 1))
    assert workers == {0, 1, 2, 3}
    out = subprocess.run(
        [*kenshin, "audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert f"{TOTAL:,} 行" in out.stdout
