"""The 個人番号 check digit against the ordinance's own wording, not against our code.

Why a second formula: the property tests in linkage/tests/test_mynumber.py use
core.mynumber.check_digit as their oracle, so a mistake in it would pass them. Here the oracle
is 総務省令第85号 第5条 as reference/domain.md §6.1 states it — P_n counted from the rightmost
digit, Q_n = n + 1 (n ≤ 6) or n − 5 (n ≥ 7), check digit 0 when the remainder is ≤ 1, else
11 − remainder — written independently, plus the published example.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.core import mynumber


def ordinance_check_digit(first_eleven: str) -> int:
    """第5条, literally: digits numbered from the right, weights Q_n."""
    total = 0
    for n in range(1, 12):
        p_n = int(first_eleven[-n])
        q_n = n + 1 if n <= 6 else n - 5
        total += p_n * q_n
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


@pytest.mark.parametrize(
    ("first_eleven", "expected"),
    [
        ("98320567321", 4),  # the worked example in domain.md §6.1 (983205673214)
        ("12345678901", 8),
        ("00000000000", 0),
    ],
)
def test_check_digit_matches_the_published_vectors(first_eleven, expected):
    assert mynumber.check_digit(first_eleven) == expected
    assert ordinance_check_digit(first_eleven) == expected


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_check_digit_agrees_with_the_ordinance_wording(first_eleven):
    assert mynumber.check_digit(first_eleven) == ordinance_check_digit(first_eleven)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11), st.integers(0, 9))
def test_is_valid_accepts_exactly_the_ordinance_check_digit(first_eleven, last):
    number = first_eleven + str(last)
    assert mynumber.is_valid(number) == (last == ordinance_check_digit(first_eleven))
