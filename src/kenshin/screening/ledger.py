"""The person's ledger (個人別受診台帳): every programme's years, exams, results, 精検 and
vouchers of one resident on one page, and the same as a PDF.

Why one read module: the page, the PDF and the bench read the same :class:`Ledger`, so what is
printed is what was shown. The number of queries is fixed, whatever the length of the history
(one per table, plus one per fiscal year's catalogue for the names): a test counts them, and
bench/ledger.py times the page at a million residents and a million exams.

Opening a ledger is recorded as a VIEW (or PRINT for the PDF) on the resident, with the purpose.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from kenshin.core import audit
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import vouchers
from kenshin.screening.models import (
    Exam,
    Exclusion,
    ExclusionReason,
    FollowUpCase,
    RosterEntry,
    SeikenReportRecord,
    Setting,
)
from kenshin.screening.permissions import VIEW_EXAMS
from kenshin.screening.rules import SEIKEN_STATUS_LABELS, SeikenStatus

_SETTING = dict(Setting.choices)
_EXCLUSION = dict(ExclusionReason.choices)


@dataclass(frozen=True)
class ResultLine:
    item: str
    value: str  # the value's label (its code when the vocabulary no longer has it)
    seiken: bool


@dataclass(frozen=True)
class ReportLine:
    report: SeikenReportRecord
    source: str  # 精検機関 / 本人
    method_label: str
    result_label: str


@dataclass
class CaseLine:
    case: FollowUpCase
    status_label: str
    result_label: str
    reports: list[ReportLine]
    method_choices: list[tuple[str, str]]
    result_choices: list[tuple[str, str]]
    forms: Any = None  # the page's (case form, report form), where it offers them


@dataclass(frozen=True)
class ExamLine:
    exam: Exam
    method_name: str
    setting_label: str
    results: list[ResultLine]
    case: CaseLine | None


@dataclass(frozen=True)
class RosterLine:
    method_name: str
    eligible: bool
    reason_label: str
    exclusion_label: str
    exemption_label: str
    coupon_no: str


@dataclass
class YearLine:
    fiscal_year: int
    roster: list[RosterLine] = field(default_factory=list)
    exams: list[ExamLine] = field(default_factory=list)
    exclusion: str = ""


@dataclass
class ProgrammeLedger:
    code: str
    name: str
    years: list[YearLine] = field(default_factory=list)

    @property
    def exam_count(self) -> int:
        return sum(len(y.exams) for y in self.years)


@dataclass(frozen=True)
class Ledger:
    person: Any  # residents' ResidentRecord
    programmes: list[ProgrammeLedger]
    vouchers: list[Any]
    open_cases: int

    @property
    def exam_count(self) -> int:
        return sum(p.exam_count for p in self.programmes)


def _names(
    catalogues: dict[int, programs.Catalogue],
) -> tuple[dict[str, str], dict[str, tuple[str, str]], list[str]]:
    """Programme names, method names (→ programme) and programme order, newest year winning."""
    programme_names: dict[str, str] = {}
    methods: dict[str, tuple[str, str]] = {}
    order: list[str] = []
    for fy in sorted(catalogues):
        for p in catalogues[fy].programmes:
            programme_names[p.code] = p.name
            if p.code not in order:
                order.append(p.code)
            for m in p.methods:
                methods[m.code] = (p.code, m.name)
    return programme_names, methods, order


def _results(exam: Exam) -> list[ResultLine]:
    spec = programs.results_of(exam.method)
    if spec is None or not exam.results:
        return []
    out = []
    for item in spec.items:
        code = exam.results.get(item.code)
        if not code:
            continue
        value = item.vocabulary.value(code)
        out.append(ResultLine(item.name, value.label if value else code,
                              bool(value and value.seiken)))  # fmt: skip
    return out


def _case_line(case: FollowUpCase, reports: list[SeikenReportRecord]) -> CaseLine:
    spec = programs.seiken_of(case.programme)
    labels = programs.seiken_result_labels()
    method_labels = {m.code: m.label for m in spec.methods} if spec else {}
    lines = [
        ReportLine(r, "精検機関" if r.from_institution else "本人",
                   method_labels.get(r.method, r.method), labels.get(r.result, r.result))
        for r in reports
    ]  # fmt: skip
    return CaseLine(
        case=case,
        status_label=SEIKEN_STATUS_LABELS[SeikenStatus(case.status)],
        result_label=labels.get(case.result, case.result),
        reports=lines,
        method_choices=list(method_labels.items()),
        result_choices=[(c, labels.get(c, c)) for c in spec.results] if spec else [],
    )


def person_ledger(atena_no: str) -> Ledger | None:
    """Everything the city holds on one person's screenings, grouped by programme and year."""
    person = residents.get_resident(atena_no)
    if person is None:
        return None
    mc = settings.MUNICIPALITY_CODE
    exams = list(
        Exam.objects.filter(municipality_code=mc, atena_no=atena_no).order_by("-exam_date", "-pk")
    )
    cases = {
        c.exam_id: c for c in FollowUpCase.objects.filter(municipality_code=mc, atena_no=atena_no)
    }
    reports: dict[int, list[SeikenReportRecord]] = defaultdict(list)
    if cases:
        for r in SeikenReportRecord.objects.filter(
            case_id__in=[c.pk for c in cases.values()]
        ).order_by("recorded_at", "pk"):
            reports[r.case_id].append(r)
    catalogues = programs.latest_catalogues()
    roster_years = set(catalogues)
    programme_names, method_names, order = _names(catalogues)
    roster = list(
        RosterEntry.objects.filter(
            municipality_code=mc, fiscal_year__in=sorted(roster_years),
            method__in=sorted(method_names), atena_no=atena_no,
        ).values("fiscal_year", "programme", "method", "eligible", "reason", "exclusion",
                 "exemption", "coupon_no")
    )  # fmt: skip
    exclusions = {
        (x["fiscal_year"], x["programme"]): x["reason"]
        for x in Exclusion.objects.filter(municipality_code=mc, atena_no=atena_no).values(
            "fiscal_year", "programme", "reason"
        )
    }
    book: dict[str, dict[int, YearLine]] = defaultdict(dict)

    def year(programme: str, fy: int) -> YearLine:
        line = book[programme].get(fy)
        if line is None:
            line = book[programme][fy] = YearLine(fy)
            line.exclusion = _EXCLUSION.get(exclusions.get((fy, programme), ""), "")
        return line

    for r in roster:
        year(r["programme"], r["fiscal_year"]).roster.append(
            RosterLine(
                method_name=method_names.get(r["method"], (r["programme"], r["method"]))[1],
                eligible=r["eligible"],
                reason_label=programs.REASONS.get(r["reason"], r["reason"]),
                exclusion_label=_EXCLUSION.get(r["exclusion"], ""),
                exemption_label=programs.EXEMPTIONS.get(r["exemption"], r["exemption"]),
                coupon_no=r["coupon_no"],
            )
        )
    open_cases = 0
    for e in exams:
        case = cases.get(e.pk)
        if case is not None and case.status == SeikenStatus.UNKNOWN:
            open_cases += 1
        year(e.programme, e.fiscal_year).exams.append(
            ExamLine(
                exam=e,
                method_name=method_names.get(e.method, (e.programme, e.method))[1],
                setting_label=_SETTING.get(e.setting, e.setting),
                results=_results(e),
                case=_case_line(case, reports[case.pk]) if case is not None else None,
            )
        )
    ledgers = []
    for code in [*order, *sorted(set(book) - set(order))]:
        if code not in book:
            continue
        lines = sorted(book[code].values(), key=lambda y: -y.fiscal_year)
        ledgers.append(ProgrammeLedger(code, programme_names.get(code, code), lines))
    return Ledger(person, ledgers, vouchers.vouchers_of(atena_no), open_cases)


def open_ledger(actor: Any, atena_no: str, *, purpose: str, printed: bool = False) -> Ledger | None:
    """The ledger, with its VIEW (PRINT for the PDF) on the resident in the audit log."""
    ledger = person_ledger(atena_no)
    if ledger is not None:
        audit.record(audit.Event.PRINT if printed else audit.Event.VIEW, actor,
                     audit.Subject.resident(atena_no), purpose, function=VIEW_EXAMS)  # fmt: skip
    return ledger


def case_of(atena_no: str, case_id: int) -> FollowUpCase | None:
    """A case of this person (a case id from a form never reaches another person's case)."""
    return FollowUpCase.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, atena_no=atena_no, pk=case_id
    ).first()
