"""Roster build for the whole demo city: ours vs one hand-written INSERT … SELECT.

    uv run python bench/roster.py --residents 1000000 --db sqlite postgres

For each database, in a fresh process and a fresh database:
  1. the demo city's register on 1 April 2025 (its full-load file, generated once under
     bench/out/) and FY2025 fiscal categories, bulk-inserted (the register load is not
     measured here: bench/residents_load.py does that), plus a synthetic screening history
     (FY2021–FY2024, about 0.35 exams per resident, 喫煙指数 on lung exams, HPV follow-ups);
  2. ``screening.services.build_roster(2025)`` — the first build, timed, with peak memory;
  3. the same build again (a rebuild: every row compared, nothing changes), timed;
  4. one hand-written INSERT … SELECT making the same decisions for every rostered method
     (the register, categories and history joined directly, methods as a VALUES list), into a
     table stored like the roster (keyed by year, method, 宛名番号) — timed; its row count
     must equal ours.
Prints the figures and the ratio ours / hand-written (target: < 20 s, ≤ 3×, < 1 GiB).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

import _common
from _common import OUT, PG_URL, ROOT

FY = 2025


def city_files(residents: int) -> tuple[Path, Path]:
    """The demo city's full-load file on 2025-04-01 and its FY2025 categories (made once)."""
    target = OUT / f"roster-city-{residents}"
    full = sorted(target.glob("01-resident-full-*.csv"))
    cats = sorted(target.glob("03-fiscal-categories-FY2025.csv"))
    if full and cats:
        return full[0], cats[0]
    sys.path.insert(0, str(ROOT / "src"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kenshin.settings")
    os.environ.setdefault("KENSHIN_ALLOW_DEV_SECRET", "1")
    import django

    django.setup()
    from datetime import date

    from kenshin.demo.city import generate_city

    started = time.perf_counter()
    paths = generate_city(
        target, residents=residents, seed=1, base_date=date(2025, 4, 1), end_date=date(2025, 4, 1)
    )
    print(f"generated {residents:,} residents in {time.perf_counter() - started:.1f} s", flush=True)
    full = next(p for p in paths if p.name.startswith("01-resident-full"))
    return full, next(target.glob("03-fiscal-categories-FY2025.csv"))


def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _load(full: Path, cats: Path) -> int:
    """Bulk-insert the register and categories (raw: this bench measures the roster only)."""
    from datetime import date

    from django.conf import settings
    from django.db import transaction

    from kenshin.core.bulk import bulk_insert
    from kenshin.residents import rules
    from kenshin.residents.actions import CATEGORY_FIELDS, VERSION_FIELDS
    from kenshin.residents.models import FiscalCategory, ResidentVersion

    mc = settings.MUNICIPALITY_CODE
    rows = []
    with full.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        head = next(reader)
        at = {name: i for i, name in enumerate(head)}
        for n, r in enumerate(reader, start=2):
            d = date.fromisoformat(r[at["異動日"]])
            rows.append((
                mc, r[at["宛名番号"]], d, None, "full_load", d, r[at["氏名"]], r[at["氏名カナ"]],
                r[at["氏名カナ"]], r[at["氏名"]], int(r[at["性別"]]),
                date.fromisoformat(r[at["生年月日"]]), "", r[at["住所"]], "", "",
                r[at["世帯番号"]], r[at["続柄"]], r[at["世帯主氏名"]],
                rules.STATUS_CODES[r[at["住民状態"]]], 1, n,
            ))  # fmt: skip
    cat_rows = []
    with cats.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for r in reader:
            cat_rows.append((mc, int(r[0]), r[1], rules.INSURANCE_CODES[r[2]],
                             rules.TAX_CODES[r[3]], 1))  # fmt: skip
    fields = [f if f != "feed" else "feed_id" for f in VERSION_FIELDS]
    with transaction.atomic():
        bulk_insert(ResidentVersion, fields, rows)
        bulk_insert(FiscalCategory, [*CATEGORY_FIELDS[:5], "feed_id"], cat_rows)
    return len(rows)


METHODS = [  # (method, programme) of FY2025's rostered methods, for the synthetic history
    ("gastric_xray", "gastric"), ("gastric_endoscopy", "gastric"), ("chest_xray", "lung"),
    ("fecal_occult_blood", "colorectal"), ("mammography", "breast"), ("cytology", "cervical"),
    ("periodontal_exam", "periodontal"), ("dxa", "osteoporosis"), ("hepatitis_test", "hepatitis"),
]  # fmt: skip


def _history(atena_nos: list[str]) -> int:
    from datetime import date

    from django.conf import settings
    from django.db import transaction

    from kenshin.core.bulk import bulk_insert
    from kenshin.screening.models import Exam

    rng = random.Random(5)
    mc = settings.MUNICIPALITY_CODE
    rows = []
    for atena in atena_nos:
        if rng.random() < 0.7:
            continue
        for _ in range(rng.choice((1, 1, 1, 2))):
            method, programme = rng.choice(METHODS)
            fy = rng.choice((2021, 2022, 2023, 2024))
            smoking = rng.choice((None, 200, 600, 900)) if method == "chest_xray" else None
            rows.append((mc, atena, fy, programme, method, date(fy, rng.randint(4, 12), 10),
                         "individual", "", smoking, None))  # fmt: skip
    fields = ["municipality_code", "atena_no", "fiscal_year", "programme", "method", "exam_date",
              "setting", "institution_code", "smoking_index", "follow_up_due"]  # fmt: skip
    with transaction.atomic():
        bulk_insert(Exam, fields, rows)
    return len(rows)


def handwritten_sql(vendor: str) -> str:
    """One INSERT … SELECT for every FY2025 method, written by hand from the catalogue."""
    age_key = (
        "CAST(REPLACE(r.birth_date, '-', '') AS INTEGER)"
        if vendor == "sqlite"
        else "CAST(to_char(r.birth_date, 'YYYYMMDD') AS INTEGER)"
    )
    d = (lambda s: f"'{s}'") if vendor == "sqlite" else (lambda s: f"DATE '{s}'")
    return f"""
WITH m (code, programme, sex, min_age, max_age, kind, coupon_age) AS (VALUES
    ('gastric_xray','gastric',0,40,0,'annual',0), ('gastric_endoscopy','gastric',0,50,0,'biennial_even',0),
    ('chest_xray','lung',0,40,0,'annual',0), ('sputum_cytology','lung',0,50,0,'annual',0),
    ('fecal_occult_blood','colorectal',0,40,0,'annual',0), ('mammography','breast',2,40,0,'biennial',40),
    ('breast_ultrasound','breast',2,30,39,'annual',0), ('cytology','cervical',2,20,29,'biennial',20),
    ('hpv_primary','cervical',2,30,0,'five',0), ('periodontal_exam','periodontal',0,20,70,'milestone',0),
    ('dxa','osteoporosis',2,40,70,'milestone',0), ('bone_ultrasound','osteoporosis',2,40,70,'milestone',0),
    ('hepatitis_test','hepatitis',0,40,0,'once',0)
  )
INSERT INTO bench_roster (fiscal_year, method, atena_no, sex, age, eligible, reason,
                          exemption, exemption_early, coupon)
SELECT 2025, t.code, t.atena_no, t.sex, t.age,
  CASE WHEN t.reason IN ('annual','cohort','catch_up','milestone','follow_up','move_in',
       'interval_due','first_hpv','never_tested','coupon') THEN 1 ELSE 0 END = 1,
  t.reason, t.ex, t.ex_early, t.reason = 'coupon'
FROM (
  SELECT p.atena_no, p.sex, p.age, m.code,
    CASE
      WHEN m.sex > 0 AND p.sex <> m.sex THEN 'sex'
      WHEN p.age < m.min_age THEN 'under_age'
      WHEN m.max_age > 0 AND p.age > m.max_age THEN 'over_age'
      WHEN m.code = 'sputum_cytology' AND COALESCE(s.smoking_index, 0) < 600 THEN 'smoking_index'
      WHEN m.coupon_age > 0 AND p.age - 1 = m.coupon_age THEN 'coupon'
      WHEN m.kind = 'annual' THEN 'annual'
      WHEN m.kind IN ('biennial', 'biennial_even') AND COALESCE(
           CASE m.programme WHEN 'gastric' THEN h.gastric_prev WHEN 'breast' THEN h.breast_prev
                ELSE h.cervical_prev END, 0) = 1 THEN 'screened_last_year'
      WHEN m.kind = 'biennial_even' AND (p.age / 2) * 2 = p.age THEN 'cohort'
      WHEN m.kind IN ('biennial', 'biennial_even') THEN 'catch_up'
      WHEN m.kind = 'milestone' AND p.age IN (20,30,40,50,60,70) AND m.code = 'periodontal_exam'
        THEN 'milestone'
      WHEN m.kind = 'milestone' AND m.code <> 'periodontal_exam'
        AND p.age IN (40,45,50,55,60,65,70) THEN 'milestone'
      WHEN m.kind = 'milestone' THEN 'not_milestone'
      WHEN m.kind = 'once' AND p.age = 40 THEN 'milestone'
      WHEN m.kind = 'once' AND COALESCE(h.hepatitis_ever, 0) = 0 THEN 'never_tested'
      WHEN m.kind = 'once' THEN 'tested_before'
      WHEN h.hpv_due BETWEEN {d("2025-04-01")} AND {d("2026-03-31")} THEN 'follow_up'
      WHEN p.age IN (30,35,40,45,50,55,60) THEN 'milestone'
      WHEN h.hpv_last IS NOT NULL AND 2025 - h.hpv_last < 5 THEN 'within_interval'
      WHEN p.moved_in >= {d("2024-04-01")} AND p.moved_in <= {d("2025-04-01")} THEN 'move_in'
      WHEN h.hpv_last IS NOT NULL THEN 'interval_due'
      WHEN COALESCE(h.cervical_prev, 0) = 0 THEN 'first_hpv'
      ELSE 'screened_last_year'
    END AS reason,
    CASE WHEN p.tax = 'public_assistance' THEN 'public_assistance'
         WHEN m.coupon_age > 0 AND p.age - 1 = m.coupon_age THEN 'coupon'
         WHEN p.tax = 'exempt' THEN 'tax_exempt' ELSE '' END AS ex,
    CASE WHEN COALESCE(p.tax, p.tax_prev) = 'public_assistance' THEN 'public_assistance'
         WHEN m.coupon_age > 0 AND p.age - 1 = m.coupon_age THEN 'coupon'
         WHEN p.tax_prev = 'exempt' THEN 'tax_exempt' ELSE '' END AS ex_early
  FROM (
    SELECT r.atena_no, r.sex, (20260401 - {age_key}) / 10000 AS age,
           c.tax_category AS tax, cp.tax_category AS tax_prev, mv.moved_in
    FROM residents_residentversion r
    LEFT JOIN (SELECT atena_no, MAX(valid_from) AS moved_in FROM residents_residentversion
               WHERE change_kind = 'move_in' AND valid_from <= {d("2025-04-01")}
               GROUP BY atena_no) mv ON mv.atena_no = r.atena_no
    LEFT JOIN residents_fiscalcategory c ON c.atena_no = r.atena_no AND c.fiscal_year = 2025
    LEFT JOIN residents_fiscalcategory cp ON cp.atena_no = r.atena_no AND cp.fiscal_year = 2024
    WHERE r.valid_from <= {d("2025-04-01")}
      AND (r.valid_to IS NULL OR r.valid_to > {d("2025-04-01")}) AND r.status = 'resident'
  ) p
  CROSS JOIN m
  LEFT JOIN (
    SELECT atena_no,
      MAX(CASE WHEN programme = 'gastric' AND fiscal_year = 2024 THEN 1 END) AS gastric_prev,
      MAX(CASE WHEN programme = 'breast' AND method <> 'breast_ultrasound'
               AND fiscal_year = 2024 THEN 1 END) AS breast_prev,
      MAX(CASE WHEN programme = 'cervical' AND fiscal_year = 2024 THEN 1 END) AS cervical_prev,
      MAX(CASE WHEN programme = 'hepatitis' THEN 1 END) AS hepatitis_ever,
      MAX(CASE WHEN method = 'hpv_primary' THEN fiscal_year END) AS hpv_last,
      MAX(CASE WHEN method = 'hpv_primary' THEN follow_up_due END) AS hpv_due
    FROM screening_exam WHERE fiscal_year < 2025 GROUP BY atena_no
  ) h ON h.atena_no = p.atena_no
  LEFT JOIN (
    SELECT atena_no, smoking_index FROM (
      SELECT atena_no, smoking_index, ROW_NUMBER() OVER (PARTITION BY atena_no
             ORDER BY exam_date DESC, id DESC) AS rn
      FROM screening_exam WHERE smoking_index IS NOT NULL AND exam_date <= {d("2025-04-01")}
    ) latest WHERE rn = 1
  ) s ON s.atena_no = p.atena_no
) t WHERE t.reason NOT IN ('sex', 'under_age', 'over_age', 'smoking_index', 'not_milestone')
ORDER BY t.code, t.atena_no
"""


def child(phase: str, full: str, cats: str) -> dict:
    """One phase in its own process, so that each peak memory figure is that phase's own."""
    import django
    from django.core.management import call_command

    django.setup()
    from datetime import date

    from django.db import connection, transaction

    from kenshin.core import clock
    from kenshin.programs import services as programs
    from kenshin.screening import services as screening

    if phase == "load":
        call_command("migrate", verbosity=0)
        with clock.frozen(date(2026, 11, 26)):
            programs.load_shipped()
            n = _load(Path(full), Path(cats))
            exams = _history(_atena_nos())
        return {"residents": n, "exams": exams}
    if phase in ("build", "rebuild"):
        t0 = time.perf_counter()
        marks: list[tuple[str, float]] = []
        with clock.frozen(date(2026, 11, 26)):
            report = screening.build_roster(
                FY, progress=lambda stage, _d, _t: marks.append((stage, time.perf_counter()))
            )
        end = time.perf_counter()
        # Where the time went: preparing (register, history), the methods' writes, and the
        # rest (the 対象者数 table, the build record, commit).
        stages = {
            "prepare": marks[1][1] - t0,
            "methods": marks[-2][1] - marks[1][1],
            "count_commit": end - marks[-2][1],
        }
        return {
            "s": end - t0, "peak_mib": _peak_kib() / 1024, "stages": stages,
            "rows": sum(v["rows"] for v in report.per_method.values()),
            "eligible": sum(v["eligible"] for v in report.per_method.values()),
            "inserted": report.inserted, "changed": report.changed,
        }  # fmt: skip
    with connection.cursor() as c:
        c.execute("DROP TABLE IF EXISTS bench_roster")
        # The same storage as the roster's: keyed by (年度, 検査方法, 宛名番号), no surrogate id.
        c.execute(
            "CREATE TABLE bench_roster (fiscal_year INTEGER, "
            "method VARCHAR(30), atena_no VARCHAR(15), sex INTEGER, age INTEGER, "
            "eligible BOOLEAN, reason VARCHAR(20), exemption VARCHAR(20), "
            "exemption_early VARCHAR(20), coupon BOOLEAN, "
            "PRIMARY KEY (fiscal_year, method, atena_no)) WITHOUT ROWID"
            if connection.vendor == "sqlite"
            else "CREATE TABLE bench_roster (fiscal_year INTEGER, "
            'method VARCHAR(30) COLLATE "C", atena_no VARCHAR(15) COLLATE "C", sex INTEGER, '
            "age INTEGER, eligible BOOLEAN, reason VARCHAR(20), exemption VARCHAR(20), "
            "exemption_early VARCHAR(20), coupon BOOLEAN, "
            "PRIMARY KEY (fiscal_year, method, atena_no))"
        )
    sql = handwritten_sql(connection.vendor)
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        c.execute(sql)
    hand = time.perf_counter() - t0
    with connection.cursor() as c:
        c.execute("SELECT COUNT(*), SUM(CASE WHEN eligible THEN 1 ELSE 0 END) FROM bench_roster")
        hand_rows, hand_eligible = c.fetchone()
    return {"s": hand, "rows": hand_rows, "eligible": int(hand_eligible or 0),
            "peak_mib": _peak_kib() / 1024}  # fmt: skip


def _atena_nos() -> list[str]:
    from kenshin.residents.models import ResidentVersion

    return list(ResidentVersion.objects.order_by("atena_no").values_list("atena_no", flat=True))


def _fresh(db: str) -> None:
    if db == "postgres":
        import psycopg

        admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
        name = PG_URL.rsplit("/", 1)[1]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_linkage" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}_linkage"')
    else:
        for name in ("kenshin", "linkage"):
            for suffix in ("", "-wal", "-shm"):
                (OUT / "sqlite" / f"{name}.sqlite3{suffix}").unlink(missing_ok=True)
        (OUT / "sqlite").mkdir(parents=True, exist_ok=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = child(sys.argv[2], sys.argv[3], sys.argv[4])
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    full, cats = city_files(args.residents)
    for db in args.db:
        _fresh(db)
        run = {
            phase: _common.run_child(__file__, db, phase, str(full), str(cats))
            for phase in ("load", "build", "rebuild", "hand")
        }
        load, build, rebuild, hand = run["load"], run["build"], run["rebuild"], run["hand"]
        assert (build["rows"], build["eligible"]) == (hand["rows"], hand["eligible"]), run
        assert rebuild["changed"] == 0 and rebuild["inserted"] == 0, rebuild
        print(
            f"{db:8s} residents {load['residents']:,}  exams {load['exams']:,}  roster rows "
            f"{build['rows']:,} (eligible {build['eligible']:,}; the hand-written statement "
            "makes the same)"
        )
        print(
            f"{'':8s} build {build['s']:.1f} s (peak RSS {build['peak_mib']:.0f} MiB)  "
            f"rebuild, nothing changed {rebuild['s']:.1f} s  hand-written INSERT … SELECT "
            f"{hand['s']:.1f} s  ours/hand {build['s'] / hand['s']:.2f}×",
            flush=True,
        )
        for phase, result in (("build", build), ("rebuild", rebuild)):
            st = result["stages"]
            print(
                f"{'':8s} {phase}: prepare {st['prepare']:.1f} s, methods {st['methods']:.1f} s, "
                f"対象者数 table + commit {st['count_commit']:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
