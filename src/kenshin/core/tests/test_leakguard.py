"""The leak guard's scanner (MN-03) and the 個人番号 check digit it relies on (core.mynumber)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.core import mynumber
from kenshin.core.leakguard import MYNUMBER, NAME, NameMatcher, mask, name_key, scan

VALID = "983205673214"  # hand-checked below
NAMES = ["山田　太郎", "ヤマダ　タロウ", "森本 茂"]


def clear_of(findings: list, *values: str) -> bool:
    """No finding shows any of the values (nor their key form) in clear."""
    text = "\n".join(str(f) + repr(f) for f in findings)
    return not any(v in text or name_key(v) in text for v in values)


# --- core.mynumber -------------------------------------------------------------------------------


def test_check_digit_follows_the_ministerial_formula_by_hand():
    # 9 8 3 2 0 5 6 7 3 2 1, weights from the right 2..7 then 2..6:
    # 1·2 + 2·3 + 3·4 + 7·5 + 6·6 + 5·7 + 0·2 + 2·3 + 3·4 + 8·5 + 9·6 = 238; 238 mod 11 = 7 → 4
    assert mynumber.check_digit("98320567321") == 4
    assert mynumber.is_valid(VALID)


@pytest.mark.parametrize(
    ("first_eleven", "check"),
    [
        ("00000000000", 0),  # remainder 0 → 0
        ("12345678901", 8),  # sum 212, remainder 3 → 8
        ("11111111111", 8),  # sum of the weights 47, remainder 3 → 8
        ("00000000010", 8),  # 1·3 = 3, remainder 3 → 8
        ("00000000001", 9),  # 1·2 = 2, remainder 2 → 9
        ("00000000006", 0),  # 6·2 = 12, remainder 1 → 0
    ],
)
def test_check_digit_table(first_eleven, check):
    total = sum(
        int(d) * (n + 1 if n <= 6 else n - 5) for n, d in enumerate(reversed(first_eleven), start=1)
    )
    expected = 0 if total % 11 <= 1 else 11 - total % 11
    assert mynumber.check_digit(first_eleven) == expected == check


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_exactly_one_twelfth_digit_is_valid(first_eleven):
    valid = [d for d in "0123456789" if mynumber.is_valid(first_eleven + d)]
    assert valid == [str(mynumber.check_digit(first_eleven))]


@pytest.mark.parametrize(
    "value",
    ["98320567321", "9832056732140", "９８３２０５６７３２１４", "98320567321a", ""],
)
def test_is_valid_wants_exactly_twelve_ascii_digits(value):
    assert not mynumber.is_valid(value)


def test_check_digit_refuses_anything_but_eleven_digits():
    with pytest.raises(ValueError):
        mynumber.check_digit("1234567890")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"番号 {VALID} です", [VALID]),
        ("番号 ９８３２０５６７３２１４", ["９８３２０５６７３２１４"]),
        ("9832-0567-3214", ["9832-0567-3214"]),
        ("9832 0567 3214", ["9832 0567 3214"]),
        ("983205673215", []),  # wrong check digit
        (f"1{VALID}", []),  # part of a longer number
        (f"{VALID}0", []),
    ],
)
def test_find_all(text, found):
    assert mynumber.find_all(text) == found


def test_mask_in_text_keeps_other_numbers():
    assert mynumber.mask_in_text(f"{VALID} / 983205673215") == "************ / 983205673215"


# --- scan: 個人番号 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "planted",
    [
        VALID,
        "９８３２０５６７３２１４",  # full-width
        "9832-0567-3214",  # grouped 4-4-4
        "９８３２－０５６７－３２１４",  # full-width with full-width hyphens
        "9832 0567 3214",
    ],
)
def test_scan_reports_a_valid_mynumber_in_any_writing(planted):
    found = scan(f"GET /residents/?no={planted} HTTP/1.1", where="log django.server @ t")
    assert [f.kind for f in found] == [MYNUMBER]
    assert found[0].where == "log django.server @ t"
    assert "［個人番号］" in found[0].excerpt
    assert clear_of(found, VALID, planted)


def test_scan_ignores_a_twelve_digit_number_with_a_wrong_check_digit():
    assert scan("受付番号 983205673215") == []


def test_scan_finds_a_mynumber_percent_encoded_in_a_url():
    found = scan("/x?no=9832%2D0567%2D3214")
    assert [f.kind for f in found] == [MYNUMBER]


# --- scan: names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "山田　太郎",
        "山田 太郎",
        "山田太郎",
        "ヤマダ　タロウ",
        "ﾔﾏﾀﾞ ﾀﾛｳ",  # half-width kana
        "森本茂",
        "森本　茂",
    ],
)
def test_scan_reports_a_full_name_however_it_is_spaced_or_wide(written):
    found = scan(f"検索しました: {written}。", NAMES, where="log kenshin @ t")
    assert [f.kind for f in found] == [NAME]
    assert found[0].excerpt == "検索しました: ［氏名］。"
    assert clear_of(found, *NAMES)


@pytest.mark.parametrize(
    "encoded",
    [
        quote("山田　太郎"),  # a URL
        "%E5%B1%B1%E7%94%B0+%E5%A4%AA%E9%83%8E",  # a form-encoded query
        json.dumps({"detail": "山田 太郎"}),  # an API error body (ASCII-only JSON)
        "&#23665;&#30000;&#22826;&#37070;",  # HTML character references
        "/login/?next=" + quote("/r/?q=" + quote("山田　太郎")),  # quoted twice (?next=)
        quote("山田　太郎".encode().decode("latin-1")),  # WSGI mojibake, then quoted
    ],
)
def test_scan_sees_through_url_json_and_html_encodings(encoded):
    assert [f.kind for f in scan(encoded, NAMES)] == [NAME]


def test_scan_ignores_a_surname_alone_and_names_shorter_than_three_characters():
    assert scan("山田様、ヤマダ様、李様", [*NAMES, "李　明"]) == []
    assert len(NameMatcher(["李　明", "李 明", "ab", "0-04", "・・・", "李・1"])) == 0
    assert len(NameMatcher(["SMITH JOHN", "スミス・ジョン"])) == 2


def test_scan_masks_the_longest_name_and_every_hit_in_the_excerpt():
    found = scan(f"山田太郎次郎 {VALID} 山田太郎", ["山田太郎", "山田太郎次郎"])
    assert [f.kind for f in found] == [NAME, MYNUMBER, NAME]
    assert found[0].excerpt == "［氏名］ ［個人番号］ ［氏名］"


def test_the_place_of_a_finding_is_masked_too():
    found = scan("山田太郎", NAMES, where="log @ test_search[山田太郎]")
    assert found[0].where == "log @ test_search[［氏名］]"


def test_excerpt_hides_the_long_numbers_around_a_hit():
    found = scan("氏名=山田 太郎 1985-04-01 0823-25-3100", NAMES)
    assert found[0].excerpt == "氏名=［氏名］ ####-04-01 ####-25-####"


def test_excerpt_is_short():
    found = scan("あ" * 500 + "山田太郎" + "い" * 500, NAMES)
    assert len(found[0].excerpt) < 60


def test_matcher_never_shows_its_names():
    matcher = NameMatcher(NAMES)
    assert "山田" not in repr(matcher)
    assert len(matcher) == 3


def test_many_names_are_matched_at_once():
    names = [f"佐藤{chr(0x4E00 + i)}{chr(0x4E00 + i // 7)}" for i in range(20_000)]
    matcher = NameMatcher(names)
    text = ("ログ行 " * 2000) + names[12_345] + " 終わり"
    found = scan(text, matcher)
    assert [f.kind for f in found] == [NAME]
    assert scan("佐藤様", matcher) == []


def test_mask_replaces_values_and_leaves_clean_text_alone():
    assert mask(f"山田 太郎 {VALID}", NAMES) == "［氏名］ ［個人番号］"
    assert mask("異常なし", NAMES) == "異常なし"
