"""Full load of N residents: our import vs a raw bulk insert of the same rows.

    uv run python bench/residents_load.py --rows 1000000 --db sqlite postgres

For each database: a fresh schema, then
  1. our import (`kenshin residents import` path: hash, encoding detection, parse, validate,
     normalise, write, search indexes rebuilt) of the feed file, with its peak memory;
  2. the same rows read back from the table, the table emptied, and written again with the
     raw method of reference/perf-limits.md §A (COPY on PostgreSQL, one executemany in one
     transaction on SQLite) into the table without its search indexes;
  3. building the search indexes after the raw insert.
It prints the figures and the ratios ours / raw and ours / (raw + indexes). The feed file is
the demo city's full-load file (deterministic), generated once under bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import _common
from _common import OUT, PG_URL, ROOT


def feed_file(rows: int) -> Path:
    """The demo city's full-load file for `rows` residents (generated once, then reused)."""
    target = OUT / f"city-{rows}"
    found = sorted(target.glob("01-resident-full-*.csv"))
    if found:
        return found[0]
    sys.path.insert(0, str(ROOT / "src"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kenshin.settings")
    os.environ.setdefault("KENSHIN_ALLOW_DEV_SECRET", "1")
    import django

    django.setup()
    from datetime import date

    from kenshin.demo.city import generate_city

    started = time.perf_counter()
    paths = generate_city(
        target, residents=rows, seed=1, base_date=date(2023, 4, 1), end_date=date(2023, 4, 1)
    )
    print(f"generated {rows:,} residents in {time.perf_counter() - started:.1f} s", flush=True)
    return next(p for p in paths if p.name.startswith("01-resident-full"))


def _peak_kib() -> int:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    execve, so a child would report the parent's peak (the file generator's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(db: str, path: Path) -> dict:
    """Run in a fresh process per database so that peak memory is the import's own."""
    import django
    from django.core.management import call_command

    django.setup()
    from django.db import connection, transaction

    from kenshin.core import clock
    from kenshin.core.bulk import bulk_insert
    from kenshin.linkage import services as linkage_services
    from kenshin.residents import actions
    from kenshin.residents.models import ResidentVersion

    call_command("migrate", verbosity=0)
    call_command("migrate", database="linkage", verbosity=0)
    ResidentVersion.objects.all().delete() if connection.vendor == "sqlite" else None
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("TRUNCATE residents_residentversion, residents_feedimport CASCADE")
    Path(os.environ["KENSHIN_LINKAGE_CREDENTIAL_FILE"]).unlink(missing_ok=True)
    linkage_services.ensure_embedded_setup(actor="bench")

    from datetime import date

    with clock.frozen(date(2026, 11, 26)):
        rss_before = _peak_kib()
        t0 = time.perf_counter()
        report = actions.import_feed_file(path, actor="bench")
        ours = time.perf_counter() - t0
        peak_kib = _peak_kib()
    assert report.ok, [str(e) for e in report.errors[:5]]
    n = report.inserted

    # Raw for the rows the linkage stage wrote (統合宛名, 業務宛名, encrypted 個人番号, one
    # access-log row per 宛名, and the main side's ResidentLink): the same rows, re-inserted.
    linkage_rows = _take_linkage_rows()
    t0 = time.perf_counter()
    for model, alias, fields_, rows_ in linkage_rows:
        with transaction.atomic(using=alias):
            bulk_insert(model, fields_, rows_, using=alias)
    raw_linkage = time.perf_counter() - t0

    fields = actions.VERSION_FIELDS
    cols = ", ".join(ResidentVersion._meta.get_field(f).column for f in fields)
    with connection.cursor() as c:
        c.execute(f"SELECT {cols} FROM residents_residentversion ORDER BY id")
        rows = c.fetchall()
    with transaction.atomic():
        with connection.cursor() as c:
            if connection.vendor == "postgresql":
                c.execute("TRUNCATE residents_residentversion")
            else:
                c.execute("DELETE FROM residents_residentversion")
        actions._drop_search_indexes()
    if connection.vendor == "sqlite":
        with connection.cursor() as c:
            c.execute("VACUUM")
    t0 = time.perf_counter()
    with transaction.atomic():
        bulk_insert(ResidentVersion, fields, rows)
    raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    with transaction.atomic():
        actions._create_search_indexes()
    indexes = time.perf_counter() - t0
    return {
        "db": db,
        "rows": n,
        "ours_s": ours,
        "raw_s": raw,
        "raw_linkage_s": raw_linkage,
        "linked": sum(len(r[3]) for r in linkage_rows if r[0].__name__ == "ResidentLink"),
        "index_s": indexes,
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_mib": rss_before / 1024,
        "file_mib": path.stat().st_size / 2**20,
        "encoding": report.encoding,
    }


def _take_linkage_rows() -> list[tuple]:
    """Read back every row the linkage stage wrote, then empty those tables (guards lifted:
    this is a throwaway benchmark database) so that the raw insert starts from the same state."""
    from django.db import connections, transaction

    from kenshin.linkage import schema as linkage_schema
    from kenshin.linkage.models import Atena, LinkageEvent, MyNumber, Person
    from kenshin.residents.models import ResidentLink

    taken = []
    for model, alias in (
        (Person, "linkage"),
        (Atena, "linkage"),
        (MyNumber, "linkage"),
        (LinkageEvent, "linkage"),
        (ResidentLink, "default"),
    ):
        fields = [f.attname for f in model._meta.concrete_fields]
        cols = ", ".join(model._meta.get_field(f).column for f in fields)
        with connections[alias].cursor() as c:
            c.execute(f"SELECT {cols} FROM {model._meta.db_table}")
            rows = c.fetchall()
        json_at = [
            i
            for i, f in enumerate(fields)
            if model._meta.get_field(f).get_internal_type() == "JSONField"
        ]
        if json_at:  # PostgreSQL hands jsonb back as dicts; COPY wants its text
            rows = [
                tuple(
                    json.dumps(v) if i in json_at and not isinstance(v, str) else v
                    for i, v in enumerate(r)
                )
                for r in rows
            ]
        taken.append((model, alias, fields, rows))
    linkage = connections["linkage"]
    linkage_schema.remove(linkage)
    for model, alias, _f, _r in reversed(taken):
        with transaction.atomic(using=alias), connections[alias].cursor() as c:
            c.execute(f"DELETE FROM {model._meta.db_table}")
    return taken


def run_child(db: str, path: Path) -> dict:
    if db == "postgres":
        _ensure_pg_database()
    else:
        for name in ("kenshin", "linkage"):
            for suffix in ("", "-wal", "-shm"):
                (OUT / "sqlite" / f"{name}.sqlite3{suffix}").unlink(missing_ok=True)
        (OUT / "sqlite").mkdir(parents=True, exist_ok=True)
    return _common.run_child(__file__, db, db, "--file", str(path))


def _ensure_pg_database() -> None:
    """A new, empty benchmark database for every run (as the SQLite file is)."""
    import psycopg

    admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
    name = PG_URL.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        for db_name in (name, f"{name}_linkage"):  # the main and the linkage database
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db_name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child")
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.file)))
        return
    path = args.file or feed_file(args.rows)
    print(f"feed file: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    header = (
        f"{'db':<9}{'rows':>10}{'ours s':>9}{'rows/s':>10}{'raw s':>8}{'raw rows/s':>12}"
        f"{'idx s':>7}{'link s':>8}{'ours/raw':>10}{'ours/(raw+idx+link)':>21}{'peak MiB':>10}"
    )
    results = []
    by_db: dict[str, list[dict]] = {}
    for db in args.db:
        for _ in range(args.runs):
            r = run_child(db, path)
            results.append(r)
            by_db.setdefault(db, []).append(r)
            print(header if len(results) == 1 else "", end="\n" if len(results) == 1 else "")
            print(
                f"{r['db']:<9}{r['rows']:>10,}{r['ours_s']:>9.2f}{r['rows'] / r['ours_s']:>10,.0f}"
                f"{r['raw_s']:>8.2f}{r['rows'] / r['raw_s']:>12,.0f}{r['index_s']:>7.2f}"
                f"{r['raw_linkage_s']:>8.2f}{r['ours_s'] / r['raw_s']:>10.2f}"
                f"{r['ours_s'] / (r['raw_s'] + r['index_s'] + r['raw_linkage_s']):>21.2f}"
                f"{r['peak_rss_mib']:>10.0f}",
                flush=True,
            )

    if args.runs > 1:
        import statistics

        print(f"medians of {args.runs} runs (min–max):")
        for db, rs in by_db.items():
            for key in ("ours_s", "raw_s", "index_s"):
                vals = [r[key] for r in rs]
                print(
                    f"  {db:<9}{key:<8} {statistics.median(vals):6.2f} s "
                    f"({min(vals):.2f}–{max(vals):.2f})"
                )
            ratios = [r["ours_s"] / r["raw_s"] for r in rs]
            print(
                f"  {db:<9}ours/raw {statistics.median(ratios):6.2f}   "
                f"({min(ratios):.2f}–{max(ratios):.2f})"
            )


if __name__ == "__main__":
    main()
