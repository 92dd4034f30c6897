"""Staff worklists: the cases and exams that need someone to act, each rule with its count.

Why a fixed set of named rules (like DHIS2's working lists): staff open the same lists every
week — 精検 not reported, 連絡票 not returned, 未受診者状況調査 due, HPV 追跡検査 due, results
that contradict eligibility — and a count beside each tells them where the work is. Each rule
is one query over the exam and case tables (indexed by status and person), never a loop.
The thresholds are data: the 精検 reporting period is per programme in
``programs/vocabularies.toml``; the others are below, in days.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from kenshin.core import audit, clock
from kenshin.core.fiscal import fiscal_year_of
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening.models import (
    Exam,
    FollowUpCase,
    RosterBuild,
    RosterEntry,
    SeikenReportRecord,
)
from kenshin.screening.permissions import VIEW_EXAMS
from kenshin.screening.rules import HPV_METHOD

SPUTUM_METHOD, SPUTUM_MIN_INDEX, SPUTUM_MIN_AGE = "sputum_cytology", 600, 50  # 指針
FORM_RETURN_DAYS = 30  # 連絡票: issued this long ago and not back
SURVEY_AFTER_DAYS = 180  # 未受診者状況調査: still unknown this long after the primary exam


@dataclass(frozen=True)
class Worklist:
    code: str
    title: str
    rule: str  # the rule in words, shown above the list
    query: Callable[[date], QuerySet]


def _cases() -> QuerySet:
    return FollowUpCase.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)


def _open_cases(today: date) -> QuerySet:
    """Cases still in their 精検 period: a 精検 counts for the screening's year until the end of
    the next fiscal year (作成要領), so older cases are settled for the 事業報告 and would only
    pile up on the lists year after year."""
    return _cases().filter(fiscal_year__gte=fiscal_year_of(today) - 1)


def _exams() -> QuerySet:
    return Exam.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)


def seiken_not_reported(today: date) -> QuerySet:
    """要精検 with no report at all after the programme's reporting period."""
    per_programme = [
        Q(programme=spec.programme,
          exam__exam_date__lte=today - timedelta(days=spec.report_within_days))
        for spec in programs.seiken_specs()
    ]  # fmt: skip
    if not per_programme:
        return _cases().none()
    return (
        _open_cases(today)
        .filter(status="unknown", known_not_attended=False)
        .filter(reduce(operator.or_, per_programme))
        .exclude(Exists(SeikenReportRecord.objects.filter(case=OuterRef("pk"))))
    )


def form_not_returned(today: date) -> QuerySet:
    """精密検査結果連絡票 issued ``FORM_RETURN_DAYS`` ago or more and not returned."""
    return _open_cases(today).filter(
        status="unknown",
        form_issued_on__isnull=False,
        form_issued_on__lte=today - timedelta(days=FORM_RETURN_DAYS),
        form_returned_on__isnull=True,
    )


def survey_due(today: date) -> QuerySet:
    """Still 精検未把握 ``SURVEY_AFTER_DAYS`` after the exam, and no 状況調査 sent yet."""
    return _open_cases(today).filter(
        status="unknown",
        survey_sent_on__isnull=True,
        exam__exam_date__lte=today - timedelta(days=SURVEY_AFTER_DAYS),
    )


def hpv_follow_up_due(today: date) -> QuerySet:
    """HPV 追跡検査 fallen due with no HPV test since the one that set it."""
    later = _exams().filter(
        atena_no=OuterRef("atena_no"), method=HPV_METHOD, exam_date__gt=OuterRef("exam_date")
    )
    return (
        _exams()
        .filter(method=HPV_METHOD, follow_up_due__isnull=False, follow_up_due__lte=today)
        .exclude(Exists(later))
    )


def not_in_roster(today: date) -> QuerySet:
    """Recorded exams whose person is not in that year's roster for the method (wrong sex,
    under age, not a resident …), for the years whose roster has been built. Methods without
    a roster of their own (子宮体部, done with the cervical exam) are not judged here."""
    built = RosterBuild.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, finished_at__isnull=False
    ).values("fiscal_year")
    of_method = RosterEntry.objects.filter(
        municipality_code=OuterRef("municipality_code"),
        fiscal_year=OuterRef("fiscal_year"),
        method=OuterRef("method"),
    )
    return (
        _exams()
        .filter(recorded_at__isnull=False, fiscal_year__in=built)
        .filter(Exists(of_method))
        .exclude(Exists(of_method.filter(atena_no=OuterRef("atena_no"))))
        # 喀痰: the 喫煙指数 is asked at the 問診 on the day; an exam that recorded ≥ 600 at 50+
        # is the guideline's target even if the register knew no index on the base date.
        .exclude(method=SPUTUM_METHOD, smoking_index__gte=SPUTUM_MIN_INDEX,
                 fy_end_age__gte=SPUTUM_MIN_AGE)
    )  # fmt: skip


def twice_in_a_year(today: date) -> QuerySet:
    """The same method twice in one fiscal year (an HPV 追跡検査 is not a second exam), or two
    methods of a programme that allows one a year (胃 X線 and 内視鏡). 胸部X線 with 喀痰 is
    not listed: the lung programme allows both."""
    recorded = _exams().filter(recorded_at__isnull=False, hpv_follow_up=False)
    keys = [
        Q(atena_no=g["atena_no"], fiscal_year=g["fiscal_year"], method=g["method"])
        for g in recorded.values("atena_no", "fiscal_year", "method")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    ]
    one_a_year = _one_method_programmes(recorded)
    for g in (
        recorded.values("atena_no", "fiscal_year", "programme")
        .annotate(n=Count("method", distinct=True))
        .filter(n__gt=1)
    ):
        if g["programme"] in one_a_year.get(g["fiscal_year"], ()):
            keys.append(
                Q(atena_no=g["atena_no"], fiscal_year=g["fiscal_year"], programme=g["programme"])
            )
    if not keys:
        return _exams().none()
    return recorded.filter(reduce(operator.or_, keys))


def _one_method_programmes(exams: QuerySet) -> dict[int, set[str]]:
    """Per fiscal year with exams, the programmes whose catalogue allows one method a year."""
    out: dict[int, set[str]] = {}
    for fy in exams.values_list("fiscal_year", flat=True).distinct():
        try:
            catalogue = programs.catalogue(fy)
        except programs.CatalogueMissing:
            continue
        out[fy] = {p.code for p in catalogue.programmes if p.one_method_per_year}
    return out


WORKLISTS: tuple[Worklist, ...] = (
    Worklist("seiken_not_reported", "精検結果の未報告",
             "要精検で、検診事業ごとの期間（既定 90 日）を過ぎても精検の報告がない（翌年度末まで）",
             seiken_not_reported),
    Worklist("form_not_returned", "連絡票の未返却",
             f"連絡票の発行から {FORM_RETURN_DAYS} 日以上、返却がなく精検未把握（翌年度末まで）",
             form_not_returned),
    Worklist("survey_due", "未受診者状況調査の対象",
             f"一次検診から {SURVEY_AFTER_DAYS} 日以上、精検未把握で調査が未送付（翌年度末まで）",
             survey_due),
    Worklist("hpv_follow_up_due", "HPV 追跡検査の時期",
             "トリアージ陰性から 1 年たち、その後の HPV 検査がない", hpv_follow_up_due),
    Worklist("not_in_roster", "対象者でない受診",
             "その年度の対象者名簿にない（性別・年齢・住民でない）人の受診", not_in_roster),
    Worklist("twice_in_a_year", "同じ年度に 2 回の受診",
             "同じ検査を同じ年度に 2 回、または 1 年に 1 つの検診で 2 つの方法（胃 X線と内視鏡）",
             twice_in_a_year),
)  # fmt: skip


def worklist(code: str) -> Worklist:
    return next(w for w in WORKLISTS if w.code == code)


def counts(today: date | None = None) -> dict[str, int]:
    """Each worklist's count (one COUNT query per list)."""
    day = today or clock.today()
    return {w.code: w.query(day).count() for w in WORKLISTS}


PAGE_SIZE = 50


@dataclass(frozen=True)
class WorkRow:
    """One line of a worklist: the exam, its case if any, and who it is."""

    atena_no: str
    name: str
    name_kana: str
    birth_date: date | None
    programme: str
    method: str
    exam_date: date
    status: str  # 精検の状況 ('' for exam-based lists)
    days: int  # since the exam


@dataclass(frozen=True)
class WorkPage:
    worklist: Worklist
    rows: list[WorkRow]
    total: int
    number: int
    pages: int


def list_for(actor: Any, code: str, *, purpose: str, page: int = 1,
             today: date | None = None) -> WorkPage:  # fmt: skip
    """One page of a worklist, oldest exam first, each person shown recorded (SEARCH)."""
    day = today or clock.today()
    wl = worklist(code)
    qs = wl.query(day)
    total = qs.count()
    pages = max(1, -(-total // PAGE_SIZE))
    number = min(max(1, page), pages)
    start = (number - 1) * PAGE_SIZE
    if qs.model is FollowUpCase:
        raw = list(qs.order_by("exam__exam_date", "pk").values(
            "atena_no", "programme", "exam__method", "exam__exam_date", "status",
        )[start:start + PAGE_SIZE])  # fmt: skip
        items = [(r["atena_no"], r["programme"], r["exam__method"], r["exam__exam_date"],
                  r["status"]) for r in raw]  # fmt: skip
    else:
        raw = list(qs.order_by("exam_date", "pk").values(
            "atena_no", "programme", "method", "exam_date")[start:start + PAGE_SIZE])  # fmt: skip
        items = [(r["atena_no"], r["programme"], r["method"], r["exam_date"], "") for r in raw]
    names = residents.names_of(i[0] for i in items)
    rows = []
    for atena_no, programme, method, exam_date, status in items:
        n = names.get(atena_no)
        rows.append(WorkRow(atena_no, n.name if n else "", n.name_kana if n else "",
                            n.birth_date if n else None, programme, method, exam_date, status,
                            (day - exam_date).days))  # fmt: skip
    with transaction.atomic():
        audit.record(audit.Event.SEARCH, actor, None, purpose, function=VIEW_EXAMS,
                     worklist=code, total=total, page=number)  # fmt: skip
        for atena_no in dict.fromkeys(r.atena_no for r in rows):
            audit.record(audit.Event.SEARCH, actor, audit.Subject.resident(atena_no), purpose,
                         function=VIEW_EXAMS, worklist=code)  # fmt: skip
    return WorkPage(wl, rows, total, number, pages)
