"""HPV検査単独法 follow-up: each transition with its dates (domain.md §2.3)."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.programs import vocabularies
from kenshin.screening.rules import (
    HpvExam,
    HpvState,
    follow_up_overdue,
    hpv_state,
    hpv_step,
    one_year_after,
)

D = date(2025, 6, 10)
NEG = {"hpv": "negative"}
POS_PENDING = {"hpv": "positive"}
POS_TRIAGE_NEG = {"hpv": "positive", "triage_adequacy": "adequate", "triage": "NILM"}
POS_TRIAGE_POS = {"hpv": "positive", "triage_adequacy": "adequate", "triage": "LSIL"}
POS_TRIAGE_BAD = {"hpv": "positive", "triage_adequacy": "inadequate", "triage": "NILM"}


@pytest.mark.parametrize(
    ("follow_up", "results", "state", "due", "seiken"),
    [
        # 検診: HPV − → routine (next 節目年齢), no follow-up.
        (False, NEG, HpvState.ROUTINE, None, False),
        # 検診: HPV + → triage cytology on the same specimen, awaited.
        (False, POS_PENDING, HpvState.TRIAGE_PENDING, None, False),
        # 検診: HPV + and triage + → 要確定精検 at once.
        (False, POS_TRIAGE_POS, HpvState.CONFIRMATORY, None, True),
        # An inadequate triage specimen counts as abnormal (作成要領: 不適正は要精検).
        (False, POS_TRIAGE_BAD, HpvState.CONFIRMATORY, None, True),
        # 検診: HPV + and triage − → 追跡検査 one year later.
        (False, POS_TRIAGE_NEG, HpvState.FOLLOW_UP_DUE, date(2026, 6, 10), False),
        # 追跡検査: HPV + → 要確定精検; HPV − → back to routine.
        (True, {"hpv": "positive"}, HpvState.CONFIRMATORY, None, True),
        (True, NEG, HpvState.ROUTINE, None, False),
    ],
)
def test_hpv_step_follows_the_manual(follow_up, results, state, due, seiken):
    step = hpv_step(HpvExam(D, follow_up, results))
    assert (step.state, step.since, step.due, step.seiken) == (state, D, due, seiken)


def test_the_step_agrees_with_the_vocabulary_on_seiken_for_a_screening_test():
    for results in (NEG, POS_TRIAGE_NEG, POS_TRIAGE_POS, POS_TRIAGE_BAD):
        step = hpv_step(HpvExam(D, False, results))
        assert step.seiken is vocabularies.needs_seiken("hpv_primary", results)


def test_a_test_without_an_hpv_result_is_refused():
    with pytest.raises(ValueError, match="HPV検査の結果がありません"):
        hpv_step(HpvExam(D, False, {}))


def test_the_whole_path_from_negative_triage_to_routine_with_dates():
    screening = HpvExam(date(2025, 6, 10), False, POS_TRIAGE_NEG)
    after_screening = hpv_state([screening])
    assert after_screening.state is HpvState.FOLLOW_UP_DUE
    assert after_screening.due == date(2026, 6, 10)
    # Not yet due the day before; due on the day and after, until the follow-up is done.
    assert not follow_up_overdue(after_screening, date(2026, 6, 9))
    assert follow_up_overdue(after_screening, date(2026, 6, 10))
    assert follow_up_overdue(after_screening, date(2027, 3, 31))
    follow_up = HpvExam(date(2026, 7, 1), True, NEG)
    done = hpv_state([follow_up, screening])  # order of the input does not matter
    assert (done.state, done.since, done.due) == (HpvState.ROUTINE, date(2026, 7, 1), None)
    assert not follow_up_overdue(done, date(2027, 3, 31))


def test_a_positive_follow_up_leads_to_confirmatory_seiken():
    steps = [
        HpvExam(date(2024, 5, 1), False, POS_TRIAGE_NEG),
        HpvExam(date(2025, 5, 20), True, {"hpv": "positive"}),
    ]
    step = hpv_state(steps)
    assert (step.state, step.seiken, step.since) == (HpvState.CONFIRMATORY, True, date(2025, 5, 20))


def test_no_hpv_test_means_no_state():
    assert hpv_state([]) is None
    assert not follow_up_overdue(None, D)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 4, 1), date(2026, 4, 1)),
        (date(2026, 3, 31), date(2027, 3, 31)),
        (date(2024, 2, 29), date(2025, 2, 28)),  # leap day: the end of February
        (date(2023, 2, 28), date(2024, 2, 28)),
    ],
)
def test_one_year_after_keeps_the_day_and_handles_the_leap_day(day, expected):
    assert one_year_after(day) == expected
