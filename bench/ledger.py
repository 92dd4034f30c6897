"""The person ledger (個人別受診台帳) at 1,000,000 residents and ~1,000,000 exams: the page vs
the bare read vs raw SELECTs of the same rows.

    uv run python bench/ledger.py --db sqlite postgres
    uv run python bench/ledger.py --db postgres --profile            # + cProfile of 24 pages
    uv run python bench/ledger.py --db sqlite postgres --rebuild     # make the databases again

Setup (once per database; reused while its state table says it holds this bench's data —
SQLite file under bench/out/ledger-sqlite/, PostgreSQL database ``kenshin_bench_ledger``):
  1. the demo city's register on 1 April 2025 and its FY2025 categories (the files
     bench/roster.py generates and reuses), bulk-inserted as roster.py does; FY2026 categories
     copied from FY2025;
  2. five fiscal years of exams, FY2022–FY2026 (to 2026-10-31), written by
     ``screening.services.record_exam_history``: coded results drawn at the national 要精検
     rates (``demo.results``), and for every 要精検 of a tracked programme its 精検 case and
     reports (``demo.follow_up``); about 1 exam per resident, ~5.5 % 要精検;
  3. a few chosen residents with a rich five-year history: every year gastric, lung and
     colorectal (plus sputum for men, mammography and cervical for women), three 精検 cases
     with reports (one still open), a 受診不要 and vouchers;
  4. vouchers for FY2025/FY2026 to those who came that year, 受診不要 for ~3 % of adults;
  5. the FY2025 and FY2026 rosters (``build_roster``), so the ledger reads roster rows too;
     then ANALYZE.
Each stage is timed (about 5.5 min per database on a 2-core machine).

Measure (a fresh process): a member of staff with the 保健師 role (``screening.view_exams``
and ``follow_up``, so the case forms are rendered too), signed in with the second factor as
``accounts.testing.signed_in_client`` does, opens ``exams:ledger`` through Django's test
Client for each rich resident (25 times each) and for N random residents (after a warm-up),
a person reference made per page as the resident's page makes it. With the production
settings (DEBUG off, HTTPS) and, on SQLite, a new connection per request as ``CONN_MAX_AGE=0``
gives. Prints p50/p95/p99/max, the queries per page (CaptureQueriesContext, every alias),
where the page's time goes (open_ledger = read + audit event, the template, the rest; SQL
time per table), the same 5-year pages for a 閲覧のみ member of staff (no case forms), and
ratios: page / ``ledger.person_ledger()`` / raw indexed SELECTs of the same rows (target:
p95 < 100 ms with a bounded number of queries; issue 6).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path

import _common
from _common import OUT, PG_URL

TODAY = date(2026, 11, 27)
FYS = (2022, 2023, 2024, 2025, 2026)
LAST_EXAM = date(2026, 10, 31)  # FY2026 so far: results taken in by today
STATE_VERSION = 1
RICH = 8  # residents with a rich five-year history (4 women, 4 men)
RICH_REPEATS = 25
PG_LEDGER_URL = PG_URL + "_ledger"  # its own database: roster.py drops kenshin_bench
SQLITE_DIR = OUT / "ledger-sqlite"

# Uptake per programme (share of those eligible, times the person's propensity × SCALE).
RATES = {"gastric": 0.16, "lung": 0.24, "colorectal": 0.24, "breast": 0.30, "cervical": 0.24,
         "periodontal": 0.10, "osteoporosis": 0.20, "hepatitis": 0.15}  # fmt: skip
NEVER = 0.45  # adults who never come
SCALE = 0.5  # calibrated: ~1 exam per resident over the five years
INSTITUTIONS = tuple(f"34100000{n:02d}" for n in range(1, 41))


# ----------------------------------------------------------------------------- the history


def _exam_day(rng: random.Random, fy: int) -> date:
    first = date(fy, 4, 1)
    last = min(date(fy + 1, 3, 31), LAST_EXAM)
    return first + timedelta(days=rng.randrange((last - first).days + 1))


class _Gen:
    """The random population's exams, as ExamFacts (one rng, residents in 宛名番号 order)."""

    def __init__(self, seed: int):
        from kenshin.core.fiscal import age_on, fy_end_age
        from kenshin.demo.follow_up import draw_follow_up
        from kenshin.demo.results import draw_results
        from kenshin.programs import services as programs
        from kenshin.screening import rules

        self.rng = random.Random(seed)
        self.age_on, self.fy_end_age = age_on, fy_end_age
        self.draw_results, self.draw_follow_up = draw_results, draw_follow_up
        self.seiken_of, self.rules = programs.seiken_of, rules
        self.came: dict[int, set[str]] = {2025: set(), 2026: set()}
        self.seiken = 0

    def fact(self, atena: str, sex: int, birth: date, programme: str, method: str, day: date,
             *, results=None, smoking=None, first=None, follow_up=None, setting=None):  # fmt: skip
        from kenshin.core import clock
        from kenshin.screening.services import ExamFact

        rng = self.rng
        fy = day.year if day.month >= 4 else day.year - 1
        age = self.fy_end_age(birth, fy)
        if results is None:
            results = self.draw_results(rng, method, age=age)
        setting = setting or ("group" if method == "gastric_xray" or rng.random() < 0.4
                              else "individual")  # fmt: skip
        recorded = day + timedelta(days=rng.randint(7, 27))
        fact = ExamFact(
            atena_no=atena, programme=programme, method=method, exam_date=day, setting=setting,
            institution_code=rng.choice(INSTITUTIONS), smoking_index=smoking, results=results,
            place="中央公民館（ベンチ）" if setting == "group" else "",
            age_at_exam=self.age_on(birth, day), fy_end_age=age, first_time=first,
            recorded_by="bench",
            recorded_at=datetime(recorded.year, recorded.month, recorded.day, 10, 0,
                                 tzinfo=clock.JST),
        )  # fmt: skip
        seiken, _due = self.rules.primary_outcome(method, day, results)
        if seiken:
            self.seiken += 1
            if follow_up is None and self.seiken_of(programme) is not None:
                decisive = self.rules.decisive_value(method, results)
                follow_up = self.draw_follow_up(rng, fact, decisive, recorded, TODAY)
        if follow_up is not None:
            from dataclasses import replace

            fact = replace(fact, follow_up=follow_up)
        if fy in self.came:
            self.came[fy].add(atena)
        return fact

    def person(self, atena: str, sex: int, birth: date):
        """One resident's five years (none for the 45 % who never come)."""
        rng = self.rng
        u = rng.random()
        if u < NEVER:
            return
        k = (0.3 + 1.7 * (u - NEVER) / (1 - NEVER)) * SCALE
        smoker = rng.random() < (0.35 if sex == 1 else 0.08)
        smoking = rng.choice((300, 450, 600, 800, 1000)) if smoker else 0
        last: dict[str, int] = {}  # programme → last fiscal year with an exam
        hpv_last = 0
        hepatitis = False
        for fy in FYS:
            age = self.fy_end_age(birth, fy)
            if age < 20:
                continue

            def go(programme: str, rate_mult: float = 1.0) -> bool:
                return rng.random() < min(RATES[programme] * k * rate_mult, 0.95)

            out = []
            if age >= 40 and go("gastric"):
                endo = age >= 50 and rng.random() < 0.5 and last.get("gastric") != fy - 1
                method = "gastric_endoscopy" if endo else "gastric_xray"
                out.append(("gastric", method, _exam_day(rng, fy), None))
            if age >= 40 and go("lung"):
                day = _exam_day(rng, fy)
                asked = smoking if rng.random() < 0.85 else None
                out.append(("lung", "chest_xray", day, asked))
                if age >= 50 and asked and asked >= 600 and rng.random() < 0.6:
                    out.append(("lung", "sputum_cytology", day, asked))
            if age >= 40 and go("colorectal"):
                out.append(("colorectal", "fecal_occult_blood", _exam_day(rng, fy), None))
            if sex == 2 and age >= 40 and last.get("breast") != fy - 1 and go("breast"):
                out.append(("breast", "mammography", _exam_day(rng, fy), None))
            elif sex == 2 and 30 <= age <= 39 and go("breast", 0.4):
                out.append(("breast", "breast_ultrasound", _exam_day(rng, fy), None))
            if sex == 2 and last.get("cervical") != fy - 1 and go("cervical"):
                day = _exam_day(rng, fy)
                if fy >= 2025 and age >= 30:
                    if fy - hpv_last >= 5:
                        out.append(("cervical", "hpv_primary", day, None))
                        hpv_last = fy
                else:
                    out.append(("cervical", "cytology", day, None))
                if age >= 40 and rng.random() < 0.06:
                    out.append(("endometrial", "endometrial_cytology", day, None))
            if age in (40, 50, 60, 70) or (fy >= 2024 and age in (20, 30)):
                if go("periodontal"):
                    out.append(("periodontal", "periodontal_exam", _exam_day(rng, fy), None))
            if sex == 2 and age in (40, 45, 50, 55, 60, 65, 70) and go("osteoporosis"):
                out.append(("osteoporosis", "dxa", _exam_day(rng, fy), None))
            if not hepatitis and age >= 40 and go("hepatitis", 1.0 if age == 40 else 0.03):
                out.append(("hepatitis", "hepatitis_test", _exam_day(rng, fy), None))
                hepatitis = True
            for programme, method, day, smoke in out:
                yield self.fact(atena, sex, birth, programme, method, day, smoking=smoke,
                                first=not fy - 3 <= last.get(programme, -99) < fy)  # fmt: skip
            for programme, *_rest in out:
                last[programme] = fy

    def rich(self, atena: str, sex: int, birth: date):
        """Every year gastric, lung, colorectal (+ sputum for men, breast and cervical for
        women); three 要精検 with 精検 cases — two settled with reports, one still open."""
        from kenshin.core import clock
        from kenshin.screening.exam_history import FollowUpFact, SeikenReportFact

        def at(d: date) -> datetime:
            return datetime(d.year, d.month, d.day, 11, 0, tzinfo=clock.JST)

        def settled(day: date, method: str, result: str, hospital: str) -> FollowUpFact:
            done = day + timedelta(days=40)
            return FollowUpFact(
                referral_to=hospital, form_issued_on=day + timedelta(days=20),
                form_returned_on=done + timedelta(days=20),
                reports=(
                    SeikenReportFact(True, done, hospital, method, "", recorded_at=at(done + timedelta(days=7))),
                    SeikenReportFact(True, done, hospital, method, result, pathology="",
                                     recorded_at=at(done + timedelta(days=20))),
                ),
            )  # fmt: skip

        n = 0
        for fy in FYS:
            base = date(fy, 6, 1) + timedelta(days=7 * n % 60)
            n += 1
            age = self.fy_end_age(birth, fy)
            endo = age >= 50 and fy in (2022, 2024)  # 内視鏡 every other year, X線 between
            gastric = {"judgement": "benign"} if endo else {"judgement": "2"}
            fu = None
            if fy == 2026:
                gastric = {"judgement": "3a"}  # 要精検, no news yet: the case is open
            yield self.fact(atena, sex, birth, "gastric",
                            "gastric_endoscopy" if endo else "gastric_xray", base,
                            results=gastric, first=fy == 2022, setting=None if endo else "group")  # fmt: skip
            smoke = 800 if sex == 1 else 0
            chest = {"judgement": "B"}
            day = base + timedelta(days=14)
            if fy == 2024 and sex == 1:
                chest = {"judgement": "E1"}
                fu = settled(day, "ct", "no_abnormality", "くれ総合病院（ベンチ）")
            yield self.fact(atena, sex, birth, "lung", "chest_xray", day, results=chest,
                            smoking=smoke, first=fy == 2022, follow_up=fu)  # fmt: skip
            if sex == 1:
                yield self.fact(atena, sex, birth, "lung", "sputum_cytology", day,
                                results={"judgement": "B"}, smoking=smoke, first=fy == 2022)  # fmt: skip
            fobt = {"day1": "negative", "day2": "negative"}
            fu = None
            day = base + timedelta(days=30)
            if fy == 2023:
                fobt = {"day1": "positive", "day2": "negative"}
                fu = settled(day, "total_colonoscopy", "adenoma", "みなと医療センター（ベンチ）")
            yield self.fact(atena, sex, birth, "colorectal", "fecal_occult_blood", day,
                            results=fobt, first=fy == 2022, follow_up=fu)  # fmt: skip
            if sex == 2:
                day = base + timedelta(days=45)
                if fy % 2 == 0:
                    mammo, fu = {"category": "1"}, None
                    if fy == 2024:
                        mammo = {"category": "3"}
                        fu = settled(
                            day, "imaging", "no_abnormality", "あがの乳腺クリニック（ベンチ）"
                        )
                    yield self.fact(atena, sex, birth, "breast", "mammography", day,
                                    results=mammo, first=fy == 2022, follow_up=fu)  # fmt: skip
                else:
                    method = "hpv_primary" if fy >= 2025 else "cytology"
                    results = ({"hpv": "negative"} if method == "hpv_primary"
                               else {"adequacy": "adequate", "bethesda": "NILM"})  # fmt: skip
                    yield self.fact(atena, sex, birth, "cervical", method, day, results=results,
                                    first=fy == 2023)  # fmt: skip


# ----------------------------------------------------------------------------------- setup


def _people() -> list[tuple[str, int, date, str]]:
    from kenshin.residents.models import ResidentVersion

    return list(
        ResidentVersion.objects.filter(valid_to__isnull=True)
        .order_by("atena_no")
        .values_list("atena_no", "sex", "birth_date", "status")
    )


def _pick_rich(people) -> list[str]:
    rng = random.Random(6)
    women = [p for p in people if p[3] == "resident" and p[1] == 2
             and date(1956, 4, 2) <= p[2] <= date(1966, 4, 1)]  # fmt: skip
    men = [p for p in people if p[3] == "resident" and p[1] == 1
           and date(1956, 4, 2) <= p[2] <= date(1966, 4, 1)]  # fmt: skip
    return sorted(p[0] for p in rng.sample(women, RICH // 2) + rng.sample(men, RICH // 2))


def setup(full: str, cats: str) -> dict:
    import django
    from django.core.management import call_command

    django.setup()
    import roster
    from django.conf import settings
    from django.db import connection, transaction

    from kenshin.core import clock
    from kenshin.core.bulk import bulk_insert
    from kenshin.programs import services as programs
    from kenshin.screening import services as screening
    from kenshin.screening import vouchers
    from kenshin.screening.models import Exclusion, FollowUpCase, SeikenReportRecord, Voucher

    stages: dict[str, float] = {}
    t = time.perf_counter()
    for alias in ("default", "linkage", "jobs"):
        call_command("migrate", database=alias, verbosity=0)
    stages["migrate"] = time.perf_counter() - t
    mc = settings.MUNICIPALITY_CODE
    with clock.frozen(TODAY):
        programs.load_shipped()
        t = time.perf_counter()
        n = roster._load(Path(full), Path(cats))
        with transaction.atomic(), connection.cursor() as c:
            c.execute(
                "INSERT INTO residents_fiscalcategory (municipality_code, fiscal_year, atena_no,"
                " insurance_category, tax_category, feed_id) SELECT municipality_code, 2026,"
                " atena_no, insurance_category, tax_category, feed_id"
                " FROM residents_fiscalcategory WHERE fiscal_year = 2025"
            )
        stages["register"] = time.perf_counter() - t

        t = time.perf_counter()
        people = _people()
        rich = set(_pick_rich(people))
        gen = _Gen(seed=2026)

        def facts():
            for atena, sex, birth, status in people:
                if status != "resident":
                    continue
                if atena in rich:
                    yield from gen.rich(atena, sex, birth)
                else:
                    yield from gen.person(atena, sex, birth)

        exams = screening.record_exam_history(facts(), actor="bench", source="bench/ledger.py")
        stages["exams"] = time.perf_counter() - t
        cases = FollowUpCase.objects.count()
        reports = SeikenReportRecord.objects.count()

        t = time.perf_counter()
        rng = random.Random(7)
        voucher_rows, exclusion_rows = [], []
        now = connection.ops.adapt_datetimefield_value(clock.now())
        for fy in (2025, 2026):
            for serial, atena in enumerate(sorted(gen.came[fy] | rich), start=1):
                voucher_rows.append((mc, fy, vouchers.voucher_no(fy, serial), atena, "",
                                     date(fy, 4, 1), "bench"))  # fmt: skip
        reasons = ("workplace", "workplace", "treatment", "declined", "other")
        programmes = ("gastric", "lung", "colorectal", "breast", "cervical")
        for atena, sex, _birth, status in people:
            if status == "resident" and atena not in rich and rng.random() < 0.03:
                for fy in (2025, 2026):
                    programme = rng.choice(programmes[:3] if sex == 1 else programmes)
                    exclusion_rows.append((mc, fy, programme, atena, rng.choice(reasons), "",
                                           "bench", now))  # fmt: skip
        for atena in sorted(rich):
            exclusion_rows.append((mc, 2026, "hepatitis", atena, "other", "他市で受診済み",
                                   "bench", now))  # fmt: skip
        with transaction.atomic():
            bulk_insert(Voucher, ["municipality_code", "fiscal_year", "voucher_no", "atena_no",
                                  "programme", "issued_on", "issued_by"], voucher_rows)  # fmt: skip
            bulk_insert(Exclusion, ["municipality_code", "fiscal_year", "programme", "atena_no",
                                    "reason", "note", "recorded_by", "recorded_at"],
                        exclusion_rows)  # fmt: skip
        stages["vouchers_exclusions"] = time.perf_counter() - t

        roster_rows = {}
        for fy in (2025, 2026):
            t = time.perf_counter()
            report = screening.build_roster(fy)
            stages[f"roster_{fy}"] = time.perf_counter() - t
            roster_rows[fy] = sum(v["rows"] for v in report.per_method.values())
    t = time.perf_counter()
    with connection.cursor() as c:
        c.execute("ANALYZE")
    stages["analyze"] = time.perf_counter() - t
    state = {
        "version": STATE_VERSION, "residents": n, "exams": exams, "seiken": gen.seiken,
        "cases": cases, "reports": reports, "vouchers": len(voucher_rows),
        "exclusions": len(exclusion_rows), "roster_rows": roster_rows, "rich": sorted(rich),
        "stages": stages,
    }  # fmt: skip
    with transaction.atomic(), connection.cursor() as c:
        c.execute("CREATE TABLE bench_ledger_state (payload TEXT)")
        c.execute("INSERT INTO bench_ledger_state VALUES (%s)", [json.dumps(state)])
    return state


def read_state() -> dict:
    import django

    django.setup()
    from django.db import connection

    try:
        with connection.cursor() as c:
            c.execute("SELECT payload FROM bench_ledger_state")
            row = c.fetchone()
    except Exception:
        return {}
    state = json.loads(row[0]) if row else {}
    return state if state.get("version") == STATE_VERSION else {}


# --------------------------------------------------------------------------------- measure


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1], "n": len(ordered)}


def _raw_reader(vendor: str, years: list[int], methods: list[str]):
    """The same rows as person_ledger reads, by hand: one indexed SELECT per table, on the
    driver's own cursor (no ORM, no Django cursor wrapper, no model instances)."""
    from django.conf import settings
    from django.db import connection

    mc = settings.MUNICIPALITY_CODE
    ph = "?" if vendor == "sqlite" else "%s"

    def marks(n: int) -> str:
        return ", ".join([ph] * n)

    resident = (
        "SELECT atena_no, name, name_kana, sex, birth_date, postal_code, address, address_annex,"
        " phone, household_no, relationship, household_head_name, status, valid_from, valid_to,"
        " change_kind, receipt_date FROM residents_residentversion"
        f" WHERE municipality_code = {ph} AND valid_to IS NULL AND atena_no = {ph}"
        " ORDER BY id LIMIT 1"
    )
    exams = (
        f"SELECT * FROM screening_exam WHERE municipality_code = {ph} AND atena_no = {ph}"
        " ORDER BY exam_date DESC, id DESC"
    )
    cases = (
        f"SELECT * FROM screening_followupcase WHERE municipality_code = {ph} AND atena_no = {ph}"
    )
    roster = (
        "SELECT fiscal_year, programme, method, eligible, reason, exclusion, exemption, coupon_no"
        f" FROM screening_rosterentry WHERE municipality_code = {ph}"
        f" AND fiscal_year IN ({marks(len(years))}) AND method IN ({marks(len(methods))})"
        f" AND atena_no = {ph}"
    )
    exclusions = (
        "SELECT fiscal_year, programme, reason FROM screening_exclusion"
        f" WHERE municipality_code = {ph} AND atena_no = {ph}"
    )
    vouchers = (
        f"SELECT * FROM screening_voucher WHERE municipality_code = {ph} AND atena_no = {ph}"
        " ORDER BY fiscal_year DESC, voucher_no"
    )

    def read(atena: str) -> int:
        connection.ensure_connection()
        cur = connection.connection.cursor()
        n = 0
        cur.execute(resident, (mc, atena))
        n += len(cur.fetchall())
        cur.execute(exams, (mc, atena))
        n += len(cur.fetchall())
        cur.execute(cases, (mc, atena))
        case_ids = [r[0] for r in cur.fetchall()]
        n += len(case_ids)
        if case_ids:
            cur.execute(
                f"SELECT * FROM screening_seikenreportrecord WHERE case_id IN"
                f" ({marks(len(case_ids))}) ORDER BY recorded_at, id",
                case_ids,
            )
            n += len(cur.fetchall())
        cur.execute(roster, (mc, *years, *methods, atena))
        n += len(cur.fetchall())
        cur.execute(exclusions, (mc, atena))
        n += len(cur.fetchall())
        cur.execute(vouchers, (mc, atena))
        n += len(cur.fetchall())
        cur.close()
        return n

    return read


def _sql_timer(alias: str, spent: dict[str, float]):
    """An execute wrapper adding each statement's time (ms) to ``spent[alias:table]``."""
    table = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            m = table.search(sql)
            key = f"{alias}:{m.group(1) if m else sql.split()[0].upper()}"
            spent[key] = spent.get(key, 0.0) + (time.perf_counter() - t0) * 1000

    return wrapper


def measure(n_random: int, do_profile: bool = False) -> dict:
    import django

    django.setup()
    from django.conf import settings

    # A reused database takes the migrations added since it was built (indexes the page reads).
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from kenshin.accounts import testing
    from kenshin.programs import services as programs
    from kenshin.residents import services as residents
    from kenshin.residents.models import ResidentVersion
    from kenshin.residents.services import PERSON_REFS_SESSION_KEY
    from kenshin.screening import exam_views
    from kenshin.screening import ledger as ledger_mod
    from kenshin.screening.models import Exam

    for alias in ("default", "linkage", "jobs"):
        call_command("migrate", database=alias, verbosity=0)
    state = read_state()
    rich = state["rich"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    per_request_connection = not settings.DATABASES["default"].get("CONN_MAX_AGE")

    rng = random.Random(20261127)
    total = ResidentVersion.objects.filter(valid_to__isnull=True).count()
    ids = list(ResidentVersion.objects.filter(valid_to__isnull=True).values_list("pk", flat=True))
    picks = rng.sample(ids, n_random + 40)
    atenas = list(ResidentVersion.objects.filter(pk__in=picks).values_list("atena_no", flat=True))
    rng.shuffle(atenas)
    warm, sample = atenas[:40], atenas[40:]

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username="bench_ledger").first()
    if user is None:
        user = testing.make_user("bench_ledger", roles=["hokenshi"])
    client = testing.signed_in_client(user, Client())

    def ref_for(atena: str) -> str:
        session = client.session
        session[PERSON_REFS_SESSION_KEY] = {}
        ref = residents.person_ref(session, atena, "follow_up")
        session.save()
        return ref

    # Where the time of a page goes: the read + audit event, and the template.
    spent = {"open_ledger": 0.0, "render": 0.0}
    real_open, real_render = ledger_mod.open_ledger, exam_views.render

    def timed_open(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real_open(*a, **kw)
        finally:
            spent["open_ledger"] += time.perf_counter() - t0

    def timed_render(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real_render(*a, **kw)
        finally:
            spent["render"] += time.perf_counter() - t0

    ledger_mod.open_ledger, exam_views.render = timed_open, timed_render

    def page(atena: str) -> tuple[float, dict]:
        url = reverse("exams:ledger", args=[ref_for(atena)])
        if per_request_connection:
            connections.close_all()  # a WSGI request opens its own (CONN_MAX_AGE = 0)
        spent["open_ledger"] = spent["render"] = 0.0
        t0 = time.perf_counter()
        r = client.get(url, secure=True)
        ms = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, (r.status_code, r.content[:500])
        assert "の受診台帳" in r.content.decode(), r.content[:500]
        return ms, {k: v * 1000 for k, v in spent.items()}

    for atena in warm:
        page(atena)
    for atena in rich:
        page(atena)

    rich_ms, rich_split, random_ms, random_split = [], [], [], []
    for _ in range(RICH_REPEATS):
        for atena in rich:
            ms, split = page(atena)
            rich_ms.append(ms)
            rich_split.append(split)
    for atena in sample:
        ms, split = page(atena)
        random_ms.append(ms)
        random_split.append(split)

    # Queries per page (every alias) for every person measured, and what each table's
    # queries cost on the 5-year pages (timed by an execute wrapper: perf_counter, in ms).
    aliases = list(connections)
    queries: dict[str, int] = {}
    by_table: list[dict[str, float]] = []
    for atena in [*rich, *sample]:
        url = reverse("exams:ledger", args=[ref_for(atena)])
        if per_request_connection:
            connections.close_all()
        spent_sql: dict[str, float] = {}
        with ExitStack() as stack:
            ctxs = [stack.enter_context(CaptureQueriesContext(connections[a])) for a in aliases]
            for a in aliases:
                stack.enter_context(connections[a].execute_wrapper(_sql_timer(a, spent_sql)))
            client.get(url, secure=True)
        queries[atena] = sum(len(c) for c in ctxs)
        if atena in rich:
            by_table.append(spent_sql)
    tables = {k for d in by_table for k in d}
    sql_split = {k: statistics.median(d.get(k, 0.0) for d in by_table) for k in tables}

    # The same 5-year pages for a 閲覧のみ member of staff (no case forms on the page).
    viewer = get_user_model().objects.filter(username="bench_ledger_viewer").first()
    if viewer is None:
        viewer = testing.make_user("bench_ledger_viewer", roles=["etsuran"])
    staff_client = client
    client = testing.signed_in_client(viewer, Client())
    for atena in rich:
        page(atena)
    viewer_ms, viewer_split = [], []
    for _ in range(RICH_REPEATS // 5):
        for atena in rich:
            ms, split = page(atena)
            viewer_ms.append(ms)
            viewer_split.append(split)

    profile = ""
    if do_profile:
        import cProfile
        import io
        import pstats

        client = staff_client
        prof = cProfile.Profile()
        for atena in rich * 3:
            url = reverse("exams:ledger", args=[ref_for(atena)])
            if per_request_connection:
                connections.close_all()
            prof.enable()
            client.get(url, secure=True)
            prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(45)
        profile = out.getvalue()

    # The bare read and the raw SELECTs (connection kept open, as a worker's loop would).
    connections.close_all()
    ledger_mod.open_ledger, exam_views.render = real_open, real_render
    catalogues = programs.latest_catalogues() if hasattr(programs, "latest_catalogues") else {
        fy: programs.catalogue(fy) for fy in programs.fiscal_years()
    }  # fmt: skip
    years = sorted(catalogues)
    methods = sorted({m.code for c in catalogues.values() for p in c.programmes for m in p.methods})
    raw = _raw_reader(connection.vendor, years, methods)

    def timed(fn, items, repeats=1):
        out = []
        for _ in range(repeats):
            for a in items:
                t0 = time.perf_counter()
                fn(a)
                out.append((time.perf_counter() - t0) * 1000)
        return out

    timed(ledger_mod.person_ledger, warm)
    read_rich = timed(ledger_mod.person_ledger, rich, RICH_REPEATS)
    read_random = timed(ledger_mod.person_ledger, sample)
    timed(raw, warm)
    raw_rich = timed(raw, rich, RICH_REPEATS)
    raw_random = timed(raw, sample)
    rows_rich = [raw(a) for a in rich]

    exams_of = dict.fromkeys(sample, 0)
    for atena in Exam.objects.filter(atena_no__in=sample).values_list("atena_no", flat=True):
        exams_of[atena] += 1
    rich_exams = [Exam.objects.filter(atena_no=a).count() for a in rich]

    def med_split(splits):
        return {k: statistics.median(s[k] for s in splits) for k in splits[0]}

    return {
        "vendor": connection.vendor, "state": state, "residents": total,
        "per_request_connection": per_request_connection,
        "rich": {"page": percentiles(rich_ms), "read": percentiles(read_rich),
                 "raw": percentiles(raw_rich), "split": med_split(rich_split),
                 "exams": rich_exams, "rows": rows_rich,
                 "queries": sorted({queries[a] for a in rich})},
        "random": {"page": percentiles(random_ms), "read": percentiles(read_random),
                   "raw": percentiles(raw_random), "split": med_split(random_split),
                   "exams_max": max(exams_of.values()),
                   "exams_mean": statistics.mean(exams_of.values()),
                   "with_exams": sum(1 for v in exams_of.values() if v),
                   "queries": sorted({queries[a] for a in sample})},
        "sql_split": sql_split, "profile": profile,
        "viewer": {"page": percentiles(viewer_ms), "split": med_split(viewer_split)},
    }  # fmt: skip


# ---------------------------------------------------------------------------------- parent


def _env(db: str) -> dict[str, str]:
    env = _common.child_env(db)
    env["PYTHONPATH"] = f"{_common.ROOT / 'src'}{os.pathsep}{Path(__file__).parent}"
    env["KENSHIN_LINKAGE_CREDENTIAL_FILE"] = str(OUT / f"ledger-linkage-credential-{db}")
    if db == "postgres":
        env["DATABASE_URL"] = PG_LEDGER_URL
    else:
        env["KENSHIN_VAR_DIR"] = str(SQLITE_DIR)
    return env


def _child(db: str, *args: str) -> dict:
    return _common.run_child(__file__, db, *args, env=_env(db))


def _pg_databases(drop: bool) -> None:
    import psycopg

    admin = PG_LEDGER_URL.rsplit("/", 1)[0] + "/postgres"
    name = PG_LEDGER_URL.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        for db_name in (name, f"{name}_linkage", f"{name}_jobs"):
            if drop:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name])
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{db_name}"')


def _fresh_sqlite() -> None:
    for name in ("kenshin", "linkage", "jobs"):
        for suffix in ("", "-wal", "-shm"):
            (SQLITE_DIR / f"{name}.sqlite3{suffix}").unlink(missing_ok=True)
    SQLITE_DIR.mkdir(parents=True, exist_ok=True)


def _fmt(p: dict) -> str:
    return (f"p50 {p['p50']:.1f}  p95 {p['p95']:.1f}  p99 {p['p99']:.1f}  max {p['max']:.1f} ms"
            f"  (n={p['n']})")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(Path(__file__).parent))
        phase = sys.argv[2]
        if phase == "state":
            result = read_state()
        elif phase == "setup":
            result = setup(sys.argv[3], sys.argv[4])
        else:
            result = measure(int(sys.argv[3]), sys.argv[4] == "1")
        print(json.dumps(result, default=str))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--random", type=int, default=200, help="random residents to open")
    parser.add_argument("--rebuild", action="store_true", help="make the databases again")
    parser.add_argument("--profile", action="store_true", help="cProfile 24 5-year pages")
    args = parser.parse_args()
    import roster

    full, cats = roster.city_files(args.residents)
    for db in args.db:
        if db == "postgres":
            _pg_databases(drop=args.rebuild)
        elif args.rebuild:
            _fresh_sqlite()
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        state = _child(db, "state")
        if not state or state.get("residents", 0) < args.residents * 0.99:
            if db == "postgres":
                _pg_databases(drop=True)
            else:
                _fresh_sqlite()
            t0 = time.perf_counter()
            state = _child(db, "setup", str(full), str(cats))
            st = state["stages"]
            print(
                f"{db:8s} setup {time.perf_counter() - t0:.0f} s: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in st.items()),
                flush=True,
            )
        else:
            st = state["stages"]
            print(
                f"{db:8s} database reused (its setup took {sum(st.values()):.0f} s: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in st.items())
                + "; --rebuild to make it again)",
                flush=True,
            )
        r = _child(db, "measure", str(args.random), "1" if args.profile else "0")
        st, rich, rnd = r["state"], r["rich"], r["random"]
        print(
            f"{db:8s} residents {r['residents']:,}  exams {st['exams']:,} (要精検 "
            f"{st['seiken'] / st['exams']:.1%}; cases {st['cases']:,}, reports "
            f"{st['reports']:,})  roster rows "
            + ", ".join(f"FY{fy} {n:,}" for fy, n in st["roster_rows"].items())
            + f"  vouchers {st['vouchers']:,}  受診不要 {st['exclusions']:,}"
        )
        conn_note = "new connection per request" if r["per_request_connection"] else "kept"
        print(f"{'':8s} page, {len(rich['exams'])} residents with 5 years "
              f"({min(rich['exams'])}–{max(rich['exams'])} exams, 3 cases; {conn_note}): "
              f"{_fmt(rich['page'])}")  # fmt: skip
        print(f"{'':8s} page, {rnd['page']['n']} random residents ({rnd['with_exams']} with "
              f"exams, mean {rnd['exams_mean']:.2f}, max {rnd['exams_max']}): "
              f"{_fmt(rnd['page'])}")  # fmt: skip
        print(f"{'':8s} queries per page: 5-year {rich['queries']}, random {rnd['queries']}")
        for label, part in (("5-year", rich), ("random", rnd)):
            s = part["split"]
            print(
                f"{'':8s} {label}: person_ledger() {_fmt(part['read'])}\n"
                f"{'':8s} {label}: raw SELECTs      {_fmt(part['raw'])}\n"
                f"{'':8s} {label}: page/read {part['page']['p50'] / part['read']['p50']:.1f}×  "
                f"read/raw {part['read']['p50'] / part['raw']['p50']:.1f}×  page/raw "
                f"{part['page']['p50'] / part['raw']['p50']:.1f}× (p50s); page split (median "
                f"ms): open_ledger {s['open_ledger']:.1f}, template {s['render']:.1f}, rest "
                f"{part['page']['p50'] - s['open_ledger'] - s['render']:.1f}",
                flush=True,
            )
        v = r["viewer"]
        print(f"{'':8s} page, the same 5-year residents for 閲覧のみ (no case forms): "
              f"{_fmt(v['page'])}; template {v['split']['render']:.1f} ms (median)")  # fmt: skip
        split = sorted(r["sql_split"].items(), key=lambda kv: -kv[1])
        print(
            f"{'':8s} SQL time of a 5-year page by table (median ms, "
            f"{sum(r['sql_split'].values()):.1f} in all): "
            + ", ".join(f"{k} {ms:.2f}" for k, ms in split)
        )
        if r["profile"]:
            print(r["profile"])


if __name__ == "__main__":
    main()
