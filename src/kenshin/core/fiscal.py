"""Fiscal years (年度) and legal age (年齢) as the screening rules use them.

Why this module exists
----------------------
Every eligibility rule in the screening programme is phrased in terms of the
municipal fiscal year (April–March) and of the person's *legal* age, and both
are easy to get subtly wrong:

* A fiscal year is named after the calendar year in which it **starts**:
  令和6年度 = FY2024 = 2024-04-01 … 2025-03-31.  So 2025-03-31 belongs to
  FY2024 and 2025-04-01 to FY2025.

* Japanese law (年齢計算ニ関スル法律 with 民法 第143条) counts age from the day
  of birth, and a person **attains a new age at the end of the day before the
  birthday**.  Hence someone born on 1 April attains the new age at the end of
  31 March and belongs to the *earlier* school/screening cohort.  A person
  born on 29 February attains the new age at the end of 28 February in a
  common year (the period ends on the last day of the month when the
  corresponding day does not exist).

* The rule texts define the age used for eligibility as **年度末年齢**, the age
  at the end of the fiscal year.  Because of the legal rule above, that is
  the ordinary ("naive") birthday-count age on **1 April of the following
  calendar year** — which is exactly why 久留米市 uses 翌年度4月1日 as the 基準日
  for がん検診 (reference/domain.md §2.2).

All functions here are pure integer arithmetic on ``(year, month, day)`` so
that they can run over a million residents in a bulk job without creating
intermediate ``date``/``timedelta`` objects.  They accept ``datetime`` too
(only ``year``/``month``/``day`` are read), but callers should pass local
Japanese dates (see :mod:`kenshin.core.clock`).
"""

from __future__ import annotations

from datetime import date

__all__ = [
    "age_on",
    "fiscal_year_bounds",
    "fiscal_year_of",
    "fy_age_reference",
    "fy_end_age",
]

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def fiscal_year_of(d: date) -> int:
    """Return the fiscal year (年度) that contains ``d``, named by its April year.

    ``fiscal_year_of(date(2025, 3, 31)) == 2024`` and
    ``fiscal_year_of(date(2025, 4, 1)) == 2025``.
    """
    return d.year if d.month >= 4 else d.year - 1


def fiscal_year_bounds(fiscal_year: int) -> tuple[date, date]:
    """Return ``(first_day, last_day)`` of a fiscal year: 1 April and 31 March.

    Both ends are inclusive, matching how the rule texts say
    「令和6年4月1日から令和7年3月31日まで」.
    """
    return date(fiscal_year, 4, 1), date(fiscal_year + 1, 3, 31)


def age_on(birth: date, d: date) -> int:
    """Return the legal age (満年齢) of a person born on ``birth`` on the day ``d``.

    The legal rule is that the new age is attained at the *end of the day
    before* the birthday, so the legal age on ``d`` equals the ordinary
    birthday-count age on ``d + 1 day``.  Consequences:

    * born 2000-04-01 is 25 on 2025-03-31 (not only from 2025-04-01);
    * born 2000-02-29 is 1 on 2001-02-28 and 0 on 2001-02-27; in a leap
      year the new age is attained on 28 February too (the day before 29th).

    The next day is computed with integer arithmetic, never via
    ``timedelta``, so this stays fast and works even for ``date.max``.

    Raises ``ValueError`` when ``d`` is before ``birth``: an age before birth
    is always a data error (a mistyped 受診日 or 生年月日) and must not be
    silently turned into -1 or 0.
    """
    if d < birth:
        raise ValueError(f"日付 {d.isoformat()} が生年月日 {birth.isoformat()} より前です")
    year, month, day = d.year, d.month, d.day
    # Advance to the next day (see docstring for why).
    if day < 28:
        day += 1
    else:
        last = _DAYS_IN_MONTH[month]
        if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            last = 29
        if day < last:
            day += 1
        elif month < 12:
            month += 1
            day = 1
        else:
            year += 1
            month = 1
            day = 1
    bmonth = birth.month
    age = year - birth.year
    if month < bmonth or (month == bmonth and day < birth.day):
        age -= 1
    return age


def fy_end_age(birth: date, fiscal_year: int) -> int:
    """Return the age at the end of ``fiscal_year`` (年度末年齢).

    This is the age every eligibility rule uses.  It is the legal age on
    31 March of ``fiscal_year + 1``, which equals the ordinary age on
    1 April of that year (see module docstring), i.e.
    ``age_on(birth, date(fiscal_year + 1, 3, 31))``.

    FY2024 vectors (domain.md §2.2): born 1985-04-01 → 40; 1985-04-02 → 39;
    2004-04-01 → 21; 2004-04-02 → 20.

    Unlike :func:`age_on` this does not raise for people born after the
    reference date (it returns -1 for them): it mirrors the set-based SQL
    formula described in :func:`fy_age_reference`, and callers filter by age
    bands anyway.
    """
    bmonth = birth.month
    age = fiscal_year + 1 - birth.year
    if bmonth > 4 or (bmonth == 4 and birth.day > 1):
        age -= 1
    return age


def fy_age_reference(fiscal_year: int) -> date:
    """Return the reference date for :func:`fy_end_age`: 1 April after the fiscal year.

    Why expose it: eligibility is often selected set-based in SQL over all
    residents.  With this date the same age can be computed without any
    per-row Python, as

        (yyyymmdd(ref) - yyyymmdd(birth)) // 10000

    where ``yyyymmdd(x) = year*10000 + month*100 + day``.  For example,
    FY2024 → ref 2025-04-01: (20250401 - 19850401) // 10000 = 40 and
    (20250401 - 19850402) // 10000 = 39.  (Note that SQL integer ``/``
    truncates toward zero, so it differs from ``//`` only for births after
    ``ref``, which never qualify for a screening anyway.)
    """
    return date(fiscal_year + 1, 4, 1)
