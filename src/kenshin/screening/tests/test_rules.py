"""HPV検査単独法 follow-up: each transition with its dates (domain.md §2.3); 精検 status paths."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.programs import vocabularies
from kenshin.screening.rules import (
    HpvExam,
    HpvState,
    SeikenReport,
    SeikenStatus,
    follow_up_overdue,
    hpv_state,
    hpv_step,
    one_year_after,
    seiken_status,
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


# ------------------------------------------------------------------ 精検 status (作成要領)

FULL = dict(exam_date=date(2025, 9, 1), institution="3410000001", method="total_colonoscopy",
            result="adenoma")  # fmt: skip


def _report(from_institution=False, **changes):
    return SeikenReport(from_institution=from_institution, **{**FULL, **changes})


def test_attended_by_the_institutions_report_even_when_it_is_terse():
    # The 精検機関's 連絡票 is enough; a report without a result yet is "still in progress":
    # attended, counted as がん疑い又は未確定.
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025, [
        _report(True, institution="", method="", result=""),
    ])  # fmt: skip
    assert (outcome.status, outcome.result) == (SeikenStatus.ATTENDED, "suspected")


def test_attended_by_a_complete_self_report_of_all_four_items():
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025, [_report()])
    assert (outcome.status, outcome.result) == (SeikenStatus.ATTENDED, "adenoma")


@pytest.mark.parametrize(
    "missing",
    [dict(exam_date=None), dict(institution=""), dict(method=""), dict(result="")],
)
def test_an_incomplete_self_report_leaves_the_case_unknown(missing):
    outcome = seiken_status(
        "colorectal", "fecal_occult_blood", "positive", 2025, [_report(**missing)]
    )
    assert (outcome.status, outcome.result) == (SeikenStatus.UNKNOWN, "")


@pytest.mark.parametrize(
    ("programme", "primary_method", "primary", "method"),
    [
        ("colorectal", "fecal_occult_blood", "positive", "fobt_repeat"),  # 便潜血の再検
        ("lung", "sputum_cytology", "D", "sputum_repeat"),  # 喀痰 要精検 → 喀痰の再検
        ("cervical", "cytology", "LSIL", "cytology_only"),  # 細胞診のみの再検
        ("cervical", "cytology", "HSIL", "hpv_test"),  # an HPV test alone after HSIL
        # HPV検査単独法 with triage ASC-US calls for colposcopy: neither repeat counts.
        ("cervical", "hpv_primary", "ASC-US", "cytology_only"),
        ("cervical", "hpv_primary", "ASC-US", "hpv_test"),
    ],
)
def test_an_inappropriate_test_counts_as_not_attended(programme, primary_method, primary, method):
    result = "no_abnormality"
    outcome = seiken_status(programme, primary_method, primary, 2025, [
        _report(True, method=method, result=result),
    ])  # fmt: skip
    assert (outcome.status, outcome.result) == (SeikenStatus.NOT_ATTENDED, "")


@pytest.mark.parametrize("method", ["cytology_only", "hpv_test"])
def test_a_repeat_cytology_or_hpv_test_after_cytology_asc_us_is_a_proper_seiken(method):
    outcome = seiken_status("cervical", "cytology", "ASC-US", 2025, [
        _report(True, method=method, result="no_abnormality"),
    ])  # fmt: skip
    assert outcome.status is SeikenStatus.ATTENDED


def test_the_institutions_report_outranks_a_later_self_report_and_cancer_is_kept():
    hospital = _report(True, exam_date=date(2025, 7, 1), result="cancer")
    self_report = _report(False, exam_date=date(2025, 8, 1), result="no_abnormality")
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025,
                            [hospital, self_report])  # fmt: skip
    assert (outcome.result, outcome.report) == ("cancer", hospital)
    after_treatment = _report(True, exam_date=date(2025, 12, 1), result="no_abnormality")
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025,
                            [hospital, after_treatment])  # fmt: skip
    assert outcome.result == "cancer"
    # With no institution report, the complete self-report decides.
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025, [self_report])
    assert (outcome.status, outcome.result) == (SeikenStatus.ATTENDED, "no_abnormality")


def test_a_proper_seiken_after_an_inappropriate_one_counts_as_attended():
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025, [
        _report(True, method="fobt_repeat", result="no_abnormality"),
        _report(True, exam_date=date(2025, 11, 5), result="cancer"),
    ])  # fmt: skip
    assert (outcome.status, outcome.result) == (SeikenStatus.ATTENDED, "cancer")


def test_known_absence_is_not_attended_and_no_news_is_unknown():
    assert seiken_status(
        "gastric", "gastric_xray", "3a", 2025, [], known_not_attended=True
    ).status is (SeikenStatus.NOT_ATTENDED)
    assert seiken_status("gastric", "gastric_xray", "3a", 2025, []).status is SeikenStatus.UNKNOWN


@pytest.mark.parametrize(
    ("day", "status"),
    [
        (date(2026, 4, 1), SeikenStatus.ATTENDED),  # the next fiscal year counts
        (date(2027, 3, 31), SeikenStatus.ATTENDED),  # …to its last day
        (date(2027, 4, 1), SeikenStatus.UNKNOWN),  # later: not for this screening year
    ],
)
def test_a_seiken_in_the_next_fiscal_year_counts_for_the_screening_year(day, status):
    outcome = seiken_status(
        "colorectal", "fecal_occult_blood", "positive", 2025, [_report(True, exam_date=day)]
    )
    assert outcome.status is status


def test_the_latest_report_decides_the_result():
    outcome = seiken_status("breast", "mammography", "3", 2025, [
        _report(True, exam_date=date(2025, 8, 1), method="imaging", result="suspected"),
        _report(True, exam_date=date(2025, 9, 1), method="biopsy", result="cancer"),
    ])  # fmt: skip
    assert (outcome.result, outcome.report.method) == ("cancer", "biopsy")


def test_the_final_report_outranks_the_in_progress_one_of_the_same_seiken():
    """The 精検機関 first reports the 精検 in progress, later its result, both with the same
    精検日: the later report decides (the reports come in the order they were taken in)."""
    in_progress = _report(True, method="total_colonoscopy", result="")
    final = _report(True, method="total_colonoscopy", result="no_abnormality")
    outcome = seiken_status("colorectal", "fecal_occult_blood", "positive", 2025,
                            [in_progress, final])  # fmt: skip
    assert (outcome.status, outcome.result) == (SeikenStatus.ATTENDED, "no_abnormality")


def test_a_programme_without_seiken_tracking_is_refused():
    with pytest.raises(KeyError):
        seiken_status("periodontal", "periodontal_exam", "seiken", 2025, [])
