"""Every change to an exam record and to its 精密検査 case, each with its audit event.

The app's actions, split by concept: roster changes are in ``actions.py``; this module holds
the exam record (結果登録) and the follow-up of a 要精検 (精検の追跡). Manual entry, file and
FHIR intake and the clinic portal all call :func:`record_exam`, so a result is checked against
the method's vocabulary and its 要精検 decided in one place; a 要精検 always opens its case.

A case's status is never typed: each change re-derives it with ``rules.seiken_status``. Cases
are edited under an optimistic lock (``expected_version``): a change made on a version that
someone else has since updated is refused with a message, and nothing is overwritten.

Audit events carry codes and ids only (fiscal year, method, exam id, the changed field names,
the case's version) — never results, statuses, notes or what the person said; events about a
case name the case, not the resident (an event "精検 case opened for 宛名番号 N" would itself be
a health fact in the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from kenshin.core import audit, clock
from kenshin.core.fiscal import age_on, fiscal_year_of, fy_end_age
from kenshin.core.purposes import Purpose
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import rules
from kenshin.screening.models import Exam, FollowUpCase, SeikenReportRecord, Setting
from kenshin.screening.permissions import ENTER_RESULT, FOLLOW_UP

FIRST_TIME_YEARS = 3  # 初回: no screening by the programme in the previous 3 fiscal years


class ExamRecordError(ValueError):
    """The exam or the change was refused; the message (Japanese) says what to correct."""


class CaseConflict(ExamRecordError):
    """The case changed since it was opened (optimistic lock)."""


@dataclass(frozen=True)
class ExamInput:
    """One primary exam as entered or imported (codes, not labels)."""

    atena_no: str
    method: str
    exam_date: date
    setting: str  # individual | group
    institution_code: str
    results: dict[str, str]
    voucher_no: str = ""
    coupon_no: str = ""
    place: str = ""
    smoking_index: int | None = None
    hpv_follow_up: bool = False  # the HPV 追跡検査 a year after a negative triage
    complication: str = ""
    billing_category: str = ""  # 請求区分 (the payment of clinics defines the codes)
    billing_month: date | None = None  # 請求月, the first day of the month


def _actor_name(actor: Any) -> str:
    return audit.actor_of(actor).username


@dataclass(frozen=True)
class CheckedExam:
    """An exam that passed every check, with what the checks found (for :func:`record_exam`)."""

    data: ExamInput
    fiscal_year: int
    programme: str
    birth_date: date
    needs_seiken: bool
    follow_up_due: date | None
    opens_case: bool


def check_exam(data: ExamInput) -> CheckedExam:
    """Every check :func:`record_exam` makes, without writing: the double entry checks each
    keyed form as it is saved, long before the batch is recorded."""
    fy = fiscal_year_of(data.exam_date)
    if data.exam_date > clock.today():
        raise ExamRecordError("受診日が未来の日付です")
    try:
        catalogue = programs.catalogue(fy)
    except programs.CatalogueMissing as exc:
        raise ExamRecordError(f"{fy}年度の検診事業の定義がありません") from exc
    method = catalogue.methods_by_code.get(data.method)
    if method is None:
        raise ExamRecordError(f"検査方法 {data.method} は{fy}年度の定義にありません")
    if data.setting not in Setting.values:
        raise ExamRecordError("検診方式は 個別 か 集団 です")
    if data.setting not in method.settings:
        raise ExamRecordError(f"{method.name}は{Setting(data.setting).label}で実施していません")
    if data.billing_month is not None and data.billing_month.day != 1:
        raise ExamRecordError("請求月はその月の 1 日で表します")
    if data.hpv_follow_up and data.method != rules.HPV_METHOD:
        raise ExamRecordError("追跡検査は HPV検査単独法の検査だけです")
    problems = programs.check_result(data.method, data.results, follow_up=data.hpv_follow_up)
    if problems:
        raise ExamRecordError("。".join(p.message for p in problems))
    facts = residents.register_facts(data.atena_no, data.exam_date, fy)
    if facts is None:
        raise ExamRecordError("この宛名番号の住民記録がありません")
    seiken, follow_up_due = rules.primary_outcome(
        data.method, data.exam_date, data.results, follow_up=data.hpv_follow_up
    )
    opens_case = seiken and programs.seiken_of(method.programme) is not None
    return CheckedExam(data, fy, method.programme, facts.birth_date, seiken, follow_up_due,
                       opens_case)  # fmt: skip


def record_exam(
    actor: Any, data: ExamInput, *, purpose: str = Purpose.RESULT_ENTRY
) -> tuple[Exam, FollowUpCase | None]:
    """Record a primary exam: checked, 要精検 decided, 初回 derived, the case opened."""
    checked = check_exam(data)
    fy, seiken, follow_up_due = checked.fiscal_year, checked.needs_seiken, checked.follow_up_due
    mc = settings.MUNICIPALITY_CODE
    with transaction.atomic():
        first_time = not Exam.objects.filter(
            municipality_code=mc, atena_no=data.atena_no, programme=checked.programme,
            fiscal_year__gte=fy - FIRST_TIME_YEARS, fiscal_year__lt=fy,
        ).exists()  # fmt: skip
        exam = Exam.objects.create(
            municipality_code=mc,
            atena_no=data.atena_no,
            fiscal_year=fy,
            programme=checked.programme,
            method=data.method,
            exam_date=data.exam_date,
            setting=data.setting,
            institution_code=data.institution_code,
            smoking_index=data.smoking_index,
            follow_up_due=follow_up_due,
            results=dict(data.results),
            needs_seiken=seiken,
            hpv_follow_up=data.hpv_follow_up,
            voucher_no=data.voucher_no,
            coupon_no=data.coupon_no,
            place=data.place,
            age_at_exam=age_on(checked.birth_date, data.exam_date),
            fy_end_age=fy_end_age(checked.birth_date, fy),
            first_time=first_time,
            complication=data.complication,
            billing_category=data.billing_category,
            billing_month=data.billing_month,
            recorded_by=_actor_name(actor),
            recorded_at=clock.now(),
        )
        case = None
        if checked.opens_case:
            case = FollowUpCase.objects.create(
                municipality_code=mc,
                atena_no=data.atena_no,
                programme=checked.programme,
                fiscal_year=fy,
                exam=exam,
                primary_result=rules.decisive_value(data.method, data.results),
                status=rules.SeikenStatus.UNKNOWN,
                status_since=data.exam_date,
                updated_by=_actor_name(actor),
                updated_at=clock.now(),
            )
        audit.record(
            audit.Event.CREATE, actor, data.atena_no, purpose, function=ENTER_RESULT,
            fiscal_year=fy, method=data.method, exam_id=exam.pk,
        )  # fmt: skip
        if case is not None:  # under the case's own subject (see case_subject)
            audit.record(
                audit.Event.CREATE, actor, case_subject(case), purpose, function=FOLLOW_UP,
                exam_id=exam.pk, version=case.version,
            )  # fmt: skip
    return exam, case


def case_subject(case: FollowUpCase) -> audit.Subject:
    """A case's events name the case, not the resident: an event on the resident saying a
    精検 case was opened or updated would itself tell the log's reader a health fact (that the
    person was 要精検). The case id leads to the person for whoever may read the case."""
    return audit.Subject("follow_up_case", str(case.pk))


# Fields staff may change on a case (the rest are derived or fixed).
CASE_FIELDS = frozenset({
    "referral_to", "form_issued_on", "form_returned_on", "known_not_attended",
    "survey_sent_on", "survey_answered_on", "survey_answer", "tracing_result",
})  # fmt: skip


_DATE_FIELDS = ("form_issued_on", "form_returned_on", "survey_sent_on", "survey_answered_on")
_LABELS = {
    "referral_to": "紹介先",
    "form_issued_on": "連絡票の発行日",
    "form_returned_on": "連絡票の返却日",
    "known_not_attended": "受診していないことの確認",
    "survey_sent_on": "状況調査の送付日",
    "survey_answered_on": "状況調査の回答日",
    "survey_answer": "状況調査の回答",
    "tracing_result": "追跡調査結果",
}


def _check_case_value(name: str, value: Any) -> None:
    """A case field's value is of its kind and fits (a message naming the field, else)."""
    label = _LABELS[name]
    if name in _DATE_FIELDS:
        if value is not None and not isinstance(value, date):
            raise ExamRecordError(f"{label}は日付で入力してください")
        if value is not None and value > clock.today():
            raise ExamRecordError(f"{label}が未来の日付です")
    elif name == "known_not_attended":
        if not isinstance(value, bool):
            raise ExamRecordError(f"{label}は はい・いいえ で入力してください")
    else:
        limit = FollowUpCase._meta.get_field(name).max_length
        if not isinstance(value, str) or len(value) > limit:
            raise ExamRecordError(f"{label}は {limit} 文字以内の文字で入力してください")


def _lock(case_id: int, expected_version: int) -> FollowUpCase:
    """Take the case at ``expected_version`` (moving it to the next), or refuse.

    The conditional UPDATE is the lock: a second writer waits for the first's commit, then
    finds the version moved on and is refused instead of overwriting.
    """
    moved = FollowUpCase.objects.filter(pk=case_id, version=expected_version).update(
        version=F("version") + 1
    )
    if not moved:
        current = FollowUpCase.objects.filter(pk=case_id).values_list("version", flat=True)
        if not current:
            raise ExamRecordError("この精密検査の記録はありません")
        raise CaseConflict(
            "この精密検査の記録は、画面を開いた後に他の職員が更新しました"
            f"（あなたが開いた版 {expected_version}、今の版 {current[0]}）。"
            "読み込み直して内容を確かめてから、もう一度入力してください。"
        )
    return FollowUpCase.objects.select_for_update().get(pk=case_id)


def rederive_case(case: FollowUpCase) -> None:
    """Re-derive the status (and the counted result) from the case's facts (not saved)."""
    reports = [
        rules.SeikenReport(
            from_institution=r.from_institution,
            exam_date=r.exam_date,
            institution=r.institution,
            method=r.method,
            result=r.result,
        )
        for r in case.reports.order_by("recorded_at", "pk")
    ]
    outcome = rules.seiken_status(
        case.programme, case.exam.method, case.primary_result, case.fiscal_year, reports,
        known_not_attended=case.known_not_attended,
    )  # fmt: skip
    if outcome.status != case.status:
        case.status_since = clock.today()
    case.status, case.result = outcome.status, outcome.result


def update_case(
    actor: Any,
    case_id: int,
    expected_version: int,
    changes: dict[str, Any],
    *,
    purpose: str = Purpose.FOLLOW_UP,
) -> FollowUpCase:
    """Change what staff know about a case (紹介先, 連絡票, 未受診者状況調査, 追跡調査)."""
    unknown = set(changes) - CASE_FIELDS
    if unknown:
        raise ExamRecordError(f"変更できない項目です: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        _check_case_value(name, value)
    with transaction.atomic():
        case = _lock(case_id, expected_version)
        for name, value in changes.items():
            setattr(case, name, value)
        rederive_case(case)
        case.updated_by, case.updated_at = _actor_name(actor), clock.now()
        case.save()
        audit.record(
            audit.Event.UPDATE, actor, case_subject(case), purpose, function=FOLLOW_UP,
            fields=sorted(changes), version=case.version,
        )  # fmt: skip
    return case


def add_seiken_report(
    actor: Any,
    case_id: int,
    expected_version: int,
    *,
    from_institution: bool,
    exam_date: date | None,
    institution: str = "",
    method: str = "",
    result: str = "",
    pathology: str = "",
    stage: str = "",
    early_cancer: bool | None = None,
    complication: str = "",
    purpose: str = Purpose.FOLLOW_UP,
) -> FollowUpCase:
    """Record a 精検 report (the 連絡票, or the person's own account) and re-derive the status."""
    with transaction.atomic():
        case = _lock(case_id, expected_version)
        spec = programs.seiken_of(case.programme)
        assert spec is not None  # nosec B101 - cases are opened only for such programmes
        if method and spec.method(method) is None:
            allowed = "、".join(f"{m.code}（{m.label}）" for m in spec.methods)
            raise ExamRecordError(f"精検法 {method!r} はありません（{allowed}）")
        if result and result not in spec.results:
            raise ExamRecordError(f"精検結果 {result!r} はありません（{'、'.join(spec.results)}）")
        if exam_date is not None and exam_date < case.exam.exam_date:
            raise ExamRecordError("精検日が一次検診の受診日より前です")
        SeikenReportRecord.objects.create(
            case=case, from_institution=from_institution, exam_date=exam_date,
            institution=institution, method=method, result=result, pathology=pathology,
            stage=stage, early_cancer=early_cancer, complication=complication,
            recorded_by=_actor_name(actor), recorded_at=clock.now(),
        )  # fmt: skip
        rederive_case(case)
        case.updated_by, case.updated_at = _actor_name(actor), clock.now()
        case.save()
        audit.record(
            audit.Event.UPDATE, actor, case_subject(case), purpose, function=FOLLOW_UP,
            action="add_report", version=case.version,
        )  # fmt: skip
    return case
