"""The demo's results and 精検 outcomes come at national rates, and only in the vocabularies.

Pure: many draws from fixed seeds, no database. The bands are those of domain.md §3–§5 (要精検率,
精検受診率 and 未把握率 of the 事業報告, がん発見率 of the order of the national figures); a change
to a rate that leaves its band fails here.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import pytest

from kenshin.demo import follow_up, results
from kenshin.demo.exams import catalogues
from kenshin.programs import services as programs
from kenshin.screening import exam_history, rules
from kenshin.screening.services import ExamFact

N = 20_000
TODAY = date(2026, 11, 26)
PROGRAMME = {"gastric_xray": "gastric", "gastric_endoscopy": "gastric", "chest_xray": "lung",
             "sputum_cytology": "lung", "fecal_occult_blood": "colorectal",
             "mammography": "breast", "breast_ultrasound": "breast", "cytology": "cervical",
             "hpv_primary": "cervical"}  # fmt: skip


def draws(method: str, age: int, n: int = N, *, seed: int = 7, follow_up_test: bool = False):
    rng = random.Random(f"{seed}:{method}:{age}")  # nosec B311
    return [results.draw_results(rng, method, age=age, follow_up=follow_up_test)
            for _ in range(n)]  # fmt: skip


def seiken_share(method: str, age: int, **kw) -> float:
    drawn = draws(method, age, **kw)
    follow_up_test = kw.get("follow_up_test", False)
    return sum(programs.needs_seiken(method, r, follow_up=follow_up_test) for r in drawn) / N


def test_every_method_of_every_catalogue_has_results_drawn_in_its_vocabulary():
    used = {m.code for cat in catalogues().values() for m in cat.methods if m.enabled}
    assert used <= set(results.methods())
    for method in results.methods():
        for age in (25, 35, 45, 65):
            for r in draws(method, age, 2_000):
                assert programs.check_result(method, r) == [], (method, r)
    for r in draws("hpv_primary", 40, 2_000, follow_up_test=True):
        assert programs.check_result("hpv_primary", r, follow_up=True) == [] and len(r) == 1


@pytest.mark.parametrize(
    ("method", "age", "low", "high"),
    [
        ("gastric_xray", 60, 0.060, 0.080),  # national ~7 %; 許容値 ≤11 %
        ("gastric_endoscopy", 60, 0.050, 0.070),
        ("chest_xray", 60, 0.013, 0.022),  # E only; 許容値 ≤3 %
        ("sputum_cytology", 60, 0.010, 0.025),
        ("fecal_occult_blood", 60, 0.055, 0.075),  # 許容値 ≤7 %
        ("mammography", 50, 0.055, 0.078),
        ("cytology", 45, 0.015, 0.028),  # non-NILM and 不適正
        ("cytology", 25, 0.025, 0.040),  # more in the 20s
        ("hpv_primary", 35, 0.040, 0.065),  # HPV + ~12 %, about half with an abnormal triage
        ("periodontal_exam", 40, 0.60, 0.80),  # national FY2006: 77.5 %
        ("dxa", 60, 0.12, 0.24),  # rising with age, ~13 % overall
    ],
)
def test_seiken_comes_at_the_national_rate_of_the_method(method, age, low, high):
    assert low <= seiken_share(method, age) <= high


def test_hpv_positives_and_the_follow_up_test():
    drawn = draws("hpv_primary", 40)
    positive = sum(r["hpv"] == "positive" for r in drawn) / N
    assert 0.07 <= positive <= 0.11  # 要精検 is only the abnormal triage among them
    needs = sum(programs.needs_seiken("hpv_primary", r) for r in drawn) / N
    assert 0.3 * positive <= needs <= 0.6 * positive
    assert 0.25 <= seiken_share("hpv_primary", 40, follow_up_test=True) <= 0.35


def settled_cases(method: str, age: int, n: int = N) -> list[tuple[rules.SeikenOutcome, str]]:
    """Every 要精検 of ``n`` exams done long ago (all news in), with its derived outcome."""
    rng = random.Random(f"cases:{method}")  # nosec B311
    day = date(2023, 6, 1)
    out = []
    for r in draws(method, age, n):
        if not programs.needs_seiken(method, r):
            continue
        fact = ExamFact(atena_no="1", programme=PROGRAMME[method], method=method,
                        exam_date=day, setting="individual", institution_code="3410000011",
                        results=r)  # fmt: skip
        decisive = rules.decisive_value(method, r)
        case = follow_up.draw_follow_up(rng, fact, decisive, day + timedelta(days=14), TODAY)
        outcome, _since = exam_history.derive_case(
            fact.programme, method, decisive, 2023, day, case, follow_up.at_office(rng, TODAY)
        )
        out.append((outcome, decisive))
    return out


@pytest.mark.parametrize(
    ("method", "age", "attended", "unknown"),
    [
        # National FY2019 (domain.md §4.4): 精検受診率 / 未把握率.
        ("gastric_xray", 60, 0.841, 0.100),
        ("chest_xray", 60, 0.830, 0.106),
        ("fecal_occult_blood", 60, 0.698, 0.178),
        ("cytology", 30, 0.746, 0.193),
        ("mammography", 50, 0.892, 0.077),
    ],
)
def test_settled_cases_come_at_the_national_seiken_attendance(method, age, attended, unknown):
    cases = settled_cases(method, age, 60_000)
    status = Counter(o.status for o, _d in cases)
    n = len(cases)
    assert n > 300
    assert abs(status["attended"] / n - attended) < 0.04, status
    assert abs(status["unknown"] / n - unknown) < 0.04, status
    assert status["not_attended"] > 0


@pytest.mark.parametrize(
    ("method", "age", "low", "high"),
    [
        # がん発見率 (cancers per 100 screened), of the order of the national figures (FY2019:
        # 胃 0.12 %); 許容値 胃 ≥0.11, 大腸 ≥0.13, 肺 ≥0.03, 乳 ≥0.23, 子宮頸 ≥0.05.
        ("gastric_xray", 60, 0.08, 0.30),
        ("fecal_occult_blood", 60, 0.08, 0.25),
        ("chest_xray", 60, 0.015, 0.10),
        ("mammography", 50, 0.15, 0.45),
        ("cytology", 45, 0.01, 0.10),
    ],
)
def test_cancers_are_found_at_the_order_of_the_national_rate(method, age, low, high):
    n = 60_000
    cases = settled_cases(method, age, n)
    cancers = sum(o.result == "cancer" for o, _d in cases)
    assert low <= 100 * cancers / n <= high, cancers
    results_counted = {o.result for o, _d in cases if o.status == "attended"}
    spec = programs.seiken_of(PROGRAMME[method])
    assert results_counted <= set(spec.results) and "cancer" in results_counted
    if method == "fecal_occult_blood":
        assert "adenoma" in results_counted
