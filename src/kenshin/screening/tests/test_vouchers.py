"""受診券番号: the check digit refuses every single-digit slip, and numbers run on per year."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.core import audit, clock
from kenshin.screening import vouchers
from kenshin.screening.models import Voucher

SYSTEM = audit.Actor(None, "system")


@pytest.mark.parametrize(("body", "digit"), [("7992739871", "3"), ("260000001", "8")])
def test_luhn_digit_of_known_numbers(body, digit):
    assert vouchers.luhn_digit(body) == digit


def test_every_single_digit_slip_is_refused():
    number = vouchers.voucher_no(2026, 1234)
    assert vouchers.is_well_formed(number)
    for i in range(len(number)):
        for d in "0123456789":
            if d != number[i]:
                assert not vouchers.is_well_formed(number[:i] + d + number[i + 1 :])


@pytest.mark.django_db
def test_issued_numbers_run_on_and_are_found_with_full_width_digits():
    with clock.frozen(date(2026, 4, 1)):
        first = vouchers.issue_vouchers(SYSTEM, 2026, ["1000000001", "1000000002"])
        second = vouchers.issue_vouchers(SYSTEM, 2026, ["1000000003"], programme="gastric")
    assert first["1000000001"][:9] == "260000001" and second["1000000003"][:9] == "260000003"
    wide = first["1000000002"].translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert vouchers.find_voucher(wide).atena_no == "1000000002"
    assert vouchers.find_voucher("2600000010") is None  # wrong check digit: not even looked up
    assert Voucher.objects.get(atena_no="1000000003").programme == "gastric"


def test_a_superscript_digit_is_not_a_digit_of_a_voucher_number():
    number = vouchers.voucher_no(2026, 7)
    assert not vouchers.is_well_formed(number[:-1] + "²")
