"""The demo city's exam history (FY2022–FY2024): deterministic, allowed by the rules, realistic,
written once by `kenshin demo setup`."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command

from kenshin.core import clock
from kenshin.core.fiscal import fiscal_year_bounds, fiscal_year_of, fy_end_age
from kenshin.demo.city import generate_city
from kenshin.demo.exams import FISCAL_YEARS, catalogues, generate_exam_history
from kenshin.demo.management.commands.demo import BASE_DATE, END_DATE
from kenshin.programs.rules import History, PersonFacts, decide
from kenshin.residents import services as residents
from kenshin.screening import services as screening

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
    print(dict(per_year), dict(per_programme))  # the figures to pin after a change
    assert dict(per_year) == PINNED_PER_YEAR
    assert dict(per_programme) == PINNED_PER_PROGRAMME


# Re-pinned when biennial screening became 原則 2年に1回 for the even-age cohort too (fewer
# consecutive-year gastric/breast/cervical exams; each person's draws shift after that).
PINNED_PER_YEAR = {2022: 389, 2023: 341, 2024: 334}
PINNED_PER_PROGRAMME = {
    "colorectal": 274, "gastric": 195, "lung": 308, "breast": 135, "cervical": 108,
    "hepatitis": 12, "periodontal": 6, "osteoporosis": 19, "endometrial": 7,
}  # fmt: skip


def test_every_exam_was_allowed_by_the_rules_of_its_year(city):
    """Replays the history person by person: each exam's method was eligible under the year's
    catalogue and the history before it; one 胃 method a year; 肝炎 once; no HPV before FY2025;
    each exam inside the FY, while the person lived in the city."""
    exams = history_of()
    cats = catalogues()
    by_person: dict[str, list] = defaultdict(list)
    for e in exams:
        by_person[e.atena_no].append(e)
    register_days = {fy: (max(date(fy, 4, 1), BASE_DATE), date(fy + 1, 4, 1))
                     for fy in FISCAL_YEARS}  # fmt: skip
    resident_on = {
        day: {r["atena_no"]: r for r in residents.register_as_of(day)}
        for pair in register_days.values()
        for day in pair
    }
    for atena, own in by_person.items():
        programme_years: dict[str, set[int]] = defaultdict(set)
        method_years: dict[str, set[int]] = defaultdict(set)
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
            )
            gastric = {e.method for e in this_year if e.programme == "gastric"}
            assert len(gastric) <= 1
            assert Counter(e.method for e in this_year).most_common(1)[0][1] == 1
            for e in this_year:
                first, last = fiscal_year_bounds(fy)
                assert first <= e.exam_date <= last and e.exam_date.weekday() != 6
                assert e.method != "hpv_primary"
                assert e.institution_code in CLINICS
                assert e.setting in cat.method(e.method).settings
                facts = PersonFacts(sex=reg["sex"], birth_date=reg["birth_date"],
                                    status="resident",
                                    smoking_index=e.smoking_index if e.programme == "lung"
                                    else smoking)  # fmt: skip
                assert decide(cat, cat.method(e.method), facts, past).eligible, (fy, e.method)
            for e in this_year:
                programme_years[e.programme].add(fy)
                method_years[e.method].add(fy)
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
    assert "受診歴" in first.getvalue() and "受診歴" in second.getvalue()
