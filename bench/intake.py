"""Result intake (issue 7): a clinic's 300,000-row CP932 CSV through the staged pipeline, vs raw.

    uv run python bench/intake.py --rows 300000 --residents 300000 --db sqlite postgres

Why: a city receives its screening results as files from clinics and the 検診機関; a large
institution's year is hundreds of thousands of rows. The intake must read, check, match and
stage such a file (parse CP932, validate every cell against the year's catalogue, confirm each
row's person by 受診券番号 + 生年月日 + 性別 + 氏名カナ, compare with the exams on record) and
then commit it, fast enough to be a routine job. This measures that, and how far it is from
simply writing the same rows.

For each database, in a fresh database:
  1. setup (own process): the demo city's register (``roster.city_files``, bulk-inserted),
     FY2025 categories, the shipped programme catalogues, the synthetic FY2021–FY2024 history of
     bench/roster.py, and FY2025 vouchers issued to everyone (serial = rank by 宛名番号);
  2. the file (made once under bench/out/, deterministic from --seed): one row per person and
     programme across 10 methods, exam dates in FY2025 up to today, ~10 % of rows with 和暦
     dates, half the kana half-width, a few % 要精検, ~0.5 % rows with an error and ~0.2 %
     with a wrong 生年月日 (quarantine) — their counts are printed and checked;
  3. measure (own process): ``actions.receive_file`` + ``actions.stage_batch`` (parse, check,
     match, stage), then ``actions.commit_batch(VALID_ONLY)``, each timed, with the stages
     inside them (the columnar fast path's steps — intake/columnar.py — and the row path's
     for the rows it leaves; the exam writes, 要精検 cases), the process's peak RSS, and the
     exams written (must equal the batch's new rows);
  4. raw (own process): the same file parsed with csv + cp932 only (no checks; 和暦 dates
     converted), then the rows the pipeline wrote inserted into an empty copy of the exam
     table (same columns and indexes): COPY on PostgreSQL, executemany in one transaction on
     SQLite. Timed separately: parse, insert.
Prints a table and one JSON line per child. ``--profile`` adds a cProfile run of the measure
child (figures inflated by the profiler; the top functions go to bench/out/intake-<db>.txt).
Target: ≥ 50,000 rows/s end to end on both databases, peak memory < 1 GiB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import statistics
import sys
import time
import unicodedata
from datetime import date, timedelta
from pathlib import Path

import _common
import roster
from _common import OUT

FY = 2025
FY_START, FY_END = date(2025, 4, 1), date(2026, 3, 31)
CLINICS = [f"34100{n:05d}" for n in range(1, 61)]


# ------------------------------------------------------------------------------ the file


def _half_width_table() -> dict[str, str]:
    """Full-width katakana (and the ideographic space) → half-width, where CP932 has it."""
    table = {"\u3000": " ", "ー": "ｰ", "・": "･"}
    halves = [chr(c) for c in range(0xFF66, 0xFF9E)]
    for h in halves:
        table.setdefault(unicodedata.normalize("NFKC", h), h)
        for mark in ("ﾞ", "ﾟ"):
            full = unicodedata.normalize("NFKC", h + mark)
            if len(full) == 1:
                table.setdefault(full, h + mark)
    return table


_HALF = str.maketrans(_half_width_table())


def _in_cp932(text: str) -> bool:
    try:
        text.encode("cp932")
    except UnicodeEncodeError:
        return False
    return True


# (method, programme, sex (0 any, 2 women), min age, max age, setting codes)
METHODS = [
    ("fecal_occult_blood", "colorectal", 0, 40, 200, ("1", "2")),
    ("chest_xray", "lung", 0, 40, 200, ("1", "2")),
    ("gastric_xray", "gastric", 0, 40, 200, ("2",)),
    ("gastric_endoscopy", "gastric", 0, 50, 200, ("1",)),
    ("mammography", "breast", 2, 40, 200, ("1", "2")),
    ("cytology", "cervical", 2, 20, 29, ("1", "2")),
    ("hpv_primary", "cervical", 2, 30, 60, ("1",)),
    ("periodontal_exam", "periodontal", 0, 20, 70, ("1",)),
    ("dxa", "osteoporosis", 2, 40, 70, ("1",)),
    ("hepatitis_test", "hepatitis", 0, 40, 200, ("1",)),
]
PROGRAMME = {m[0]: m[1] for m in METHODS}


def _pick(rng: random.Random, common: list[str], rare: list[tuple[str, float]]) -> str:
    r = rng.random()
    for value, share in rare:
        if r < share:
            return value
        r -= share
    return rng.choice(common)


def _results(rng: random.Random, method: str) -> dict[str, str]:
    """Result cells by layout key: codes or labels, a few % 要精検."""
    if method == "fecal_occult_blood":
        return {"day1": _pick(rng, ["陰性", "negative"], [("陽性", 0.02)]),
                "day2": _pick(rng, ["陰性", "negative"], [("positive", 0.02)])}  # fmt: skip
    if method == "chest_xray":
        return {"judgement": _pick(rng, ["B", "B", "C"], [("E1", 0.012), ("E2", 0.003),
                                                          ("D2", 0.01)])}  # fmt: skip
    if method == "gastric_xray":
        return {"judgement": _pick(rng, ["1", "2", "2"], [("3a", 0.02), ("4", 0.003)])}
    if method == "gastric_endoscopy":
        return {"judgement": _pick(rng, ["no_findings", "benign"], [("suspected_cancer", 0.015),
                                                                   ("other_disease", 0.02)])}  # fmt: skip
    if method == "mammography":
        return {"category": _pick(rng, ["1", "1", "2"], [("3", 0.03), ("4", 0.005)])}
    if method == "cytology":
        return {"adequacy": _pick(rng, ["adequate", "適正"], [("inadequate", 0.005)]),
                "bethesda": _pick(rng, ["NILM"], [("ASC-US", 0.02), ("LSIL", 0.01)])}  # fmt: skip
    if method == "hpv_primary":
        if rng.random() < 0.9:
            return {"hpv": rng.choice(["negative", "陰性"])}
        return {"hpv": "positive", "triage_adequacy": "adequate",
                "triage": _pick(rng, ["NILM"], [("ASC-US", 0.2), ("LSIL", 0.1)])}  # fmt: skip
    if method == "periodontal_exam":
        return {"judgement": _pick(rng, ["normal", "guidance"], [("seiken", 0.04)])}
    if method == "dxa":
        return {"judgement": _pick(rng, ["normal", "guidance"], [("seiken", 0.04)])}
    return {"hbs": _pick(rng, ["negative"], [("positive", 0.01)]),
            "hcv": _pick(rng, ["unlikely"], [("likely", 0.005)])}  # fmt: skip


# Ways a row goes wrong (each an error the checks must report).
ERRORS = ("bad_value", "missing_item", "bad_sex", "wrong_setting", "out_of_year", "bad_voucher")


def _spoil(rng: random.Random, row: dict[str, str], method: str) -> str:
    kind = rng.choice(ERRORS)
    if kind == "bad_value":
        key = next(
            k for k in ("judgement", "category", "day1", "adequacy", "hpv", "hbs") if k in row
        )
        row[key] = "X9"
    elif kind == "missing_item":
        key = next(
            k for k in ("judgement", "category", "day2", "bethesda", "hpv", "hcv") if k in row
        )
        row[key] = ""
    elif kind == "bad_sex":
        row["sex"] = "3"
    elif kind == "wrong_setting":  # group-only gastric X-ray as individual, and vice versa
        row["setting"] = {"gastric_xray": "1", "gastric_endoscopy": "2"}.get(method, "9")
    elif kind == "out_of_year":
        row["exam_date"] = "2024-12-10"
    else:
        row["voucher_no"] = row["voucher_no"][:-1]  # 9 digits
    return kind


def make_file(full: Path, rows: int, seed: int, today: date) -> tuple[Path, dict]:
    """The result file (CP932) and what it holds; made once per (rows, residents, seed, today)."""
    sys.path.insert(0, str(_common.ROOT / "src"))
    from kenshin.core.fiscal import fy_end_age
    from kenshin.core.wareki import to_wareki, to_wareki_short
    from kenshin.intake.layout import COLUMNS, header_row
    from kenshin.screening.vouchers import voucher_no

    target = OUT / f"intake-{rows}-{full.parent.name}-s{seed}-{today:%Y%m%d}.csv"
    facts_path = target.with_suffix(".json")
    if target.exists() and facts_path.exists():
        return target, json.loads(facts_path.read_text())
    people = []
    with full.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        head = next(reader)
        at = {name: i for i, name in enumerate(head)}
        for r in reader:
            people.append((r[at["宛名番号"]], r[at["氏名カナ"]], int(r[at["性別"]]),
                           date.fromisoformat(r[at["生年月日"]]), r[at["住民状態"]]))  # fmt: skip
    people.sort()
    # issue_vouchers(2025, every 宛名番号 in order) gives serial 1, 2, … (checked by setup).
    voucher = {p[0]: voucher_no(FY, i) for i, p in enumerate(people, start=1)}
    rng = random.Random(seed)
    order = [p for p in people if p[4] == "1"]
    rng.shuffle(order)
    last = min(FY_END, today)
    span = (last - FY_START).days
    out: list[list[str]] = []
    skip: list[int] = []  # row numbers (header = 1) the pipeline must not write
    counts = {"rows": 0, "error": 0, "quarantined": 0, "wareki": 0, "half_width_kana": 0,
              "by_error": {}, "by_method": {}}  # fmt: skip
    taken: set[tuple[str, str]] = set()  # (宛名番号, programme): one exam per programme
    passes = 0
    while len(out) < rows:
        passes += 1
        for atena, kana, sex, birth, _ in order:
            if len(out) >= rows:
                break
            age = fy_end_age(birth, FY)
            fits = [m for m in METHODS if (m[2] == 0 or m[2] == sex) and m[3] <= age <= m[4]
                    and (atena, m[1]) not in taken]  # fmt: skip
            if not fits or rng.random() < 0.25:
                continue
            method, programme, _, _, _, settings = rng.choice(fits)
            taken.add((atena, programme))
            exam = FY_START + timedelta(days=rng.randint(0, span))
            half = rng.random() < 0.5
            if not half and not _in_cp932(kana):  # ヷ and the like: CP932 has only ﾜﾞ
                half = True
            wareki = rng.random() < 0.10
            row = {
                "voucher_no": voucher[atena],
                "name_kana": kana.translate(_HALF) if half else kana,
                "birth_date": (to_wareki(birth) if rng.random() < 0.5 else to_wareki_short(birth))
                if wareki else birth.isoformat(),
                "sex": str(sex),
                "exam_date": to_wareki(exam) if wareki else exam.isoformat(),
                "institution_code": rng.choice(CLINICS),
                "setting": rng.choice(settings),
                "method": method,
                **_results(rng, method),
            }  # fmt: skip
            if method == "chest_xray" and rng.random() < 0.6:
                row["smoking_index"] = str(rng.choice((0, 100, 200, 400, 600, 800, 1000)))
            if row["setting"] == "2":
                row["place"] = f"第{rng.randint(1, 30)}会場"
            row_no = len(out) + 2
            r = rng.random()
            if r < 0.005:
                kind = _spoil(rng, row, method)
                counts["error"] += 1
                counts["by_error"][kind] = counts["by_error"].get(kind, 0) + 1
                skip.append(row_no)
            elif r < 0.007:
                wrong = birth + timedelta(days=rng.choice((-366, -1, 1, 31)))
                row["birth_date"] = wrong.isoformat()
                counts["quarantined"] += 1
                skip.append(row_no)
            counts["wareki"] += wareki
            counts["half_width_kana"] += half
            counts["by_method"][method] = counts["by_method"].get(method, 0) + 1
            out.append([row.get(c.key, "") for c in COLUMNS])
        if passes > 10:
            raise SystemExit(f"only {len(out):,} rows from this register: add --residents")
    counts["rows"] = len(out)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header_row())
    writer.writerows(out)
    target.write_bytes(buf.getvalue().encode("cp932"))
    counts["bytes"] = target.stat().st_size
    counts["skip"] = skip
    counts["first_voucher"] = voucher[people[0][0]]
    counts["last_voucher"] = voucher[people[-1][0]]
    facts_path.write_text(json.dumps(counts))
    return target, counts


# ------------------------------------------------------------------------------ children


def _setup(full: Path, cats: Path, facts: dict) -> dict:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from kenshin.programs import services as programs
    from kenshin.screening.models import Voucher
    from kenshin.screening.vouchers import issue_vouchers

    t0 = time.perf_counter()
    programs.load_shipped()
    n = roster._load(full, cats)
    atena_nos = roster._atena_nos()
    history = roster._history(atena_nos)
    issued = issue_vouchers("bench", FY, atena_nos)
    assert issued[atena_nos[0]] == facts["first_voucher"], "voucher serials differ from the file"
    assert issued[atena_nos[-1]] == facts["last_voucher"], "voucher serials differ from the file"
    return {"residents": n, "history_exams": history, "vouchers": Voucher.objects.count(),
            "s": time.perf_counter() - t0}  # fmt: skip


class _Timer:
    """Accumulated seconds per label, by wrapping module functions (no per-row cost beyond
    two clock reads where a per-row function is wrapped)."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, module: object, name: str, label: str) -> None:
        fn = getattr(module, name)
        s, calls, clock = self.s, self.calls, time.perf_counter
        s.setdefault(label, 0.0)
        calls.setdefault(label, 0)

        def timed(*args, **kwargs):
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                s[label] += clock() - t
                calls[label] += 1

        setattr(module, name, timed)

    def wrap_gen(self, module: object, name: str, label: str) -> None:
        """A function returning an iterator: time spent producing its items."""
        fn = getattr(module, name)
        s, clock = self.s, time.perf_counter
        s.setdefault(label, 0.0)

        def timed(*args, **kwargs):
            it = iter(fn(*args, **kwargs))
            while True:
                t = clock()
                try:
                    item = next(it)
                except StopIteration:
                    s[label] += clock() - t
                    return
                s[label] += clock() - t
                yield item

        setattr(module, name, timed)


def _instrument(per_row: bool) -> _Timer:
    from kenshin.intake import pipeline, rules
    from kenshin.screening import exam_history
    from kenshin.screening import services as screening

    timer = _Timer()
    if per_row:  # about 0.4 µs per wrapped call: off for the figures
        timer.wrap(rules, "check_row", "stage: check_row (per row)")
        timer.wrap(rules, "match_row", "stage: match_row (per row)")
        timer.wrap(pipeline, "_decide", "stage: _decide (per row)")
        timer.wrap(pipeline, "exam_values", "stage: exam_values (要精検; per row)")
    from kenshin.intake import columnar

    timer.wrap(columnar, "read_plain", "stage: columnar: read the file as lines")
    timer.wrap(columnar, "_prepared", "stage: columnar: split and check, by chunks")
    timer.wrap(columnar, "_matched", "stage: columnar: vouchers + holders + exams on record")
    timer.wrap(columnar, "_unique_in_file", "stage: columnar: unique in the file")
    timer.wrap(columnar, "_colliding", "stage: columnar: collisions with the row path")
    timer.wrap(columnar, "_staged", "stage: columnar: staged-row columns (要精検, ages)")
    timer.wrap(columnar, "to_parquet", "stage: columnar: the clean rows as one Parquet")
    timer.wrap(pipeline, "insert_frame_into", "commit: clean rows into the temporary table")
    timer.wrap(screening, "vouchers_by_number", "stage: vouchers_by_number")
    timer.wrap(pipeline.residents, "identities_of", "stage: register (identities_of)")
    timer.wrap(screening, "voucher_uses", "stage: voucher_uses")
    timer.wrap(pipeline, "bulk_insert", "stage: write staged rows (json + COPY/executemany)")
    timer.wrap(pipeline, "_stage_chunk", "stage: _stage_chunk (look-ups, match, decide)")
    timer.wrap(screening, "exams_on_record", "stage: exams_on_record")
    timer.wrap(screening, "insert_exams_from", "commit: INSERT … SELECT, 初回, cases")
    timer.wrap(exam_history, "_open_new_cases", "commit: cases of the 要精検")
    timer.wrap(screening, "revise_exams", "commit: revise_exams (updated rows)")
    return timer


def _measure(path: Path, profile: str, per_row: bool) -> dict:
    from django.db import connection

    from kenshin.intake import actions
    from kenshin.intake.models import CommitMode
    from kenshin.screening.models import Exam, FollowUpCase

    timer = None if profile else _instrument(per_row)
    before = Exam.objects.filter(fiscal_year=FY).count()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    with path.open("rb") as f:
        batch = actions.receive_file("uketsuke", f, path.name, fiscal_year=FY)
    t1 = time.perf_counter()
    batch = actions.stage_batch("uketsuke", batch.pk)
    t2 = time.perf_counter()
    counts = actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    t3 = time.perf_counter()
    if prof is not None:
        prof.disable()
        import pstats

        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumulative").print_stats(70)
        Path(profile).write_text(out.getvalue())
        stats.dump_stats(str(Path(profile).with_suffix(".prof")))
    written = Exam.objects.filter(fiscal_year=FY).count() - before
    batch.refresh_from_db()
    return {
        "vendor": connection.vendor, "state": batch.state, "counts": batch.counts,
        "upload_s": t1 - t0, "stage_s": t2 - t1, "commit_s": t3 - t2, "s": t3 - t0,
        "written": counts.written, "exams_in_table": written,
        "cases": FollowUpCase.objects.filter(fiscal_year=FY).count(),
        "peak_mib": roster._peak_kib() / 1024, "profiled": bool(profile),
        "stages": {k: round(v, 3) for k, v in timer.s.items()} if timer else {},
    }  # fmt: skip


def _copy_table(connection) -> None:
    """An empty table like screening_exam: same columns, defaults and indexes."""
    with connection.cursor() as c:
        c.execute("DROP TABLE IF EXISTS bench_exam")
        if connection.vendor == "postgresql":
            c.execute("CREATE TABLE bench_exam (LIKE screening_exam INCLUDING ALL)")
            return
        c.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'screening_exam' "
                  "AND sql IS NOT NULL")  # fmt: skip
        for kind, name, sql in c.fetchall():
            sql = sql.replace('"screening_exam"', '"bench_exam"')
            if kind == "index":
                sql = sql.replace(f'"{name}"', f'"bench_{name}"', 1)
            c.execute(sql)


def _raw(path: Path, facts: dict) -> dict:
    """The rows the pipeline wrote, parsed without checks and inserted as they are."""
    import csv as csvmod

    from django.conf import settings
    from django.db import connection, transaction

    from kenshin.core.wareki import parse_date
    from kenshin.intake.layout import COLUMNS
    from kenshin.screening.models import Voucher

    # Untimed: who holds each voucher (the raw insert needs the 宛名番号) and which rows the
    # pipeline did not write.
    holder = dict(Voucher.objects.filter(fiscal_year=FY).values_list("voucher_no", "atena_no"))
    skip = set(facts["skip"])
    _copy_table(connection)
    mc = settings.MUNICIPALITY_CODE
    col = {c.key: i for i, c in enumerate(COLUMNS)}
    result_at = [(c.key, col[c.key]) for c in COLUMNS[11:23]]
    iv, ie, ii, is_, im, ism, ip = (col[k] for k in (
        "voucher_no", "exam_date", "institution_code", "setting", "method", "smoking_index",
        "place"))  # fmt: skip
    setting = {"1": "individual", "2": "group"}

    def day(text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return parse_date(text)

    t0 = time.perf_counter()
    rows = []
    with path.open(encoding="cp932", newline="") as f:
        reader = csvmod.reader(f)
        next(reader)
        for n, r in enumerate(reader, start=2):
            if n in skip:
                continue
            results = {k: r[i] for k, i in result_at if r[i]}
            rows.append((
                mc, holder[r[iv]], FY, PROGRAMME[r[im]], r[im], day(r[ie]), setting[r[is_]],
                r[ii], int(r[ism]) if r[ism] else None, json.dumps(results, ensure_ascii=False),
                False, False, r[iv], "", r[ip], "bench",
            ))  # fmt: skip
    t1 = time.perf_counter()
    cols = ("municipality_code", "atena_no", "fiscal_year", "programme", "method", "exam_date",
            "setting", "institution_code", "smoking_index", "results", "needs_seiken",
            "hpv_follow_up", "voucher_no", "coupon_no", "place", "recorded_by")  # fmt: skip
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as c:
                stmt = f"COPY bench_exam ({', '.join(cols)}) FROM STDIN"
                with c.cursor.copy(stmt) as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            marks = ", ".join("?" * len(cols))
            connection.ensure_connection()
            connection.connection.executemany(
                f"INSERT INTO bench_exam ({', '.join(cols)}) VALUES ({marks})",  # nosec B608
                [(*r[:5], r[5].isoformat(), *r[6:]) for r in rows],
            )
    t2 = time.perf_counter()
    with connection.cursor() as c:
        c.execute("SELECT COUNT(*) FROM bench_exam")
        n = c.fetchone()[0]
        c.execute("DROP TABLE bench_exam")
    return {"parse_s": t1 - t0, "insert_s": t2 - t1, "s": t2 - t0, "rows": n,
            "peak_mib": roster._peak_kib() / 1024}  # fmt: skip


def child(phase: str, args: list[str]) -> dict:
    import django

    django.setup()
    if phase == "setup":
        return _setup(Path(args[0]), Path(args[1]), json.loads(Path(args[2]).read_text()))
    if phase == "measure":
        return _measure(Path(args[0]), args[1], args[2] == "1")
    return _raw(Path(args[0]), json.loads(Path(args[1]).read_text()))


# ------------------------------------------------------------------------------ main


def _env(db: str) -> dict[str, str]:
    env = _common.child_env(db)
    env["KENSHIN_INTAKE_APPROVAL_ROWS"] = str(10**9)
    if db == "postgres":
        env["KENSHIN_VAR_DIR"] = str(OUT / "pgvar")
    return env


def _today() -> date:
    sys.path.insert(0, str(_common.ROOT / "src"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kenshin.settings")
    os.environ.setdefault("KENSHIN_ALLOW_DEV_SECRET", "1")
    import django

    django.setup()
    from kenshin.core import clock

    return clock.today()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--residents", type=int, default=300_000)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=1, help="fresh database per run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="one more, profiled, run")
    parser.add_argument(
        "--per-row",
        action="store_true",
        help="also time the per-row functions (adds ~0.4 µs per call)",
    )
    args = parser.parse_args()
    full, cats = roster.city_files(args.residents)
    today = _today()
    path, facts = make_file(full, args.rows, args.seed, today)
    facts_path = path.with_suffix(".json")
    print(
        f"file {path.name}: {facts['rows']:,} rows, {facts['bytes'] / 2**20:.1f} MiB CP932; "
        f"和暦 {facts['wareki']:,}, half-width kana {facts['half_width_kana']:,}; "
        f"errors {facts['error']:,} {facts['by_error']}, wrong 生年月日 {facts['quarantined']:,}",
        flush=True,
    )
    print(f"methods {facts['by_method']}", flush=True)
    script = __file__
    table = []
    for db in args.db:
        env = _env(db)
        runs = []
        plans = [""] * args.runs + ([str(OUT / f"intake-{db}.txt")] if args.profile else [])
        for profile in plans:
            roster._fresh(db)
            setup = _common.run_child(script, db, "setup", str(full), str(cats), str(facts_path),
                                      env=env)  # fmt: skip
            print(json.dumps({"db": db, "phase": "setup", **setup}), flush=True)
            run = _common.run_child(script, db, "measure", str(path), profile,
                                    "1" if args.per_row else "0", env=env)  # fmt: skip
            print(json.dumps({"db": db, "phase": "measure", **run}), flush=True)
            c = run["counts"]
            assert run["state"] == "committed", run
            assert run["written"] == run["exams_in_table"] == c["new"], run
            assert c["error"] == facts["error"] and c["quarantined"] == facts["quarantined"], (
                c, facts["error"], facts["quarantined"])  # fmt: skip
            if profile:
                print(f"{db:8s} profiled run: {run['s']:.1f} s (profile in {profile})", flush=True)
                continue
            raw = _common.run_child(script, db, "raw", str(path), str(facts_path), env=env)
            print(json.dumps({"db": db, "phase": "raw", **raw}), flush=True)
            assert raw["rows"] == run["written"], (raw, run)
            runs.append((run, raw))
            rate = facts["rows"] / run["s"]
            print(
                f"{db:8s} upload {run['upload_s']:.1f} s + stage {run['stage_s']:.1f} s + commit "
                f"{run['commit_s']:.1f} s = {run['s']:.1f} s ({rate:,.0f} rows/s), peak RSS "
                f"{run['peak_mib']:.0f} MiB; raw parse {raw['parse_s']:.1f} s + insert "
                f"{raw['insert_s']:.1f} s; ours/raw insert {run['s'] / raw['insert_s']:.1f}×",
                flush=True,
            )
            for label, s in run["stages"].items():
                print(f"{'':8s}   {label:60s} {s:7.2f} s", flush=True)
        if runs:
            table.append((db, runs))
    _print_table(facts, table)


def _print_table(facts: dict, table: list) -> None:
    if not table:
        return
    med = statistics.median
    print()
    print(f"{facts['rows']:,} rows, median of runs | " + " | ".join(db for db, _ in table))
    lines = [
        ("runs", lambda rs: str(len(rs))),
        ("upload s", lambda rs: f"{med(r['upload_s'] for r, _ in rs):.1f}"),
        ("stage s (parse, check, match, stage)", lambda rs: f"{med(r['stage_s'] for r, _ in rs):.1f}"),
        ("commit s", lambda rs: f"{med(r['commit_s'] for r, _ in rs):.1f}"),
        ("end to end s", lambda rs: f"{med(r['s'] for r, _ in rs):.1f}"),
        ("end to end rows/s", lambda rs: f"{med(facts['rows'] / r['s'] for r, _ in rs):,.0f}"),
        ("new / error / quarantined", lambda rs: "{new:,} / {error:,} / {quarantined:,}".format(
            **rs[0][0]["counts"])),
        ("exams written", lambda rs: f"{rs[0][0]['written']:,}"),
        ("peak RSS MiB", lambda rs: f"{max(r['peak_mib'] for r, _ in rs):.0f}"),
        ("raw parse s", lambda rs: f"{med(w['parse_s'] for _, w in rs):.1f}"),
        ("raw insert s", lambda rs: f"{med(w['insert_s'] for _, w in rs):.1f}"),
        ("raw insert rows/s", lambda rs: f"{med(w['rows'] / w['insert_s'] for _, w in rs):,.0f}"),
        ("ours / raw insert", lambda rs: f"{med(r['s'] / w['insert_s'] for r, w in rs):.1f}×"),
        ("ours / raw parse+insert", lambda rs: f"{med(r['s'] / w['s'] for r, w in rs):.1f}×"),
    ]  # fmt: skip
    for label, fn in lines:
        print(f"{label:40s} | " + " | ".join(fn(rs) for _, rs in table))


if __name__ == "__main__":
    main()
