"""Kana-prefix + birth-date search over the register left by bench/residents_load.py.

    uv run python bench/residents_search.py --db sqlite postgres

1,000 random queries (fixed seed) through the staff search service (`services.search_residents`,
the ORM path the UI uses), after 100 warm-up queries: 90 % a kana prefix of 2–4 characters of a
real resident plus that resident's birth date, 10 % a prefix with a random birth date (mostly
misses). Prints p50 / p90 / p99 / max in ms (compare reference/perf-limits.md §F). Staff search
always carries the birth date, so there is no kana-only query to measure.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import date, timedelta

from _common import run_child


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p99": q[98], "max": ordered[-1], "n": len(ordered)}


def child(queries: int) -> dict:
    import django

    django.setup()
    from django.db import connection

    from kenshin.residents import services
    from kenshin.residents.models import ResidentVersion

    rng = random.Random(20261126)
    total = ResidentVersion.objects.filter(valid_to__isnull=True).count()
    ids = list(
        ResidentVersion.objects.filter(valid_to__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    picks = rng.sample(ids, queries + 100)
    people = {
        pk: (kana, birth)
        for pk, kana, birth in ResidentVersion.objects.filter(pk__in=picks).values_list(
            "pk", "name_kana", "birth_date"
        )
    }
    mixed = []
    for pk in picks:
        kana, birth = people[pk]
        prefix = kana[: rng.randint(2, 4)]
        if rng.random() < 0.1:
            birth = date(1930, 1, 1) + timedelta(days=rng.randrange(33_000))
        mixed.append((prefix, birth))

    def timed(fn, items):
        out, hits = [], 0
        for args in items:
            t0 = time.perf_counter()
            hits += len(fn(*args))
            out.append((time.perf_counter() - t0) * 1000)
        return out, hits

    search = lambda kana, birth: services.search_residents(kana=kana, birth_date=birth)  # noqa: E731
    timed(search, mixed[:100])
    both, hits = timed(search, mixed[100:])
    return {
        "db": connection.vendor,
        "residents": total,
        "kana_birth": percentiles(both),
        "kana_birth_hits": hits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.queries)))
        return
    for db in args.db:
        r = run_child(__file__, db, "--queries", str(args.queries))
        for label, key in (("kana prefix + birth date", "kana_birth"),):
            p = r[key]
            print(
                f"{r['db']:<11} {r['residents']:>9,} residents  {label:<26} n={p['n']}  "
                f"p50 {p['p50']:.2f} ms  p90 {p['p90']:.2f} ms  p99 {p['p99']:.2f} ms  max {p['max']:.2f} ms"
            )
        print(f"{'':<11} rows returned in all: {r['kana_birth_hits']:,}")


if __name__ == "__main__":
    main()
