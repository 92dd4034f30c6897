"""The facts one person's eligibility is decided on, read the way the roster build reads them.

The roster build reads the same facts set-based (build.py); explain() and the person page read
them here for one person and hand them to :func:`kenshin.programs.rules.decide`. A test builds
a roster and checks that both give the same decision for every row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from django.conf import settings

from kenshin.programs import services as programs
from kenshin.programs.rules import History, PersonFacts
from kenshin.residents import services as residents
from kenshin.screening.models import Exam


def history_of(atena_no: str, fiscal_year: int, base_date: date) -> tuple[History, int | None]:
    """Past exams (fiscal years before ``fiscal_year``) and the latest 喫煙指数 by the base date."""
    programme_years: dict[str, set[int]] = defaultdict(set)
    method_years: dict[str, set[int]] = defaultdict(set)
    follow_up_due: dict[str, date] = {}
    follow_up_from: dict[str, date] = {}
    last_test: dict[str, date] = {}
    smoking: tuple[date, int, int] | None = None
    rows = Exam.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, atena_no=atena_no
    ).values_list("id", "fiscal_year", "programme", "method", "exam_date", "smoking_index",
                  "follow_up_due")  # fmt: skip
    try:
        not_counting = programs.catalogue(fiscal_year).not_counting_methods
    except programs.CatalogueMissing:
        not_counting = frozenset()
    for pk, fy, programme, method, exam_date, smoking_index, due in rows:
        if smoking_index is not None and exam_date <= base_date:
            if smoking is None or (exam_date, pk) > (smoking[0], smoking[1]):
                smoking = (exam_date, pk, smoking_index)
        if fy >= fiscal_year:
            continue
        if method not in not_counting:
            programme_years[programme].add(fy)
        method_years[method].add(fy)
        if method not in last_test or exam_date > last_test[method]:
            last_test[method] = exam_date
        # The latest due date, and the test that set it (the later test on a tie).
        if due is not None and (
            method not in follow_up_due
            or (due, exam_date) > (follow_up_due[method], follow_up_from[method])
        ):
            follow_up_due[method], follow_up_from[method] = due, exam_date
    history = History(
        programme_years={k: frozenset(v) for k, v in programme_years.items()},
        method_years={k: frozenset(v) for k, v in method_years.items()},
        follow_up_due=follow_up_due,
        follow_up_from=follow_up_from,
        last_test=last_test,
    )
    return history, (smoking[2] if smoking else None)


def person_facts(atena_no: str, fiscal_year: int, base_date: date) -> PersonFacts | None:
    """PersonFacts for the rules, or None when the 宛名番号 was never in the register."""
    reg = residents.register_facts(atena_no, base_date, fiscal_year)
    if reg is None:
        return None
    _history, smoking = history_of(atena_no, fiscal_year, base_date)
    return PersonFacts(
        sex=reg.sex,
        birth_date=reg.birth_date,
        status=reg.status,
        moved_in=reg.moved_in,
        smoking_index=smoking,
        tax_category=reg.tax_category,
        tax_category_previous=reg.tax_category_previous,
        insurance_category=reg.insurance_category,
    )
