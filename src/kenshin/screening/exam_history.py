"""Past exams taken in bulk: the history the roster's interval rules read (demo, migration).

The roster's biennial, HPV and hepatitis rules read who was screened for what in earlier fiscal
years. A city switching to Kenshin brings that history from its old system, and the demo city
needs some too; both arrive as many rows at once, already checked by whoever made them. Exam
entry one by one (results, 要精検, billing) is issue 6 and will have its own action.

Written with :func:`kenshin.core.bulk.bulk_insert` (COPY on PostgreSQL, executemany on SQLite)
in batches: bulk_create costs 15–25× more per row at the sizes a city's history has
(reference/perf-limits.md §A). One audit event says how many rows came in, never who.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import transaction

from kenshin.core import audit
from kenshin.core.bulk import bulk_insert
from kenshin.core.fiscal import fiscal_year_of
from kenshin.screening.models import Exam, Setting

BATCH = 10_000
_FIELDS = (
    "municipality_code", "atena_no", "fiscal_year", "programme", "method", "exam_date",
    "setting", "institution_code", "smoking_index", "follow_up_due",
)  # fmt: skip
_SETTINGS = frozenset(Setting.values)


@dataclass(frozen=True)
class ExamFact:
    """One past primary exam, as much of it as the roster rules read.

    The fiscal year is the exam date's. ``smoking_index`` is the 喫煙指数 asked at the 問診
    (lung exams; None when not asked), ``follow_up_due`` the HPV 追跡検査 date a negative
    triage set (None otherwise).
    """

    atena_no: str
    programme: str
    method: str
    exam_date: date
    setting: str  # individual | group
    institution_code: str = ""
    smoking_index: int | None = None
    follow_up_due: date | None = None


def _check(fact: ExamFact) -> None:
    if not fact.atena_no or not fact.programme or not fact.method:
        raise ValueError("宛名番号・検診事業・検査方法は必須です")
    if fact.setting not in _SETTINGS:
        raise ValueError(f"検診方式は individual か group です（{fact.setting!r}）")
    if fact.smoking_index is not None and fact.smoking_index < 0:
        raise ValueError("喫煙指数は 0 以上です")
    if fact.follow_up_due is not None and fact.follow_up_due <= fact.exam_date:
        raise ValueError("追跡検査の時期は受診日より後です")


def _rows(facts: Iterable[ExamFact], mc: str, counter: list[int]) -> Iterator[tuple[Any, ...]]:
    for fact in facts:
        _check(fact)
        counter[0] += 1
        yield (
            mc, fact.atena_no, fiscal_year_of(fact.exam_date), fact.programme, fact.method,
            fact.exam_date, fact.setting, fact.institution_code, fact.smoking_index,
            fact.follow_up_due,
        )  # fmt: skip


def record_exam_history(rows: Iterable[ExamFact], *, actor: Any = None, source: str = "") -> int:
    """Append past exams in batches, all or nothing; return how many were written.

    ``actor``: a request, a user, or a name for the system (``"demo"``, ``"migration"``).
    Not idempotent by itself (the same exam twice is two exams): callers bring a history once
    and check :func:`exam_count` first, as ``kenshin demo setup`` does.
    """
    mc = settings.MUNICIPALITY_CODE
    counter = [0]
    stream = _rows(rows, mc, counter)
    with transaction.atomic():
        while batch := list(islice(stream, BATCH)):
            bulk_insert(Exam, _FIELDS, batch)
        if counter[0]:
            audit.record(
                audit.Event.IMPORT,
                audit.Actor.system(actor) if isinstance(actor, str) else actor,
                audit.Subject("exam_history", source[:100] or "bulk"),
                function="screening.exam_history",
                rows=counter[0],
            )
    return counter[0]


def exam_count(fiscal_years: Iterable[int] | None = None) -> int:
    """How many exams the city has, in the given fiscal years (all years when None)."""
    qs = Exam.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)
    if fiscal_years is not None:
        qs = qs.filter(fiscal_year__in=list(fiscal_years))
    return qs.count()
