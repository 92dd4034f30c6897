"""Audit appends per second, and the cost of `kenshin audit verify` per million rows.

    uv run python bench/audit_append.py --db sqlite postgres
    uv run python bench/audit_append.py --db postgres --appends 4000 --verify-rows 1000000

Appends go through `core.audit.record` (what every feature calls: neutralise, canonical JSON,
chain) into a fresh database (SQLite file in bench/out/audit/, PostgreSQL database
`kenshin_bench_audit`). Every writer is its own process with its own connection; writers start
together on a signal and the rate is appends / (last finish − signal). Scenarios:

- `ours` — each append in its own transaction (`transaction.atomic()` around it, as an action
  does), or with no transaction around it (`autocommit`), or N appends per transaction;
- `raw` — the same row INSERTed, one per transaction, into a plain table with the same columns
  and indexes and no chain: the ratio ours / raw is what the chain costs;
- `v1` — the first version of append (pg_advisory_xact_lock, ORDER BY seq DESC LIMIT 1, hash
  in Python, ORM insert), kept here to show why the head row replaced it;
- PostgreSQL `sync off` — ours with synchronous_commit=off: a diagnostic of the code path
  without the wait for the disk flush, NOT a setting to run with.

Verify: chained rows are generated in Python and bulk-inserted with the guards in place
(inserts are allowed), then `audit.verify.verify()` runs in a fresh process; its time is scaled
to one million rows if fewer were generated (the walk is linear: keyset batches by seq).
After each concurrent scenario the chain is verified, so a fast but broken append shows up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import OUT, PG_URL, child_env

AUDIT_PG_URL = PG_URL + "_audit"
VAR = OUT / "audit"


# ---------------------------------------------------------------- child side


def _setup_django() -> None:
    import django

    django.setup()


def _entry_args(worker: int, n: int):
    from kenshin.core import audit

    actor = audit.Actor(1000 + worker, f"hokenshi{worker}", "保健師", "10.0.0.5")
    return (
        audit.Event.VIEW,
        actor,
        f"{(worker * 1_000_000 + n) % 10**12:012d}",
        "inquiry",
    ), {"function": "residents.view", "screen": "person"}


def _raw_insert(cur, worker: int, n: int) -> None:
    from django.db import connection

    from kenshin.core import clock

    at = connection.ops.adapt_datetimefield_value(clock.now())
    cur.execute(
        "INSERT INTO bench_raw (at, municipality_code, event, user_id, username, roles, address,"
        " break_glass, function, subject_kind, subject_ref, purpose, result, detail, prev_hash,"
        " hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [at, "342025", "view", 1000 + worker, f"hokenshi{worker}", "保健師", "10.0.0.5", False,
         "residents.view", "resident", f"{n:012d}", "inquiry", "success",
         '{"screen":"person"}', "0" * 64, "f" * 64],
    )  # fmt: skip


def _v1_append(entry) -> int:
    """The first version of services.append, for comparison only."""
    from django.conf import settings
    from django.db import connection, transaction

    from kenshin.audit import chain
    from kenshin.audit.models import AuditEvent

    detail = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [0x4B454E5348494E01])
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


def child_setup() -> dict:
    _setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    cols = (
        "at {ts}, municipality_code varchar(6), event varchar(30), user_id bigint,"
        " username varchar(150), roles varchar(300), address varchar(64), break_glass boolean,"
        " function varchar(80), subject_kind varchar(30), subject_ref varchar(100),"
        " purpose varchar(40), result varchar(10), detail text, prev_hash varchar(64),"
        " hash varchar(64)"
    )
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS bench_raw (seq bigserial PRIMARY KEY, "
                f"{cols.format(ts='timestamptz')})"
            )
        else:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS bench_raw (seq integer PRIMARY KEY AUTOINCREMENT, "
                f"{cols.format(ts='datetime')})"
            )
        cur.execute(
            "CREATE INDEX IF NOT EXISTS bench_raw_s ON bench_raw (subject_kind, subject_ref, at)"
        )
        cur.execute("CREATE INDEX IF NOT EXISTS bench_raw_u ON bench_raw (user_id, at)")
        cur.execute("CREATE INDEX IF NOT EXISTS bench_raw_a ON bench_raw (at)")
    return {"db": connection.vendor}


def child_reset() -> dict:
    """Empty the audit table between scenarios (a benchmark database: guards lifted briefly)."""
    _setup_django()
    from django.db import connection, transaction

    from kenshin.audit import schema

    with transaction.atomic(), connection.cursor() as cur:
        schema.remove(connection)
        if connection.vendor == "postgresql":
            cur.execute("TRUNCATE audit_auditevent, audit_chainhead, bench_raw")
        else:
            for table in ("audit_auditevent", "audit_chainhead", "bench_raw"):
                cur.execute(f"DELETE FROM {table}")
        schema.install(connection)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE audit_auditevent")
            cur.execute("VACUUM ANALYZE audit_chainhead")
    return {}


def child_check() -> dict:
    _setup_django()
    from django.db import connection

    from kenshin.audit import schema
    from kenshin.audit.verify import verify

    schema.init_head(connection)  # v1 writes no head row; a no-op after our appends
    report = verify()
    return {"ok": report.ok, "rows": report.rows, "problem": str(report.problem)}


def child_writer(spec: dict) -> dict:
    """One writer process: wait for the signal, append spec['n'] events, report timings."""
    _setup_django()
    from django.db import connection, transaction
    from django.test import override_settings

    from kenshin.core import audit

    worker, n, per_tx, variant = spec["worker"], spec["n"], spec["per_tx"], spec["variant"]
    with connection.cursor() as cur:
        if spec.get("sync_off"):
            cur.execute("SET synchronous_commit = off")
        cur.execute("SELECT 1")
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.001)
    if variant == "v1":  # the same entries record() builds, written by the first append
        override_settings(KENSHIN_AUDIT_WRITER="audit_append._v1_append").enable()
    done = 0
    while done < n:
        if variant == "raw":
            with transaction.atomic(), connection.cursor() as cur:
                _raw_insert(cur, worker, done)
            done += 1
        elif per_tx == 0:  # no transaction around the append (autocommit)
            args, kw = _entry_args(worker, done)
            audit.record(*args, **kw)
            done += 1
        else:
            with transaction.atomic():
                for _ in range(min(per_tx, n - done)):
                    args, kw = _entry_args(worker, done)
                    audit.record(*args, **kw)
                    done += 1
    return {"end": time.time()}


def child_generate(rows: int) -> dict:
    """Chained rows straight into the table (guards stay on: inserts are allowed)."""
    _setup_django()
    from datetime import UTC, datetime, timedelta

    from django.db import connection, transaction

    from kenshin.audit import chain, schema

    cols = (*chain.FIELDS, "prev_hash", "hash")
    base = datetime(2026, 4, 1, tzinfo=UTC)
    prev, batch = chain.GENESIS, []
    t0 = time.perf_counter()

    def rows_iter():
        nonlocal prev
        for seq in range(1, rows + 1):
            at = base + timedelta(microseconds=seq * 7919)
            values = [at, "342025", "view", 1000 + seq % 50, f"hokenshi{seq % 50}", "保健師",
                      "10.0.0.5", seq % 997 == 0, "residents.view", "resident",
                      f"{seq * 31 % 10**12:012d}", "inquiry", "success",
                      f'{{"screen":"person","n":{seq}}}']  # fmt: skip
            digest = chain.hash_bytes(prev, seq, chain.tail_bytes(values))
            yield [seq, *values, prev, digest]
            prev = digest

    with transaction.atomic():
        if connection.vendor == "postgresql":
            raw = connection.connection
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY audit_auditevent ({', '.join(cols)}) FROM STDIN") as copy,
            ):
                for row in rows_iter():
                    copy.write_row(row)
        else:
            with connection.cursor() as cur:
                sql = (
                    f"INSERT INTO audit_auditevent ({', '.join(cols)}) "
                    f"VALUES ({', '.join(['%s'] * len(cols))})"
                )
                for row in rows_iter():
                    row[1] = connection.ops.adapt_datetimefield_value(row[1])
                    batch.append(row)
                    if len(batch) == 20_000:
                        cur.executemany(sql, batch)
                        batch = []
                if batch:
                    cur.executemany(sql, batch)
        with connection.cursor() as cur:
            cur.execute("DELETE FROM audit_chainhead")
        schema.init_head(connection)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE audit_auditevent")
    return {"rows": rows, "seconds": time.perf_counter() - t0}


def child_verify() -> dict:
    """Time the walk; then walk again under tracemalloc for Python's own peak memory (RSS on
    SQLite also counts the page cache and the memory-mapped file that settings configure)."""
    _setup_django()
    import tracemalloc

    from kenshin.audit.verify import verify

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    report = verify()
    seconds = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    verify()
    python_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "ok": report.ok,
        "rows": report.rows,
        "seconds": seconds,
        "peak_mib": rss1 / 1024,
        "growth_mib": (rss1 - rss0) / 1024,
        "python_peak_mib": python_peak / 2**20,
    }


# ---------------------------------------------------------------- parent side


def _env(db: str) -> dict[str, str]:
    env = child_env(db)
    if db == "postgres":
        env["DATABASE_URL"] = AUDIT_PG_URL
    else:
        env["KENSHIN_VAR_DIR"] = str(VAR)
    return env


def _child(db: str, kind: str, spec: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(spec or {})],
        env=_env(db), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fresh(db: str) -> None:
    if db == "postgres":
        import psycopg

        admin = AUDIT_PG_URL.rsplit("/", 1)[0] + "/postgres"
        name = AUDIT_PG_URL.rsplit("/", 1)[1]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    else:
        VAR.mkdir(parents=True, exist_ok=True)
        for p in VAR.glob("kenshin.sqlite3*"):
            p.unlink()
    _child(db, "setup")


def scenario(db: str, variant: str, writers: int, total: int, per_tx: int = 1, sync_off=False):
    """Run `writers` processes appending `total` events in all; return appends per second."""
    _child(db, "reset")
    sig = VAR / "signals"
    sig.mkdir(parents=True, exist_ok=True)
    for p in sig.iterdir():
        p.unlink()
    go = sig / "go"
    procs = []
    for w in range(writers):
        spec = {
            "worker": w, "n": total // writers, "per_tx": per_tx, "variant": variant,
            "ready": str(sig / f"ready{w}"), "go": str(go), "sync_off": sync_off,
        }  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--child", "writer", json.dumps(spec)],
                env=_env(db),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    while len([p for p in sig.iterdir() if p.name.startswith("ready")]) < writers:
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit(procs[0].communicate()[1])
        time.sleep(0.01)
    start = time.time()
    go.touch()
    ends = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(err)
        ends.append(json.loads(out.strip().splitlines()[-1])["end"])
    rate = (total // writers * writers) / (max(ends) - start)
    if variant != "raw":
        check = _child(db, "check")
        if not check["ok"] or check["rows"] != total // writers * writers:
            raise SystemExit(f"chain broken after {variant}/{writers}: {check}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--appends", type=int, default=2400, help="appends per scenario")
    parser.add_argument("--verify-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median shown)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"))
    args = parser.parse_args()
    if args.child:
        kind, spec = args.child[0], json.loads(args.child[1])
        out = {
            "setup": child_setup,
            "reset": child_reset,
            "check": child_check,
            "verify": child_verify,
            "writer": lambda: child_writer(spec),
            "generate": lambda: child_generate(spec["rows"]),
        }[kind]()
        print(json.dumps(out))
        return

    n = args.appends

    def measure(db: str, variant: str, writers: int, per_tx: int = 1, sync_off=False):
        rates = sorted(
            scenario(db, variant, writers, n, per_tx, sync_off) for _ in range(args.runs)
        )
        return rates[len(rates) // 2], rates[0], rates[-1]

    for db in args.db:
        _fresh(db)
        rows = []
        raw1 = measure(db, "raw", 1)
        rows.append(("raw INSERT, 1 per transaction", 1, raw1, None))
        raw4 = measure(db, "raw", 4)
        rows.append(("raw INSERT, 1 per transaction", 4, raw4, None))
        for label, writers, per_tx in (
            ("ours, own transaction", 1, 1),
            ("ours, autocommit (no caller transaction)", 1, 0),
            ("ours, own transaction", 4, 1),
            ("ours, own transaction", 8, 1),
            ("ours, autocommit (no caller transaction)", 4, 0),
            ("ours, 10 per transaction", 1, 10),
            ("ours, 100 per transaction", 1, 100),
            ("ours, 10 per transaction", 4, 10),
        ):
            rate = measure(db, "ours", writers, per_tx)
            raw = raw1 if writers == 1 else raw4
            rows.append((label, writers, rate, rate[0] / raw[0] if per_tx == 1 else None))
        for writers in (1, 4):
            rows.append(
                ("v1 (advisory lock + ORDER BY)", writers, measure(db, "v1", writers), None)
            )
        if db == "postgres":
            rate = measure(db, "ours", 4, 1, sync_off=True)
            rows.append(("ours, sync off (diagnostic only)", 4, rate, None))
        for label, writers, (med, lo, hi), ratio in rows:
            r = f"  ours/raw {ratio:.2f}" if ratio else ""
            print(
                f"{db:<9} {label:<42} writers {writers}  {med:8,.0f} appends/s "
                f"({lo:,.0f}–{hi:,.0f}){r}"
            )
        sys.stdout.flush()
        _child(db, "reset")
        gen = _child(db, "generate", {"rows": args.verify_rows})
        ver = _child(db, "verify")
        assert ver["ok"] and ver["rows"] == args.verify_rows, ver
        per_million = ver["seconds"] * 1_000_000 / ver["rows"]
        scaled = "" if ver["rows"] >= 1_000_000 else f" (scaled from {ver['rows']:,} rows)"
        print(
            f"{db:<9} verify {ver['rows']:,} rows in {ver['seconds']:.1f} s = "
            f"{per_million:.1f} s per million rows{scaled}; {ver['rows'] / ver['seconds']:,.0f} rows/s; "
            f"peak RSS {ver['peak_mib']:.0f} MiB (grew {ver['growth_mib']:.0f} MiB during the walk), "
            f"Python heap peak {ver['python_peak_mib']:.1f} MiB; "
            f"generating + bulk insert took {gen['seconds']:.1f} s"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
