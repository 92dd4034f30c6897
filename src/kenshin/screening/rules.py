"""Pure rules of the screening records: the HPV検査単独法 follow-up as an explicit state machine,
and the 精検 status of a 要精検 case as the 作成要領 defines it (:func:`seiken_status`).

Why a state machine: under HPV検査単独法 a woman's next step depends on the last test and on
what kind of test it was (domain.md §2.3, 対策型検診における HPV検査単独法による子宮頸がん検診
マニュアル 2024). Written as states and transitions with their dates, each step can be tested,
shown on the person's ledger, and put on a worklist when it falls due:

    検診 HPV −                         → ROUTINE (next 節目年齢, or 5 years after the test)
    検診 HPV +, triage not yet known   → TRIAGE_PENDING (the cytology on the same specimen)
    検診 HPV +, triage + (or 不適正)     → CONFIRMATORY (要確定精検: colposcopy and biopsy)
    検診 HPV +, triage −               → FOLLOW_UP_DUE (追跡検査 one year after the test)
    追跡 HPV +                          → CONFIRMATORY
    追跡 HPV −                          → ROUTINE

No I/O: the functions take the exams as plain data (screening.services reads them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from kenshin.programs.vocabularies import needs_seiken, results_of, seiken_of

HPV_METHOD = "hpv_primary"


class HpvState(StrEnum):
    ROUTINE = "routine"
    TRIAGE_PENDING = "triage_pending"
    CONFIRMATORY = "confirmatory"
    FOLLOW_UP_DUE = "follow_up_due"


HPV_STATE_LABELS: dict[HpvState, str] = {
    HpvState.ROUTINE: "定期（次の節目年齢で受診）",
    HpvState.TRIAGE_PENDING: "トリアージ細胞診の結果待ち",
    HpvState.CONFIRMATORY: "要確定精検（コルポスコピー・組織診）",
    HpvState.FOLLOW_UP_DUE: "追跡検査の対象（1年後にHPV検査）",
}


@dataclass(frozen=True)
class HpvExam:
    """One HPV test of a woman: when, whether it was the 追跡検査, and its coded results."""

    exam_date: date
    follow_up: bool  # True: the 追跡検査 a year after a negative triage
    results: Mapping[str, str]  # {"hpv": …, "triage_adequacy": …, "triage": …}


@dataclass(frozen=True)
class HpvStep:
    state: HpvState
    since: date  # the date of the test that led here
    due: date | None  # FOLLOW_UP_DUE: when the 追跡検査 falls due
    seiken: bool  # this test made the exam 要精検 (for the 事業報告)


def one_year_after(day: date) -> date:
    """The same day a year later; 29 February gives 28 February (the day before the
    corresponding day does not exist — 民法 第143条 counts to the end of that month)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return date(day.year + 1, 2, 28)


def hpv_step(exam: HpvExam) -> HpvStep:
    """Where one HPV test leaves the woman (the transition table above)."""
    spec = results_of(HPV_METHOD)
    assert spec is not None  # nosec B101 - shipped vocabulary
    hpv = exam.results.get("hpv", "")
    if hpv == "negative":
        return HpvStep(HpvState.ROUTINE, exam.exam_date, None, seiken=False)
    if hpv != "positive":
        raise ValueError(f"HPV検査の結果がありません（{hpv!r}）")
    if exam.follow_up:
        return HpvStep(HpvState.CONFIRMATORY, exam.exam_date, None, seiken=True)
    if not all(exam.results.get(item.code) for item in spec.items[1:]):
        return HpvStep(HpvState.TRIAGE_PENDING, exam.exam_date, None, seiken=False)
    if needs_seiken(HPV_METHOD, exam.results):  # the triage decides (vocabularies' rule)
        return HpvStep(HpvState.CONFIRMATORY, exam.exam_date, None, seiken=True)
    return HpvStep(
        HpvState.FOLLOW_UP_DUE, exam.exam_date, one_year_after(exam.exam_date), seiken=False
    )


def primary_outcome(
    method: str, exam_date: date, results: Mapping[str, str], *, follow_up: bool = False
) -> tuple[bool, date | None]:
    """What a checked primary result decides: 要精検 (for the 事業報告), and the HPV 追跡検査
    due date a negative triage sets (None otherwise). One rule for every path that records an
    exam — one by one or a whole history in bulk — so both draw the same conclusions."""
    if method == HPV_METHOD:
        step = hpv_step(HpvExam(exam_date, follow_up, results))
        return step.seiken, step.due
    return needs_seiken(method, results), None


def hpv_state(exams: Iterable[HpvExam]) -> HpvStep | None:
    """The current step of a woman's HPV follow-up: that of her latest HPV test (None if she
    has had none). A later test supersedes an earlier one whatever it was."""
    latest = max(exams, key=lambda e: e.exam_date, default=None)
    return None if latest is None else hpv_step(latest)


def follow_up_overdue(step: HpvStep | None, today: date) -> bool:
    """True when the 追跡検査 has fallen due and not been done (for the worklist)."""
    return (
        step is not None
        and step.state is HpvState.FOLLOW_UP_DUE
        and step.due is not None
        and step.due <= today
    )


# ------------------------------------------------------------------ 精密検査 (seiken) status


class SeikenStatus(StrEnum):
    """精検受診 / 精検未受診 / 精検未把握, exactly as the 事業報告's 作成要領 defines them."""

    ATTENDED = "attended"
    NOT_ATTENDED = "not_attended"
    UNKNOWN = "unknown"


SEIKEN_STATUS_LABELS: dict[SeikenStatus, str] = {
    SeikenStatus.ATTENDED: "精検受診",
    SeikenStatus.NOT_ATTENDED: "精検未受診",
    SeikenStatus.UNKNOWN: "精検未把握",
}


@dataclass(frozen=True)
class SeikenReport:
    """What the city heard about a 精検: from the 精検機関 (the 連絡票) or from the person."""

    from_institution: bool  # the 精検機関's report (精密検査結果連絡票) — else a self-report
    exam_date: date | None
    institution: str  # 医療機関コード or name as reported ('' when not said)
    method: str  # a method code of the programme's SeikenSpec ('' when not said)
    result: str  # a code of seiken_results ('' when not said; in progress → "suspected")


@dataclass(frozen=True)
class SeikenOutcome:
    status: SeikenStatus
    result: str  # the result category counted (ATTENDED only; '' otherwise)
    report: SeikenReport | None  # the report that decided (None for UNKNOWN / known absence)


def decisive_value(method: str, results: Mapping[str, str]) -> str:
    """The primary result the 精検 rules read (a case's 一次検診の判定): the first value that is
    要精検, else the first item's that was given — e.g. ``ASC-US`` of a cytology,
    ``inadequate`` of a specimen that could not be read, a 便潜血's 2日分 judgement when only it
    was reported. :func:`seiken_status` decides by it whether a repeat cytology counts.
    """
    spec = results_of(method)
    if spec is None:
        raise KeyError(method)
    for item in spec.items:
        value = item.vocabulary.value(results.get(item.code, ""))
        if value is not None and value.seiken:
            return value.code
    return next((results[i.code] for i in spec.items if results.get(i.code)), "")


def seiken_status(
    programme: str,
    primary_method: str,
    primary_result: str,
    primary_fy: int,
    reports: Iterable[SeikenReport],
    *,
    known_not_attended: bool = False,
) -> SeikenOutcome:
    """Derive the status of one 要精検 case from what is known (never typed by hand).

    作成要領 (domain.md §3.3): 精検受診 only with the 精検機関's report, or a self-report of all
    four of 精検日・受診機関・精検法・精検結果; 精検未受診 when known not to have gone, or when the
    "精検" was a test that does not count (repeat 便潜血, repeat 喀痰, cytology-only repeat or an
    HPV test alone — both accepted after a cytology ASC-US only); otherwise 精検未把握 (an
    incomplete self-report included). A 精検 done in the next fiscal year counts for the
    screening's year; one reported later than that does not. ``primary_method`` and
    ``primary_result`` are the primary exam's method and decisive value (e.g. cytology, ASC-US).

    Which report gives the result counted: the 精検機関's reports outrank self-reports; among
    them a がん result is kept (a later report after treatment does not undo it), otherwise
    the latest report's result (``reports`` in the order they were taken in).
    """
    spec = seiken_of(programme)
    if spec is None:
        raise KeyError(programme)
    last_day = date(primary_fy + 2, 3, 31)  # the end of the following fiscal year
    attended, inappropriate = [], []
    for report in reports:
        if report.exam_date is not None and report.exam_date > last_day:
            continue
        method = spec.method(report.method)
        if method is not None and not method.counts_after(primary_method, primary_result):
            inappropriate.append(report)
            continue
        complete = bool(
            report.exam_date and report.institution and method is not None and report.result
        )
        if report.from_institution or complete:
            attended.append(report)
    if attended:
        pool = [r for r in attended if r.from_institution] or attended
        cancer = [r for r in pool if r.result == "cancer"]
        # The latest 精検日; on the same day the report taken in later (the reports come in
        # that order): a final result after the 精検機関's "in progress" for the same 精検.
        candidates = list(enumerate(cancer or pool))
        decided = max(candidates, key=lambda ir: (ir[1].exam_date or date.min, ir[0]))[1]
        # A 精検 still in progress at the cut-off counts as attended, がん疑い又は未確定.
        result = decided.result if decided.result in spec.results else "suspected"
        return SeikenOutcome(SeikenStatus.ATTENDED, result, decided)
    if inappropriate:
        return SeikenOutcome(SeikenStatus.NOT_ATTENDED, "", inappropriate[-1])
    if known_not_attended:
        return SeikenOutcome(SeikenStatus.NOT_ATTENDED, "", None)
    return SeikenOutcome(SeikenStatus.UNKNOWN, "", None)
