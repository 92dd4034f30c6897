"""Pure rules of the linkage server: 事務 codes, the 統合宛名番号 format, the 名寄せ key, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.linkage import rules
from kenshin.linkage.contract import InvalidInput

serials = st.integers(min_value=1, max_value=rules.MAX_SERIAL)


def test_jimu_codes_are_ascii_and_include_this_systems_own():
    assert rules.JIMU["kenko_zoshin"] == "健康増進法による健康増進事業の実施に関する事務"
    assert rules.JIMU["juki"] == "住民基本台帳に関する事務"
    assert {"kokuho", "kaigo", "zeimu"} <= rules.JIMU.keys()
    assert all(code.isascii() and code.isidentifier() for code in rules.JIMU)


@pytest.mark.parametrize(
    ("digits", "check"),
    [("7992739871", 3), ("0", 0), ("1", 8), ("00000000000001", 8), ("4992739871", 6)],
)
def test_luhn_check_digit_known_values(digits, check):
    assert rules.luhn_check_digit(digits) == check


def test_unified_number_is_fourteen_digit_serial_and_check_digit():
    assert rules.unified_atena_no(1) == "000000000000018"
    assert rules.unified_atena_no(rules.MAX_SERIAL)[:14] == "9" * 14


@pytest.mark.parametrize("serial", [0, -1, rules.MAX_SERIAL + 1])
def test_unified_number_refuses_serials_out_of_range(serial):
    with pytest.raises(ValueError):
        rules.unified_atena_no(serial)


@given(serials)
def test_every_issued_number_is_valid_and_gives_back_its_serial(serial):
    number = rules.unified_atena_no(serial)
    assert len(number) == 15
    assert rules.is_valid_unified(number)
    assert rules.serial_of(number) == serial


@given(serials, st.integers(min_value=0, max_value=14), st.integers(min_value=1, max_value=9))
def test_every_single_digit_error_is_detected(serial, position, delta):
    number = rules.unified_atena_no(serial)
    wrong = str((int(number[position]) + delta) % 10)
    typo = number[:position] + wrong + number[position + 1 :]
    assert not rules.is_valid_unified(typo)


@given(serials, st.integers(min_value=0, max_value=13))
def test_adjacent_transpositions_are_detected_except_09_and_90(serial, position):
    number = rules.unified_atena_no(serial)
    a, b = number[position], number[position + 1]
    swapped = number[:position] + b + a + number[position + 2 :]
    if a == b or {a, b} == {"0", "9"} or int(swapped[:14]) == 0:
        return
    assert not rules.is_valid_unified(swapped)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00000000000001",  # 14 digits: the check digit is missing
        "0000000000000180",  # 16 digits
        "000000000000000",  # serial 0 is never issued
        "000000000000019",  # wrong check digit
        "００００００００００００018",  # full-width digits
        "00000000000001a",
    ],
)
def test_malformed_unified_numbers_are_refused(value):
    assert not rules.is_valid_unified(value)
    with pytest.raises(InvalidInput):
        rules.serial_of(value)


def test_serial_of_accepts_surrounding_spaces():
    assert rules.serial_of(" 000000000000018 ") == 1


# --- five-item key ---------------------------------------------------------------------------------

BASE = ("山田　太郎", "ヤマダ　タロウ", date(1960, 4, 1), 1, "広島県呉市中央1丁目2番3号")


def key(*items):
    return rules.five_item_key(*items)


@pytest.mark.parametrize(
    "spelling",
    [
        ("山田 太郎", "ﾔﾏﾀﾞ ﾀﾛｳ", date(1960, 4, 1), 1, "広島県呉市中央１丁目２番３号"),
        ("山田太郎", "やまだ　たろう", date(1960, 4, 1), 1, "広島県呉市中央1丁目2番3号 "),
        (
            " 山田\u3000\u3000太郎 ",
            "ヤマダタロウ",
            date(1960, 4, 1),
            1,
            "広島県 呉市中央1丁目2番3号",
        ),
        ("山田　太郎", "ヤマダ　タロウ", date(1960, 4, 1), 1, "広島県呉市中央1丁目2番3号"),
    ],
)
def test_five_item_key_ignores_width_spaces_and_kana_script(spelling):
    assert key(*spelling) == key(*BASE)


def test_five_item_key_folds_written_variants_and_small_kana():
    assert key("髙田　京子", "タカダ　キョウコ", date(1950, 1, 1), 2, "呉市") == key(
        "高田　京子", "タカダ　キヨウコ", date(1950, 1, 1), 2, "呉市"
    )


@pytest.mark.parametrize(
    "index, other",
    [
        (0, "山田　次郎"),
        (1, "ヤマダ　ジロウ"),
        (2, date(1960, 4, 2)),
        (3, 2),
        (4, "広島県呉市中央1丁目2番4号"),
        (1, "ヤマタ　タロウ"),  # voiced marks count: ダ ≠ タ
    ],
)
def test_five_item_key_changes_when_any_one_item_changes(index, other):
    items = list(BASE)
    items[index] = other
    assert key(*items) != key(*BASE)


@pytest.mark.parametrize(
    "index, empty, label",
    [
        (0, "", "漢字氏名"),
        (0, "\u3000 ", "漢字氏名"),
        (1, "", "カナ氏名"),
        (2, None, "生年月日"),
        (3, 0, "性別"),
        (3, 3, "性別"),
        (4, "", "住所"),
    ],
)
def test_five_item_key_refuses_fewer_than_five_items(index, empty, label):
    items = list(BASE)
    items[index] = empty
    with pytest.raises(InvalidInput) as error:
        key(*items)
    assert label in str(error.value)


def test_five_item_key_is_a_sha256_hex():
    value = key(*BASE)
    assert len(value) == 64
    assert int(value, 16) >= 0


# --- masking ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("123456789018", "**** **** 9018"),
        ("1234 5678 9018", "**** **** 9018"),
        ("1234-5678-9018", "**** **** 9018"),
    ],
)
def test_mask_shows_only_the_last_four_digits(number, masked):
    assert rules.mask(number) == masked


def test_mask_refuses_what_is_not_twelve_digits():
    with pytest.raises(ValueError) as error:
        rules.mask("12345")
    assert "12345" not in str(error.value)
