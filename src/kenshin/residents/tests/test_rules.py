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
    alphabet=st.sampled_from(
        [
            *"山田髙﨑𠮷𠀋太郎花子ヤマダタロウァッｶﾞﾔﾏﾀﾞやまだ　 -ー0１A\t\\・･㍿",
            "\ue000",
            "\U000f0001",
        ]
    ),
    max_size=12,
)
code_cell = st.sampled_from(
    [
        "00",
        "０１",
        "10",
        "11",
        "20",
        "21",
        "30",
        "31",
        "32",
        "40",
        "99",
        " 1",
        "１",
        "2",
        "3",
        "4",
        "",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    name=text_cell,
    kana=text_cell,
    annex=text_cell,
    rel=text_cell,
    head=st.one_of(text_cell, st.just("山" * 101)),
    code=code_cell,
    sex=code_cell,
    status=code_cell,
)
def test_fast_and_full_paths_agree_on_arbitrary_text(
    name, kana, annex, rel, head, code, sex, status
):
    row = cells(
        氏名=name,
        氏名カナ=kana,
        方書=annex,
        続柄=rel,
        世帯主氏名=head,
        異動区分=code,
        性別=sex,
        住民状態=status,
    )
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
    ("kind", "before", "after", "expected"),
    [
        ("move_in", None, "resident", None),
        ("birth", None, "resident", None),
        (
            "address_change",
            None,
            "resident",
            "5行目 宛名番号: 「1000000001」は住民記録にありません（転入・出生以外の異動は、登録済みの方の分だけ取り込めます）",
        ),
        (
            "move_in",
            "resident",
            "resident",
            "5行目 宛名番号: 「1000000001」は既に住民として登録されています（転入は取り込めません）",
        ),
        ("move_in", "moved_out", "resident", None),
        ("move_in", "non_resident", "resident", None),
        (
            "move_in",
            "deceased",
            "resident",
            "5行目 宛名番号: 「1000000001」は「死亡」の方には転入の異動を取り込めません",
        ),
        (
            "birth",
            "resident",
            "resident",
            "5行目 宛名番号: 「1000000001」は既に登録されている宛名番号です（出生は新しい宛名番号で届きます）",
        ),
        ("death", "resident", "deceased", None),
        (
            "death",
            "moved_out",
            "deceased",
            "5行目 宛名番号: 「1000000001」は「転出」の方には死亡の異動を取り込めません",
        ),
        (
            "move_out",
            "moved_out",
            "moved_out",
            "5行目 宛名番号: 「1000000001」は「転出」の方には転出の異動を取り込めません",
        ),
        (
            "address_change",
            "deceased",
            "resident",
            "5行目 宛名番号: 「1000000001」は「死亡」の方には住所変更の異動を取り込めません",
        ),
        (
            "address_change",
            "resident",
            "moved_out",
            "5行目 住民状態: 住所変更では住民状態は変わりません（異動前は「住民」です）",
        ),
        ("name_change", "non_resident", "non_resident", None),
        ("official_correction", "deceased", "resident", None),
    ],
)
def test_transition_rules(kind, before, after, expected):
    err = rules.check_transition(kind, before, after, 5, "1000000001")
    assert (str(err) if err else None) == expected


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
