"""Exam records and 精検 cases: checked against the vocabulary, 要精検 decided once, the case
opened and its status derived, every change audited, and two staff never overwrite each other."""

from __future__ import annotations

import json
from datetime import date

import pytest

from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.programs import services as programs
from kenshin.screening import exam_actions as ea
from kenshin.screening.models import Exam, FollowUpCase, SeikenReportRecord
from kenshin.screening.tests.town import HANAKO, TARO, import_town

pytestmark = pytest.mark.django_db
STAFF = audit.Actor(None, "hokenshi1")
OTHER = audit.Actor(None, "hokenshi2")


@pytest.fixture
def town(tmp_path):
    with clock.frozen(date(2025, 6, 1)):
        programs.load_shipped()
        import_town(tmp_path)
        yield


def fobt(day2: str = "positive", **changes) -> ea.ExamInput:
    values = dict(
        atena_no=TARO.atena_no, method="fecal_occult_blood", exam_date=date(2025, 6, 1),
        setting="individual", institution_code="3410000001",
        results={"day1": "negative", "day2": day2},
    )  # fmt: skip
    return ea.ExamInput(**{**values, **changes})


def test_a_positive_exam_is_stored_with_its_derived_facts_and_opens_a_case(town):
    with clock.frozen(date(2025, 6, 1)):
        exam, case = ea.record_exam(STAFF, fobt())
    assert (exam.fiscal_year, exam.programme, exam.needs_seiken) == (2025, "colorectal", True)
    assert (exam.age_at_exam, exam.fy_end_age) == (65, 66)  # born 1960-01-15
    assert exam.first_time is True  # nothing in FY2022–FY2024
    assert case.status == "unknown" and case.primary_result == "positive"
    assert case.version == 1 and case.exam_id == exam.pk
    entered, opened = AuditEvent.objects.order_by("-seq")[1], AuditEvent.objects.order_by("-seq")[0]
    assert (entered.function, entered.subject_ref, entered.purpose) == (
        "screening.enter_result", TARO.atena_no, "result_entry",
    )  # fmt: skip
    # Codes and ids only: no result value, and nothing that tells whether it was 要精検 —
    # a negative exam's event reads the same.
    assert json.loads(entered.detail) == {
        "fiscal_year": 2025, "method": "fecal_occult_blood", "exam_id": exam.pk,
    }  # fmt: skip
    # The case's own event names the case, not the resident.
    assert (opened.function, opened.subject_kind, opened.subject_ref) == (
        "screening.follow_up", "follow_up_case", str(case.pk),
    )  # fmt: skip
    case = ea.update_case(STAFF, case.pk, 1, {"referral_to": "市民病院"})
    case = ea.add_seiken_report(STAFF, case.pk, 2, from_institution=True,
                                exam_date=date(2025, 6, 20), result="cancer")  # fmt: skip
    for event in AuditEvent.objects.filter(function="screening.follow_up"):
        assert event.subject_kind == "follow_up_case"
        assert not {"status", "result", "report"} & set(json.loads(event.detail))
        assert TARO.atena_no not in event.detail


def test_a_negative_exam_opens_no_case_and_an_exam_within_three_years_is_not_first(town):
    Exam.objects.create(
        municipality_code="342025", atena_no=TARO.atena_no, fiscal_year=2022,
        programme="colorectal", method="fecal_occult_blood", exam_date=date(2022, 9, 1),
        setting="individual",
    )  # fmt: skip
    exam, case = ea.record_exam(STAFF, fobt(day2="negative"))
    assert (exam.needs_seiken, case, exam.first_time) == (False, None, False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (fobt(results={"day1": "positive"}), "便潜血 2日目が入っていません"),
        (fobt(results={"day1": "x", "day2": "negative"}), "便潜血 1日目に 'x' はありません"),
        (
            fobt(method="x_ray_of_the_soul"),
            "検査方法 x_ray_of_the_soul は2025年度の定義にありません",
        ),
        (fobt(setting="home"), "検診方式は 個別 か 集団 です"),
        (fobt(atena_no="1999999999"), "この宛名番号の住民記録がありません"),
        (fobt(exam_date=date(2019, 6, 1)), "2019年度の検診事業の定義がありません"),
        (fobt(exam_date=date(2025, 6, 2)), "受診日が未来の日付です"),
    ],
)
def test_bad_input_is_refused_in_japanese_and_nothing_is_written(town, data, message):
    before = Exam.objects.count()  # the town's past exams
    with pytest.raises(ea.ExamRecordError, match=message):
        ea.record_exam(STAFF, data)
    assert Exam.objects.count() == before and FollowUpCase.objects.count() == 0


def test_an_hpv_test_with_a_negative_triage_sets_the_follow_up_date_and_no_case(town):
    data = ea.ExamInput(
        atena_no=HANAKO.atena_no, method="hpv_primary", exam_date=date(2025, 7, 1),
        setting="individual", institution_code="3410000002",
        results={"hpv": "positive", "triage_adequacy": "adequate", "triage": "NILM"},
    )  # fmt: skip
    with clock.frozen(date(2025, 7, 1)):
        exam, case = ea.record_exam(STAFF, data)
    assert (exam.needs_seiken, exam.follow_up_due, case) == (False, date(2026, 7, 1), None)
    follow_up = ea.ExamInput(
        atena_no=HANAKO.atena_no, method="hpv_primary", exam_date=date(2026, 7, 3),
        setting="individual", institution_code="3410000002", results={"hpv": "positive"},
        hpv_follow_up=True,
    )  # fmt: skip
    with clock.frozen(date(2026, 7, 3)):
        exam, case = ea.record_exam(STAFF, follow_up)
    assert exam.needs_seiken and case is not None and case.programme == "cervical"


def test_reports_drive_the_status_and_an_inappropriate_test_is_not_attended(town):
    _, case = ea.record_exam(STAFF, fobt())
    with clock.frozen(date(2025, 7, 1)):
        case = ea.add_seiken_report(
            STAFF, case.pk, 1, from_institution=True, exam_date=date(2025, 6, 20),
            institution="3410000009", method="fobt_repeat", result="no_abnormality",
        )  # fmt: skip
    assert (case.status, case.status_since, case.version) == (
        "not_attended", date(2025, 7, 1), 2,
    )  # fmt: skip
    case = ea.add_seiken_report(
        STAFF, case.pk, 2, from_institution=True, exam_date=date(2026, 5, 10),
        institution="3410000009", method="total_colonoscopy", result="adenoma",
        pathology="管状腺腫",
    )  # fmt: skip
    assert (case.status, case.result, case.version) == ("attended", "adenoma", 3)
    assert SeikenReportRecord.objects.filter(case=case).count() == 2


def test_an_incomplete_self_report_stays_unknown_and_a_known_absence_is_not_attended(town):
    _, case = ea.record_exam(STAFF, fobt())
    case = ea.add_seiken_report(
        STAFF, case.pk, 1, from_institution=False, exam_date=date(2025, 7, 1),
        institution="市民病院", method="total_colonoscopy", result="",
    )  # fmt: skip
    assert case.status == "unknown"
    with clock.frozen(date(2025, 9, 1)):
        case = ea.update_case(
            STAFF, case.pk, 2, {"survey_sent_on": date(2025, 9, 1), "known_not_attended": True}
        )
    assert case.status == "not_attended" and case.survey_sent_on == date(2025, 9, 1)


def test_two_staff_editing_the_same_case_cannot_overwrite_each_other(town):
    _, case = ea.record_exam(STAFF, fobt())
    opened_by_both = case.version
    ea.update_case(STAFF, case.pk, opened_by_both, {"referral_to": "市民病院 消化器内科"})
    with pytest.raises(
        ea.CaseConflict, match="他の職員が更新しました（あなたが開いた版 1、今の版 2）"
    ):
        ea.update_case(OTHER, case.pk, opened_by_both, {"referral_to": "県立病院"})
    case.refresh_from_db()
    assert (case.referral_to, case.version, case.updated_by) == (
        "市民病院 消化器内科",
        2,
        "hokenshi1",
    )
    with pytest.raises(ea.CaseConflict):
        ea.add_seiken_report(OTHER, case.pk, opened_by_both, from_institution=True,
                             exam_date=date(2025, 7, 1))  # fmt: skip
    assert SeikenReportRecord.objects.count() == 0


def test_a_case_refuses_fields_it_derives_and_values_outside_its_vocabulary(town):
    _, case = ea.record_exam(STAFF, fobt())
    with pytest.raises(ea.ExamRecordError, match="変更できない項目です: status"):
        ea.update_case(STAFF, case.pk, 1, {"status": "attended"})
    with pytest.raises(ea.ExamRecordError, match="精検法 'fobt' はありません"):
        ea.add_seiken_report(STAFF, case.pk, 1, from_institution=True,
                             exam_date=date(2025, 7, 1), method="fobt")  # fmt: skip
    with pytest.raises(ea.ExamRecordError, match="精検日が一次検診の受診日より前です"):
        ea.add_seiken_report(STAFF, case.pk, 1, from_institution=True,
                             exam_date=date(2025, 5, 1))  # fmt: skip
    case.refresh_from_db()
    assert (case.status, case.version) == ("unknown", 1)  # the refused changes left no trace


def test_case_values_of_the_wrong_kind_and_a_follow_up_flag_on_another_method_are_refused(town):
    _, case = ea.record_exam(STAFF, fobt())
    for changes, message in (
        ({"form_issued_on": "2025-06-01"}, "連絡票の発行日は日付で入力してください"),
        ({"survey_sent_on": date(2099, 1, 1)}, "状況調査の送付日が未来の日付です"),
        ({"known_not_attended": "yes"}, "受診していないことの確認は はい・いいえ"),
        ({"referral_to": "x" * 201}, "紹介先は 200 文字以内"),
    ):
        with pytest.raises(ea.ExamRecordError, match=message):
            ea.update_case(STAFF, case.pk, 1, changes)
    case.refresh_from_db()
    assert case.version == 1
    with pytest.raises(ea.ExamRecordError, match="追跡検査は HPV検査単独法の検査だけです"):
        ea.record_exam(STAFF, fobt(hpv_follow_up=True))
