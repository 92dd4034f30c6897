"""Pure row rules: the fast path and the full path must agree on every row."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kenshin.residents import rules
from kenshin.residents.rules import RESIDENT_HEADER, FeedError
from kenshin.residents.tests.conftest import person

TODAY = "2026-11-26"


def cells(**changes: str) -> list[str]:
    row = person(**changes)
    return [row[c] for c in RESIDENT_HEADER]


def both(row: list[str]) -> tuple:
    fast_errors: list[FeedError] = []
    full_errors: list[FeedError] = []
    fast = rules.parse_resident_row(row, 2, TODAY, fast_errors)
    full = rules.parse_resident_row_full(row, 2, TODAY, full_errors)
    return fast, full, fast_errors, full_errors


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"方書": "グランドメゾン呉 305号室"},
        {"氏名カナ": "ﾔﾏﾀﾞ ﾀﾛｳ"},
        {"氏名": "髙橋　𠮷男", "氏名カナ": "タカハシ　ヨシオ"},
        {"郵便番号": "7370051", "電話番号": ""},
        {
            "異動区分": "11",
            "異動日": "2024-06-01",
            "届出日": "2024-06-03",
            "生年月日": "2024-06-01",
        },
        {
            "異動区分": "11",
            "異動日": "2024-06-02",
            "届出日": "2024-06-03",
            "生年月日": "2024-06-01",
        },
        {"異動区分": "20", "異動日": "2024-06-02", "届出日": "2024-06-03", "住民状態": "1"},
        {"生年月日": "1985-02-30"},
        {"異動日": "2026-11-27"},
        {"生年月日": "1879-12-31", "異動日": "1879-12-31", "届出日": "1879-12-31"},
        {"氏名": "山田" * 51},
        {"住所": "　"},
        {"宛名番号": "１２３"},
    ],
)
def test_fast_and_full_paths_agree(changes):
    fast, full, fast_errors, full_errors = both(cells(**changes))
    assert fast == full
    assert fast_errors == full_errors


text_cell = st.text(
    alphabet=st.sampled_from(list("山田髙﨑𠮷太郎花子ヤマダタロウァッｶﾞﾔﾏﾀﾞやまだ　 -ー0１A\t")),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(name=text_cell, kana=text_cell, annex=text_cell, rel=text_cell)
def test_fast_and_full_paths_agree_on_arbitrary_text(name, kana, annex, rel):
    row = cells(氏名=name, 氏名カナ=kana, 方書=annex, 続柄=rel, 世帯主氏名=name)
    fast, full, fast_errors, full_errors = both(row)
    assert fast == full
    assert fast_errors == full_errors


def test_normalised_row_has_search_keys():
    rec = rules.parse_resident_row(
        cells(氏名="髙橋　花子", 氏名カナ="タカハシ　ハナコ"), 2, TODAY, []
    )
    assert rec[6] == "タカハシハナコ"
    assert rec[7] == "高橋花子"
    assert rec[4] == "髙橋　花子"  # stored as written


def test_header_error_for_wrong_column_count():
    err = rules.header_error(["異動区分", "異動日"], RESIDENT_HEADER, "住民記録ファイル")
    assert (
        str(err) == "1行目: 見出し行が住民記録ファイルの仕様と違います（16列必要ですが2列あります）"
    )


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("move_in", None, None),
        ("birth", None, None),
        ("address_change", None, "は住民記録にありません"),
        ("move_in", "resident", "は既に住民として登録されています"),
        ("move_in", "moved_out", None),
        ("move_in", "deceased", "は死亡として登録されています"),
        ("birth", "resident", "は既に登録されている宛名番号です"),
        ("death", "resident", None),
    ],
)
def test_transition_rules(kind, status, expected):
    err = rules.check_transition(kind, status, 5, "1000000001")
    if expected is None:
        assert err is None
    else:
        assert expected in str(err)
        assert str(err).startswith("5行目 宛名番号: 「1000000001」")


def test_category_row_codes():
    errors: list[FeedError] = []
    assert rules.parse_category_row(["2025", "1000000001", "2", "3"], 2, errors) == (
        2025,
        "1000000001",
        "late_elderly",
        "public_assistance",
    )
    assert rules.parse_category_row(["25", "x", "4", "0"], 3, errors) is None
    assert [str(e) for e in errors] == [
        "3行目 年度: 「25」は西暦4桁の年度ではありません",
        "3行目 宛名番号: 「x」は半角数字1〜15桁ではありません",
        "3行目 保険区分: 「4」は定義されていないコードです（1 市国保、2 後期高齢、3 それ以外）",
        "3行目 課税区分: 「0」は定義されていないコードです（1 課税、2 非課税、3 生活保護）",
    ]
