"""The name / kana normalisation policy (docs/text-normalisation.md)."""

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kenshin.core import text
from kenshin.core.text import (
    VARIANT_FOLDS,
    is_kana_name,
    kana_search_key,
    name_search_key,
    normalize_digits,
    normalize_kana,
    normalize_name,
)

IVS = "\U000e0100"

# --- normalize_name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("山田　太郎", "山田　太郎"),
        ("山田 太郎", "山田　太郎"),
        ("山田  \t　太郎", "山田　太郎"),
        ("　山田太郎 \n", "山田太郎"),
        ("山田\u00a0太郎", "山田　太郎"),
        ("山\x00田\u200b太郎\ufeff", "山田太郎"),
        ("ＳＭＩＴＨ　ＪＯＨＮ", "SMITH　JOHN"),
        ("１丁目２番地３－４", "1丁目2番地3-4"),
        ("ﾔﾏﾀﾞ", "ヤマダ"),
        ("カ\u3099", "ガ"),  # decomposed (NFD) kana is composed
        ("", ""),
        ("   ", ""),
    ],
)
def test_normalize_name_folds_width_whitespace_and_controls(raw, expected):
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    "name",
    [
        "山\ufa11　太郎",  # 﨑 compatibility ideograph (unified-in-compat-block)
        "\U00020bb7田　花子",  # 𠮷 astral kanji
        "葛" + IVS + "城　一郎",  # ideographic variation sequence
        "\uf9dc田",  # U+F9DC compatibility ideograph: NFC would change it to 隆
        "髙橋　一郎",
        "\ue000田",  # private use (外字)
    ],
)
def test_normalize_name_keeps_kanji_exactly_as_written(name):
    assert normalize_name(name) == name


def test_normalize_name_keeps_compat_ideograph_that_nfc_would_change():
    assert unicodedata.normalize("NFC", "\uf9dc") != "\uf9dc"
    assert normalize_name(" \uf9dc ") == "\uf9dc"


# --- normalize_kana / is_kana_name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ　タロウ"),
        ("やまだ", "ヤマダ"),
        ("やまだ　たろう", "ヤマダ　タロウ"),
        ("ｷｮｳｺ", "キョウコ"),
        ("キョウコ", "キョウコ"),
        ("ァィゥェォッャュョヮ", "ァィゥェォッャュョヮ"),
        ("ゔぁいおりん", "ヴァイオリン"),
        ("さゝき", "サヽキ"),
        ("みすゞ", "ミスヾ"),
        ("ﾊﾟﾊﾟ", "パパ"),
        ("カ゛ラ", "ガラ"),  # spacing voiced mark joined
        ("ハ゜", "パ"),
        ("カ\u3099", "ガ"),
        ("わ\u3099", "ヷ"),
        ("ラｰメン", "ラーメン"),
        ("ラ-メン", "ラーメン"),
        ("ラ‐メン", "ラーメン"),
        ("ラ‑メン", "ラーメン"),
        ("ラ–メン", "ラーメン"),
        ("ラ—メン", "ラーメン"),
        ("ラ―メン", "ラーメン"),
        ("ラ−メン", "ラーメン"),
        ("ラ～メン", "ラーメン"),
        ("ラ〜メン", "ラーメン"),
        ("ラ－メン", "ラーメン"),
        ("ら-めん", "ラーメン"),
        ("ラ--メン", "ラーーメン"),
        ("ヤマダ - タロウ", "ヤマダ　-　タロウ"),  # a dash after a space is not a long vowel
        ("  ﾔﾏﾀﾞ\t\tﾀﾛｳ  ", "ヤマダ　タロウ"),
        ("ヤマダ\x00タロウ", "ヤマダタロウ"),
        ("", ""),
    ],
)
def test_normalize_kana_examples(raw, expected):
    assert normalize_kana(raw) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ヤマダ　タロウ", True),
        ("ヴァイオリン", True),
        ("サヽキ", True),
        ("ラーメン", True),
        ("ヷ", True),
        ("", False),
        ("　", False),
        ("やまだ", False),
        ("ﾔﾏﾀﾞ", False),
        ("ヤマダ 太郎", False),
        ("ジョン・スミス", True),
        ("・ジョン", False),
        ("スミス・", False),
        ("ス・・ミス", False),
        ("ヤマダ1", False),
        ("ア\u3099", False),
    ],
)
def test_is_kana_name_accepts_only_katakana_choonpu_iteration_marks_and_ideographic_space(
    value, expected
):
    assert is_kana_name(value) is expected


# --- kana_search_key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("キョウコ", "キヨウコ"),
        ("ｷｮｳｺ", "キヨウコ"),
        ("ヤマダ　キョウコ", "やまだきようこ"),
        ("ハッタ", "ハツタ"),
        ("ヴァン", "ヴアン"),
        ("ヵヶヮ", "カケワ"),
    ],
)
def test_kana_search_key_folds_small_kana_and_spaces(a, b):
    assert kana_search_key(a) == kana_search_key(b)


@pytest.mark.parametrize(("a", "b"), [("ガ", "カ"), ("パ", "ハ"), ("バ", "パ"), ("ヴ", "ウ")])
def test_kana_search_key_keeps_voiced_marks_distinct(a, b):
    assert kana_search_key(a) != kana_search_key(b)


def test_kana_search_key_value_for_typical_name():
    assert kana_search_key("ヤマダ　キョウコ") == "ヤマダキヨウコ"


# --- name_search_key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("髙橋　一郎", "高橋一郎"),
        ("山﨑", "山崎"),
        ("山嵜", "山崎"),
        ("\U00020bb7田", "吉田"),
        ("渡邉", "渡辺"),
        ("渡邊", "渡辺"),
        ("齋藤", "斎藤"),
        ("齊藤", "斎藤"),
        ("濱田", "浜田"),
        ("葛" + IVS + "城", "葛城"),
        ("\uf9dc田", "隆田"),  # compatibility ideograph folds in the key only
        ("ＳＭＩＴＨ ｊｏｈｎ", "Smith John"),
    ],
)
def test_name_search_key_matches_variant_spellings(a, b):
    assert name_search_key(a) == name_search_key(b)


@pytest.mark.parametrize(("a", "b"), [("龍", "竜"), ("埼", "崎"), ("檜", "桧"), ("山田", "山口")])
def test_name_search_key_keeps_distinct_names_distinct(a, b):
    assert name_search_key(a) != name_search_key(b)


def test_variant_fold_table_is_stable_under_nfkc():
    # The table is applied after NFKC, so its keys must survive NFKC unchanged.
    for variant, common in VARIANT_FOLDS.items():
        assert unicodedata.normalize("NFKC", variant) == variant
        assert unicodedata.normalize("NFKC", common) == common
        assert common not in VARIANT_FOLDS


# --- normalize_digits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("０９０ー１２３４－５６７８", "090-1234-5678"),
        ("090‐1234−5678", "090-1234-5678"),
        (" 123 4567 ", "1234567"),
        ("１２３　４５６７", "1234567"),
        ("000123", "000123"),
    ],
)
def test_normalize_digits_folds_width_and_dashes_and_drops_spaces(raw, expected):
    assert normalize_digits(raw) == expected


# --- internals that the policy depends on --------------------------------------------------------


def test_whitespace_set_matches_str_isspace_over_all_code_points():
    every = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert every == text._WHITESPACE
    assert re.fullmatch(r"\s+", every)


# --- properties ----------------------------------------------------------------------------------

CJK_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
    (0xE0100, 0xE01EF),  # variation selectors travel with their ideograph
    (0xE000, 0xF8FF),  # private use (外字)
)


def _is_kept_as_written(c: str) -> bool:
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


NAMEISH = (
    "山田太郎髙橋崎\ufa11\uf9dc\U00020bb7\U000e0100\U000e0101\ue000"
    "ぁあかがはぱゔゝゞわゟアァカガハパヴヽヾヷヵヶ・ーｰｱｶﾞﾊﾟﾞﾟｧ"
    "\u3099\u309a\u309b\u309c-‐‑–—―−～〜－~"
    " \u3000\t\n\u00a0\u2003\x00\x1f\x7f\u200b\ufeff\u202e"
    "ＡＺａｚ０９Aa1（）￥¨ß"
)
KANA_LETTERS = (
    [chr(c) for c in range(0x3041, 0x3097)]
    + [chr(c) for c in range(0x30A1, 0x30FB)]
    + ["ゝ", "ゞ", "ヽ", "ヾ", "ー"]
    + [chr(c) for c in range(0xFF66, 0xFF9E)]
)
KATAKANA_LETTERS = [chr(c) for c in range(0x30A1, 0x30FB)] + ["ー"]

any_text = st.one_of(st.text(), st.text(alphabet=NAMEISH))
kana_text = st.text(alphabet=st.sampled_from([*KANA_LETTERS, " ", "\u3000", "\t"]))


def _reference_normalize_name(s: str) -> str:
    """Straightforward whole-string statement of the normalize_name policy."""
    kept = []
    for c in s:
        cp = ord(c)
        if unicodedata.category(c) == "Cc" and not c.isspace():
            continue
        if c in text._INVISIBLE:
            continue
        if 0xFF01 <= cp <= 0xFF5E or 0xFFE0 <= cp <= 0xFFE6 or 0xFF61 <= cp <= 0xFF9F:
            c = chr(int(unicodedata.decomposition(c).split()[1], 16))
        kept.append(c)
    t = re.sub(
        "[\u3041-\u30ff][\u3099\u309a]", lambda m: unicodedata.normalize("NFC", m[0]), "".join(kept)
    )
    return "\u3000".join(t.split())


@settings(max_examples=300)
@given(any_text)
def test_normalize_name_properties(s):
    out = normalize_name(s)
    assert out == _reference_normalize_name(s)
    assert normalize_name(out) == out
    assert [c for c in out if _is_kept_as_written(c)] == [c for c in s if _is_kept_as_written(c)]
    assert out == out.strip()
    assert not re.search(r"[^\S\u3000]|\u3000\u3000", out)


@settings(max_examples=300)
@given(any_text)
def test_normalize_kana_properties(s):
    out = normalize_kana(s)
    assert out == text._normalize_kana_slow(s)  # the cached per-part path is exact
    assert normalize_kana(out) == out
    assert not re.search("[\uff61-\uff9f\u3041-\u3096\u309d\u309e]", out)
    assert not re.search(r"[^\S\u3000]|\u3000\u3000", out)


@given(kana_text)
def test_normalize_kana_of_kana_letters_is_a_valid_kana_name(s):
    out = normalize_kana(s)
    assert is_kana_name(out) == bool(s.split())


@settings(max_examples=300)
@given(st.one_of(any_text, kana_text))
def test_kana_search_key_is_idempotent_and_has_no_spaces(s):
    key = kana_search_key(s)
    assert kana_search_key(key) == key
    assert kana_search_key(normalize_kana(s)) == key
    assert not re.search(r"\s", key)
    assert not re.search("[ァィゥェォッャュョヮヵヶ]", key)


@given(
    st.text(alphabet=st.sampled_from(KATAKANA_LETTERS)),
    st.text(alphabet=st.sampled_from(KATAKANA_LETTERS)),
)
def test_kana_search_key_of_a_prefix_is_a_prefix_of_the_key(a, b):
    assert kana_search_key(a + b).startswith(kana_search_key(a))


@settings(max_examples=300)
@given(any_text)
def test_name_search_key_is_idempotent_and_has_no_spaces(s):
    key = name_search_key(s)
    assert name_search_key(key) == key
    assert not re.search(r"\s", key)
