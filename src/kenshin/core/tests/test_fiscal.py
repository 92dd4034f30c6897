"""Fiscal years and legal age (domain.md §2.2)."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.core.fiscal import (
    age_on,
    fiscal_year_bounds,
    fiscal_year_of,
    fy_age_reference,
    fy_end_age,
)


@pytest.mark.parametrize(
    ("d", "fy"),
    [
        (date(2025, 3, 31), 2024),
        (date(2025, 4, 1), 2025),
        (date(2025, 1, 1), 2024),
        (date(2024, 12, 31), 2024),
        (date(2025, 12, 31), 2025),
    ],
)
def test_fiscal_year_changes_between_march_31_and_april_1(d, fy):
    assert fiscal_year_of(d) == fy


def test_fiscal_year_bounds_are_april_1_to_march_31_inclusive():
    assert fiscal_year_bounds(2024) == (date(2024, 4, 1), date(2025, 3, 31))


def test_fiscal_year_bounds_include_february_29_of_a_leap_following_year():
    first, last = fiscal_year_bounds(2023)
    assert first <= date(2024, 2, 29) <= last


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        (date(1985, 4, 1), 40),
        (date(1985, 4, 2), 39),
        (date(2004, 4, 1), 21),
        (date(2004, 4, 2), 20),
    ],
)
def test_fy_end_age_matches_domain_vectors_for_fy2024(birth, expected):
    assert fy_end_age(birth, 2024) == expected


def test_fy_end_age_born_april_first_joins_earlier_cohort():
    # Born 1 April: same 年度末年齢 as someone born the previous 2 April.
    assert fy_end_age(date(1985, 4, 1), 2024) == fy_end_age(date(1984, 4, 2), 2024)
    assert fy_end_age(date(1985, 4, 1), 2024) != fy_end_age(date(1985, 4, 2), 2024)


@pytest.mark.parametrize(
    ("fy", "expected"),
    [(2000, 1), (2003, 4), (2004, 5), (2024, 25)],
)
def test_fy_end_age_leap_day_birth_counts_like_any_february_birth(fy, expected):
    assert fy_end_age(date(2000, 2, 29), fy) == expected


def test_fy_end_age_is_negative_for_births_after_the_reference_date():
    assert fy_end_age(date(2025, 4, 2), 2024) == -1
    assert fy_end_age(date(2025, 4, 1), 2024) == 0


@pytest.mark.parametrize(
    ("birth", "d", "expected"),
    [
        # The new age is attained at the end of the day before the birthday.
        (date(2000, 4, 1), date(2025, 3, 30), 24),
        (date(2000, 4, 1), date(2025, 3, 31), 25),
        (date(2000, 4, 2), date(2025, 3, 31), 24),
        (date(2000, 4, 2), date(2025, 4, 1), 25),
        # Leap-day birth: attains the age at the end of 28 February in common years.
        (date(2000, 2, 29), date(2001, 2, 27), 0),
        (date(2000, 2, 29), date(2001, 2, 28), 1),
        (date(2000, 2, 29), date(2001, 3, 1), 1),
        # ... and also at the end of 28 February in leap years (the day before the 29th).
        (date(2000, 2, 29), date(2004, 2, 27), 3),
        (date(2000, 2, 29), date(2004, 2, 28), 4),
        (date(2000, 2, 29), date(2004, 2, 29), 4),
        # Born 1 March: in a common year the day before is 28 February.
        (date(2000, 3, 1), date(2001, 2, 27), 0),
        (date(2000, 3, 1), date(2001, 2, 28), 1),
        # ... in a leap year it is 29 February.
        (date(2000, 3, 1), date(2004, 2, 28), 3),
        (date(2000, 3, 1), date(2004, 2, 29), 4),
        # Born 1 January: attains the age at the end of 31 December.
        (date(2000, 1, 1), date(2000, 12, 30), 0),
        (date(2000, 1, 1), date(2000, 12, 31), 1),
        # Day of birth itself is age 0.
        (date(2000, 1, 1), date(2000, 1, 1), 0),
    ],
)
def test_age_on_attains_new_age_at_end_of_day_before_birthday(birth, d, expected):
    assert age_on(birth, d) == expected


def test_age_on_handles_the_last_representable_date():
    assert age_on(date(9000, 1, 1), date.max) == 1000


def test_age_on_rejects_a_date_before_birth_with_japanese_message():
    with pytest.raises(ValueError, match="日付 2000-01-01 が生年月日 2000-01-02 より前です"):
        age_on(date(2000, 1, 2), date(2000, 1, 1))


def test_fy_age_reference_is_april_first_after_the_fiscal_year():
    assert fy_age_reference(2024) == date(2025, 4, 1)


def _yyyymmdd(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


_births = st.dates(min_value=date(1880, 1, 1), max_value=date(2100, 12, 31))
_fiscal_years = st.integers(min_value=1880, max_value=2100)


@given(birth=_births, fy=_fiscal_years)
def test_fy_end_age_equals_legal_age_on_march_31_and_sql_formula(birth, fy):
    expected = fy_end_age(birth, fy)
    march_31 = date(fy + 1, 3, 31)
    if birth <= march_31:
        assert age_on(birth, march_31) == expected
    ref = fy_age_reference(fy)
    assert (_yyyymmdd(ref) - _yyyymmdd(birth)) // 10000 == expected


@given(birth=_births, d=st.dates(min_value=date(1880, 1, 1), max_value=date(2200, 12, 30)))
def test_age_on_equals_naive_age_on_next_day(birth, d):
    if d < birth:
        return
    nxt = d + timedelta(days=1)
    naive = nxt.year - birth.year - ((nxt.month, nxt.day) < (birth.month, birth.day))
    assert age_on(birth, d) == naive
