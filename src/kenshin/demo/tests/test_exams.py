"""The demo city's five years of exams (FY2022–FY2026): deterministic, allowed by the rules,
realistic, with results and 精検 cases consistent with the rules that record them, worklists
with work on them, written once by `kenshin demo setup`."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command

from kenshin.core import clock
from kenshin.core.fiscal import age_on, fiscal_year_bounds, fiscal_year_of, fy_end_age
from kenshin.demo.city import generate_city
from kenshin.demo.exams import FISCAL_YEARS, catalogues, generate_exam_history
from kenshin.demo.management.commands.demo import BASE_DATE, END_DATE
from kenshin.programs import services as programs
from kenshin.programs.rules import History, PersonFacts, decide
from kenshin.residents import services as residents
from kenshin.screening import rules, worklists
from kenshin.screening import services as screening
from kenshin.screening.models import Exam, FollowUpCase, SeikenReportRecord

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 26)
CLINICS = ("3410000011", "3410000029")
RESIDENTS = 600
SEED = 4


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_city(tmp_path_factory.mktemp("feed"), residents=RESIDENTS, seed=SEED,
                         base_date=BASE_DATE, end_date=END_DATE)  # fmt: skip


@pytest.fixture
def city(feed: list[Path]) -> None:
    with clock.frozen(TODAY):
        reports = residents.import_feed_files(feed, stdout=None, actor="test")
    assert not any(r.errors for r in reports)


def history_of(seed: int = SEED) -> list:
    with clock.frozen(TODAY):
        return list(generate_exam_history(seed=seed, institutions=CLINICS))


def test_same_register_and_seed_give_the_same_exams(city):
    first, again = history_of(), history_of()
    assert first == again
    other = history_of(seed=SEED + 1)
    assert sorted(map(repr, other)) != sorted(map(repr, first))


def test_counts_for_the_seed_are_pinned(city):
    """A change to the generator (or the demo city) shows here, with the new figures."""
    exams = history_of()
    per_year = Counter(fiscal_year_of(e.exam_date) for e in exams)
    per_programme = Counter(e.programme for e in exams)
    cases = sum(e.follow_up is not None for e in exams)
    print(dict(per_year), dict(per_programme), cases)  # the figures to pin after a change
    assert dict(per_year) == PINNED_PER_YEAR
    assert dict(per_programme) == PINNED_PER_PROGRAMME
    assert cases == PINNED_CASES


# Re-pinned when the history grew to five years with results (FY2022–FY2024 unchanged: results
# and 精検 draw from their own stream; FY2026 is partial, up to today).
PINNED_PER_YEAR = {2022: 389, 2023: 341, 2024: 334, 2025: 339, 2026: 190}
PINNED_PER_PROGRAMME = {
    "colorectal": 415, "gastric": 296, "lung": 447, "breast": 205, "cervical": 157,
    "hepatitis": 18, "periodontal": 14, "osteoporosis": 32, "endometrial": 9,
}  # fmt: skip
PINNED_CASES = 62  # 要精検 of a programme whose 精検 is tracked


def test_every_exam_was_allowed_by_the_rules_of_its_year(city):
    """Replays the history person by person: each exam's method was eligible under the year's
    catalogue and the history before it; one 胃 method a year; 肝炎 once; no HPV before FY2025
    and a 追跡検査 only when one was due; each exam inside the FY (FY2026: by today), while the
    person lived in the city, with its result taken in by today."""
    exams = history_of()
    cats = catalogues()
    by_person: dict[str, list] = defaultdict(list)
    for e in exams:
        by_person[e.atena_no].append(e)
    register_days = {fy: (max(date(fy, 4, 1), BASE_DATE), min(date(fy + 1, 4, 1), TODAY))
                     for fy in FISCAL_YEARS}  # fmt: skip
    resident_on = {
        day: {r["atena_no"]: r for r in residents.register_as_of(day)}
        for pair in register_days.values()
        for day in pair
    }
    for atena, own in by_person.items():
        programme_years: dict[str, set[int]] = defaultdict(set)
        method_years: dict[str, set[int]] = defaultdict(set)
        due: dict[str, date] = {}
        due_from: dict[str, date] = {}
        last_test: dict[str, date] = {}
        smoking = None
        for fy in FISCAL_YEARS:
            this_year = [e for e in own if fiscal_year_of(e.exam_date) == fy]
            if not this_year:
                continue
            start, end = register_days[fy]
            assert atena in resident_on[start] and atena in resident_on[end]
            reg = resident_on[end][atena]
            cat = cats[fy]
            past = History(
                programme_years={k: frozenset(v) for k, v in programme_years.items()},
                method_years={k: frozenset(v) for k, v in method_years.items()},
                follow_up_due=dict(due), follow_up_from=dict(due_from), last_test=dict(last_test),
            )  # fmt: skip
            gastric = {e.method for e in this_year if e.programme == "gastric"}
            assert len(gastric) <= 1
            assert Counter(e.method for e in this_year).most_common(1)[0][1] == 1
            for e in this_year:
                first, last = fiscal_year_bounds(fy)
                assert first <= e.exam_date <= min(last, TODAY) and e.exam_date.weekday() != 6
                assert e.exam_date < e.recorded_at.date() <= TODAY
                assert e.method != "hpv_primary" or fy >= 2025
                assert e.institution_code in CLINICS
                assert e.setting in cat.method(e.method).settings
                facts = PersonFacts(sex=reg["sex"], birth_date=reg["birth_date"],
                                    status="resident",
                                    smoking_index=e.smoking_index if e.programme == "lung"
                                    else smoking)  # fmt: skip
                decision = decide(cat, cat.method(e.method), facts, past)
                assert decision.eligible, (fy, e.method)
                assert e.hpv_follow_up == (decision.reason == "follow_up"), (fy, e.method)
            for e in this_year:
                if e.method not in cat.not_counting_methods:
                    programme_years[e.programme].add(fy)
                method_years[e.method].add(fy)
                last_test[e.method] = max(last_test.get(e.method, e.exam_date), e.exam_date)
                if e.follow_up_due is not None:
                    due[e.method], due_from[e.method] = e.follow_up_due, e.exam_date
                if e.smoking_index is not None:
                    smoking = e.smoking_index
        assert len([e for e in own if e.programme == "hepatitis"]) <= 1


def test_history_is_realistic_uptake_smoking_and_catch_up(city):
    exams = history_of()
    people = {r["atena_no"]: r for r in residents.register_as_of(date(2024, 4, 1))}
    fy = 2024
    adults_40 = [a for a, r in people.items() if fy_end_age(r["birth_date"], fy) >= 40]
    lung_2024 = {e.atena_no for e in exams if e.method == "chest_xray"
                 and fiscal_year_of(e.exam_date) == fy}  # fmt: skip
    share = len(lung_2024) / len(adults_40)
    assert 0.10 <= share <= 0.40, share  # ~10–40 % of the target population
    indices = [e.smoking_index for e in exams if e.smoking_index is not None]
    assert indices and all(e.programme == "lung" for e in exams if e.smoking_index is not None)
    assert any(i >= 600 for i in indices) and any(0 < i < 600 for i in indices)
    assert 0 in indices  # never-smokers answer 0
    assert any(e.method == "sputum_cytology" for e in exams)
    assert all(e.smoking_index >= 600 for e in exams if e.method == "sputum_cytology")
    assert any(e.method == "endometrial_cytology" for e in exams)
    # Biennial rhythm: most women screened for breast in FY2023 skip FY2024.
    breast = defaultdict(set)
    for e in exams:
        if e.programme == "breast" and e.method == "mammography":
            breast[e.atena_no].add(fiscal_year_of(e.exam_date))
    in_2023 = [years for years in breast.values() if 2023 in years]
    assert in_2023 and sum(2024 in years for years in in_2023) < len(in_2023) / 2
    assert {e.programme for e in exams} == {
        "gastric", "lung", "colorectal", "breast", "cervical", "endometrial", "periodontal",
        "osteoporosis", "hepatitis",
    }  # fmt: skip
    # 歯周 20・30歳 only from FY2024.
    perio = [(fiscal_year_of(e.exam_date), fy_end_age(people[e.atena_no]["birth_date"],
              fiscal_year_of(e.exam_date))) for e in exams if e.programme == "periodontal"]  # fmt: skip
    assert all(age >= 40 for year, age in perio if year < 2024)


def test_record_and_count(city):
    exams = history_of()
    assert screening.exam_count() == 0
    with clock.frozen(TODAY):
        assert screening.record_exam_history(exams, source="test") == len(exams)
    assert screening.exam_count() == len(exams)
    assert screening.exam_count([2024]) == sum(fiscal_year_of(e.exam_date) == 2024 for e in exams)


def births() -> dict[str, date]:
    return {r["atena_no"]: r["birth_date"]
            for day in (BASE_DATE, TODAY) for r in residents.register_as_of(day)}  # fmt: skip


def test_every_exam_has_a_result_in_its_vocabulary_and_a_complete_record(city):
    """Results valid by check_result; 追跡検査 date and the need of a case by the rules; ages
    from the register; the place of group exams; 初回 drawn only where the generated years
    cannot show the three before (FY2022–FY2024)."""
    exams = history_of()
    born = births()
    for e in exams:
        fy = fiscal_year_of(e.exam_date)
        assert programs.check_result(e.method, e.results, follow_up=e.hpv_follow_up) == [], e
        seiken, due = rules.primary_outcome(e.method, e.exam_date, e.results,
                                            follow_up=e.hpv_follow_up)  # fmt: skip
        assert e.follow_up_due == due
        assert (e.follow_up is not None) == (seiken and programs.seiken_of(e.programme) is not None)
        assert e.age_at_exam == age_on(born[e.atena_no], e.exam_date)
        assert e.fy_end_age == fy_end_age(born[e.atena_no], fy)
        assert bool(e.place) == (e.setting == "group")
        assert e.recorded_by == "demo" and e.voucher_no == e.coupon_no == ""
        assert (e.first_time is None) == (fy >= FISCAL_YEARS[0] + 3)
    assert any(e.method == "hpv_primary" for e in exams)
    assert any(e.follow_up is not None and e.follow_up.reports for e in exams)


def test_the_written_history_is_what_the_rules_make_of_it(city):
    """After writing: 要精検 by the vocabulary, one case per 要精検 of a tracked programme with
    the status seiken_status derives from its stored reports, 初回 from the three previous
    fiscal years — each checked here from the stored rows."""
    exams = history_of()
    with clock.frozen(TODAY):
        screening.record_exam_history(exams, actor="demo", source="test")
    stored = list(Exam.objects.all())
    assert len(stored) == len(exams)
    years: dict[tuple[str, str], set[int]] = defaultdict(set)
    for e in stored:
        years[(e.atena_no, e.programme)].add(e.fiscal_year)
    for e in stored:
        assert e.needs_seiken == programs.needs_seiken(e.method, e.results,
                                                       follow_up=e.hpv_follow_up)  # fmt: skip
        if e.fiscal_year >= FISCAL_YEARS[0] + 3:
            earlier = {y for y in years[(e.atena_no, e.programme)] if e.fiscal_year - 3 <= y
                       < e.fiscal_year}  # fmt: skip
            assert e.first_time is (not earlier), e
    opening = [e for e in stored if e.needs_seiken and programs.seiken_of(e.programme)]
    cases = list(FollowUpCase.objects.select_related("exam").prefetch_related("reports"))
    assert sorted(c.exam_id for c in cases) == sorted(e.pk for e in opening)
    for case in cases:
        reports = [
            rules.SeikenReport(r.from_institution, r.exam_date, r.institution, r.method, r.result)
            for r in sorted(case.reports.all(), key=lambda r: (r.recorded_at, r.pk))
        ]
        outcome = rules.seiken_status(case.programme, case.exam.method, case.primary_result,
                                      case.fiscal_year, reports,
                                      known_not_attended=case.known_not_attended)  # fmt: skip
        assert (case.status, case.result) == (outcome.status, outcome.result)
        assert case.primary_result == rules.decisive_value(case.exam.method, case.exam.results)
        assert case.status != "unknown" or case.status_since == case.exam.exam_date
        assert case.exam.exam_date <= case.status_since <= TODAY
    assert {c.status for c in cases} == {"attended", "not_attended", "unknown"}


# A city large enough for every follow-up worklist to have someone on it (HPV 追跡検査 is rare).
WORK_RESIDENTS = 3_000


@pytest.fixture(scope="module")
def bigger_feed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_city(tmp_path_factory.mktemp("bigger"), residents=WORK_RESIDENTS, seed=SEED,
                         base_date=BASE_DATE, end_date=END_DATE)  # fmt: skip


def test_the_follow_up_worklists_have_work_on_them(bigger_feed):
    with clock.frozen(TODAY):
        reports = residents.import_feed_files(bigger_feed, stdout=None, actor="test")
        assert not any(r.errors for r in reports)
        rows = generate_exam_history(seed=SEED, institutions=CLINICS, register_end=END_DATE)
        screening.record_exam_history(rows, actor="demo")
        counts = worklists.counts(TODAY)
    print(counts)
    for code in ("seiken_not_reported", "form_not_returned", "survey_due", "hpv_follow_up_due"):
        assert counts[code] > 0, code
    # The HPV list, counted here independently: due by today, no HPV test since.
    hpv = list(Exam.objects.filter(method="hpv_primary").values_list(
        "atena_no", "exam_date", "follow_up_due"))  # fmt: skip
    overdue = [
        (a, d) for a, d, due in hpv
        if due is not None and due <= TODAY and not any(o == a and od > d for o, od, _ in hpv)
    ]  # fmt: skip
    assert counts["hpv_follow_up_due"] == len(overdue)
    assert Exam.objects.filter(hpv_follow_up=True).exists()  # and some came for it
    assert Exam.objects.filter(method="hpv_primary", results__triage="NILM").exists()
    assert not Exam.objects.filter(exam_date__gt=END_DATE).exists()


def test_the_fy2025_roster_reads_only_the_years_before_it(bigger_feed):
    """Written before the rosters, FY2025's own exams must not count as "screened last year":
    a rebuild without them (and without FY2026's) changes no row."""
    with clock.frozen(TODAY):
        residents.import_feed_files(bigger_feed, stdout=None, actor="test")
        programs.load_shipped()
        rows = generate_exam_history(seed=SEED, institutions=CLINICS, register_end=END_DATE)
        screening.record_exam_history(rows, actor="demo")
        first = screening.build_roster(2025)
        later = Exam.objects.filter(fiscal_year__gte=2025)
        assert later.exists()
        SeikenReportRecord.objects.filter(case__exam__in=later).delete()
        FollowUpCase.objects.filter(exam__in=later).delete()
        later.delete()
        again = screening.build_roster(2025)
    assert first.inserted > 0
    assert (again.inserted, again.changed, again.unchanged) == (0, 0, first.inserted)


def test_demo_setup_records_the_history_once(settings, tmp_path):
    settings.DEMO_MODE = True
    settings.VAR_DIR = tmp_path
    with clock.frozen(TODAY):
        first = io.StringIO()
        call_command("demo", "setup", "--residents", "150", "--seed", "3", stdout=first)
        written = screening.exam_count()
        second = io.StringIO()
        call_command("demo", "setup", "--residents", "150", "--seed", "3", stdout=second)
    assert written > 0
    assert screening.exam_count() == written  # not twice
    assert set(screening.exam_count([fy]) > 0 for fy in FISCAL_YEARS) == {True}
    assert FollowUpCase.objects.exists()
    assert "受診歴（2022〜2026年度" in first.getvalue() and "用意済み" in second.getvalue()
