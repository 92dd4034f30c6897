"""Worklists: each rule on both sides of its threshold, with its count."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.core import audit, clock
from kenshin.programs import services as programs
from kenshin.screening import exam_actions as ea
from kenshin.screening import services, worklists
from kenshin.screening.models import Exam, RosterEntry
from kenshin.screening.tests.town import HANAKO, KEN, TARO, import_town

pytestmark = pytest.mark.django_db
STAFF = audit.Actor(None, "hokenshi1")


@pytest.fixture
def town(tmp_path):
    with clock.frozen(date(2025, 4, 10)):
        programs.load_shipped()
        import_town(tmp_path)
        services.build_roster(2025)
        yield


def record(atena_no, method, day, results, setting="individual", **extra):
    """Record an exam on the day it took place (an exam date in the future is refused)."""
    with clock.frozen(day):
        exam, case = ea.record_exam(STAFF, ea.ExamInput(
            atena_no=atena_no, method=method, exam_date=day, setting=setting,
            institution_code="3410000001", results=results, **extra,
        ))  # fmt: skip
    return exam, case


FOBT_POS = {"day1": "positive", "day2": "negative"}


def codes(day: date, code: str) -> set[int]:
    return set(worklists.worklist(code).query(day).values_list("pk", flat=True))


def test_seiken_not_reported_after_the_programmes_period(town):
    _, case = record(TARO.atena_no, "fecal_occult_blood", date(2025, 5, 1), FOBT_POS)
    assert codes(date(2025, 7, 29), "seiken_not_reported") == set()  # day 89
    assert codes(date(2025, 7, 30), "seiken_not_reported") == {case.pk}  # day 90
    ea.add_seiken_report(STAFF, case.pk, 1, from_institution=False, exam_date=None)
    # Any report takes the case off this list (an incomplete one goes to the survey later).
    assert codes(date(2025, 8, 1), "seiken_not_reported") == set()


def test_form_not_returned_and_survey_due(town):
    _, case = record(TARO.atena_no, "fecal_occult_blood", date(2025, 5, 1), FOBT_POS)
    with clock.frozen(date(2025, 5, 2)):
        case = ea.update_case(STAFF, case.pk, 1, {"form_issued_on": date(2025, 5, 2)})
    assert codes(date(2025, 5, 31), "form_not_returned") == set()
    assert codes(date(2025, 6, 1), "form_not_returned") == {case.pk}
    assert codes(date(2025, 10, 27), "survey_due") == set()  # 179 days
    assert codes(date(2025, 10, 28), "survey_due") == {case.pk}  # 180 days
    with clock.frozen(date(2025, 10, 28)):
        ea.update_case(STAFF, case.pk, 2, {"form_returned_on": date(2025, 6, 5),
                                            "survey_sent_on": date(2025, 10, 28)})  # fmt: skip
    assert codes(date(2025, 11, 1), "form_not_returned") == set()
    assert codes(date(2025, 11, 1), "survey_due") == set()


def test_hpv_follow_up_due_until_the_next_hpv_test(town):
    triage_negative = {"hpv": "positive", "triage_adequacy": "adequate", "triage": "NILM"}
    exam, _ = record(HANAKO.atena_no, "hpv_primary", date(2025, 6, 1), triage_negative)
    assert codes(date(2026, 5, 31), "hpv_follow_up_due") == set()
    assert codes(date(2026, 6, 1), "hpv_follow_up_due") == {exam.pk}
    with clock.frozen(date(2026, 6, 10)):
        programs.load_shipped()
    record(HANAKO.atena_no, "hpv_primary", date(2026, 6, 10), {"hpv": "negative"},
           hpv_follow_up=True)  # fmt: skip
    assert codes(date(2026, 7, 1), "hpv_follow_up_due") == set()


def test_an_exam_outside_the_roster_and_twice_in_a_year_are_listed(town):
    # KEN is a man: a mammography for him contradicts the roster (no entry for him).
    wrong, _ = record(KEN.atena_no, "fecal_occult_blood", date(2025, 6, 1), FOBT_POS)
    assert codes(date(2025, 6, 2), "not_in_roster") == set()
    Exam.objects.filter(pk=wrong.pk).update(method="mammography", programme="breast")
    assert codes(date(2025, 6, 2), "not_in_roster") == {wrong.pk}
    # 胃 X線 and 内視鏡 in one year, for TARO (66): both are listed.
    x, _ = record(TARO.atena_no, "gastric_xray", date(2025, 6, 1), {"judgement": "2"}, "group")
    assert codes(date(2025, 7, 1), "twice_in_a_year") == set()
    e, _ = record(TARO.atena_no, "gastric_endoscopy", date(2025, 9, 1),
                  {"judgement": "no_findings"})  # fmt: skip
    assert codes(date(2025, 10, 1), "twice_in_a_year") == {x.pk, e.pk}


def test_chest_xray_with_sputum_is_not_twice_but_the_same_method_twice_is(town):
    chest, _ = record(TARO.atena_no, "chest_xray", date(2025, 6, 1), {"judgement": "B"})
    record(TARO.atena_no, "sputum_cytology", date(2025, 6, 1), {"judgement": "B"})
    assert codes(date(2025, 7, 1), "twice_in_a_year") == set()
    again, _ = record(TARO.atena_no, "chest_xray", date(2025, 11, 1), {"judgement": "B"})
    assert codes(date(2025, 12, 1), "twice_in_a_year") == {chest.pk, again.pk}


def test_a_method_without_its_own_roster_is_not_judged_against_it(town):
    # 子宮体部 is done with the cervical exam and has no roster rows of its own.
    body, _ = record(HANAKO.atena_no, "endometrial_cytology", date(2025, 6, 1),
                     {"adequacy": "adequate", "result": "negative"})  # fmt: skip
    assert body.pk not in codes(date(2025, 7, 1), "not_in_roster")


def test_counts_give_one_figure_per_list(town, django_assert_max_num_queries):
    record(TARO.atena_no, "fecal_occult_blood", date(2025, 5, 1), FOBT_POS)
    # One COUNT per list; 「2 回」 first finds its groups (two queries) and reads the catalogue
    # of each fiscal year with exams (one here) — whatever the number of exams.
    with django_assert_max_num_queries(len(worklists.WORKLISTS) + 4):
        counts = worklists.counts(date(2025, 12, 1))
    assert set(counts) == {w.code for w in worklists.WORKLISTS}
    assert counts["seiken_not_reported"] == 1 and counts["survey_due"] == 1


def test_case_lists_keep_only_cases_still_in_their_seiken_period(town):
    """A 精検 counts for its screening year until the end of the next fiscal year; after that
    the case is settled for the 事業報告 and leaves the chasing lists."""
    _, case = record(TARO.atena_no, "fecal_occult_blood", date(2025, 5, 1), FOBT_POS)
    with clock.frozen(date(2025, 5, 2)):
        ea.update_case(STAFF, case.pk, 1, {"form_issued_on": date(2025, 5, 2)})
    for code in ("seiken_not_reported", "form_not_returned", "survey_due"):
        assert codes(date(2027, 3, 31), code) == {case.pk}, code  # FY2026: still FY+1
        assert codes(date(2027, 4, 1), code) == set(), code  # FY2027: settled


def test_a_sputum_exam_whose_own_interview_found_600_at_50_is_not_out_of_roster(town):
    """喀痰 is for 50+ with 喫煙指数 ≥ 600 as asked at the 問診; the roster knew no index for
    TARO on the base date, but his exam recorded one."""
    # The town's 喀痰 roster holds someone else (a smoker the register knew), so it is judged.
    mine = RosterEntry.objects.filter(fiscal_year=2025, method="chest_xray").first()
    RosterEntry.objects.create(**{
        f.attname: getattr(mine, f.attname) for f in RosterEntry._meta.concrete_fields
        if f.attname not in ("method", "atena_no")
    }, method="sputum_cytology", atena_no=KEN.atena_no)  # fmt: skip
    exam, _ = record(TARO.atena_no, "sputum_cytology", date(2025, 6, 1), {"judgement": "B"},
                     smoking_index=800)  # fmt: skip
    assert codes(date(2025, 6, 2), "not_in_roster") == set()
    Exam.objects.filter(pk=exam.pk).update(smoking_index=200)
    assert codes(date(2025, 6, 2), "not_in_roster") == {exam.pk}
