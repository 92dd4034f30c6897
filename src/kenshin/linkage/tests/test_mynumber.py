"""個人番号 normalisation and check digit (issue 4 acceptance: property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.core.mynumber import check_digit
from kenshin.linkage import mynumber

eleven = st.text(alphabet="0123456789", min_size=11, max_size=11)
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def with_check(d11: str) -> str:
    return d11 + str(check_digit(d11))


@given(eleven)
def test_every_number_with_its_check_digit_is_accepted(d11):
    assert mynumber.is_valid(with_check(d11))


@given(eleven, st.integers(min_value=1, max_value=9))
def test_every_wrong_check_digit_is_rejected(d11, delta):
    wrong = (check_digit(d11) + delta) % 10
    assert not mynumber.is_valid(d11 + str(wrong))


@given(eleven, st.sampled_from(["-", " ", "－", "　", "‐"]), st.booleans())
def test_full_width_and_grouped_input_normalise_to_the_same_digits(d11, sep, full):
    number = with_check(d11)
    spelled = sep.join([number[:4], number[4:8], number[8:]])
    if full:
        spelled = spelled.translate(FULLWIDTH)
    assert mynumber.normalize(" " + spelled + " ") == number
    assert mynumber.is_valid(spelled)


@pytest.mark.parametrize(
    "value", ["", "12345678901", "1234567890123", "98320567321a", "９８３２０５６７３２", None]
)
def test_not_twelve_digits_is_refused_without_echoing_the_value(value):
    with pytest.raises(mynumber.InvalidMyNumber) as err:
        mynumber.normalize(value)
    assert "12桁" in str(err.value)
    assert not mynumber.is_valid(value)


def test_the_domain_reference_vector():
    assert mynumber.normalize("9832 0567 3214") == "983205673214"
    assert mynumber.is_valid("983205673214")
    assert not mynumber.is_valid("983205673215")
