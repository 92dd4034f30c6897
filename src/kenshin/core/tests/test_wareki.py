"""和暦 formatting and parsing, and the feed-file date parser."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.core.wareki import parse_date, parse_wareki, to_wareki, to_wareki_short

ERA_BOUNDARIES = [
    (date(1868, 1, 25), "明治元年1月25日", "M1.1.25"),
    (date(1912, 7, 29), "明治45年7月29日", "M45.7.29"),
    (date(1912, 7, 30), "大正元年7月30日", "T1.7.30"),
    (date(1926, 12, 24), "大正15年12月24日", "T15.12.24"),
    (date(1926, 12, 25), "昭和元年12月25日", "S1.12.25"),
    (date(1989, 1, 7), "昭和64年1月7日", "S64.1.7"),
    (date(1989, 1, 8), "平成元年1月8日", "H1.1.8"),
    (date(2019, 4, 30), "平成31年4月30日", "H31.4.30"),
    (date(2019, 5, 1), "令和元年5月1日", "R1.5.1"),
    (date(2025, 4, 1), "令和7年4月1日", "R7.4.1"),
]


@pytest.mark.parametrize(("d", "long", "short"), ERA_BOUNDARIES)
def test_to_wareki_switches_era_on_the_exact_day(d, long, short):
    assert to_wareki(d) == long
    assert to_wareki_short(d) == short


@pytest.mark.parametrize(("d", "long", "short"), ERA_BOUNDARIES)
def test_parse_wareki_round_trips_era_boundaries_long_and_short(d, long, short):
    assert parse_wareki(long) == d
    assert parse_wareki(short) == d


def test_to_wareki_rejects_dates_before_meiji():
    with pytest.raises(ValueError, match="1868-01-24 は明治より前の日付のため和暦に変換できません"):
        to_wareki(date(1868, 1, 24))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("令和元年5月1日", date(2019, 5, 1)),
        ("令和1年5月1日", date(2019, 5, 1)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("令和7年4月1日", date(2025, 4, 1)),
        ("令和7年4月1", date(2025, 4, 1)),
        ("R7.4.1", date(2025, 4, 1)),
        ("r7.4.1", date(2025, 4, 1)),
        ("R7/4/1", date(2025, 4, 1)),
        ("R7-04-01", date(2025, 4, 1)),
        ("R7年4月1日", date(2025, 4, 1)),
        ("H31.4.30", date(2019, 4, 30)),
        ("S64.1.7", date(1989, 1, 7)),
        ("T15.12.24", date(1926, 12, 24)),
        ("M45.7.29", date(1912, 7, 29)),
        ("R070401", date(2025, 4, 1)),
        ("H310430", date(2019, 4, 30)),
        ("s640107", date(1989, 1, 7)),
        ("令和７年４月１日", date(2025, 4, 1)),
        ("Ｒ７．４．１", date(2025, 4, 1)),
        ("ｒ０７０４０１", date(2025, 4, 1)),
        ("令和 7年 4月 1日", date(2025, 4, 1)),
        ("　令和7年4月1日　", date(2025, 4, 1)),
        ("㍻31年4月30日", date(2019, 4, 30)),
        ("㋿元年5月1日", date(2019, 5, 1)),
    ],
)
def test_parse_wareki_accepts_common_written_forms(text, expected):
    assert parse_wareki(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("平成31年5月1日", "「平成31年5月1日」は平成の期間外です"),
        ("平成32年1月1日", "「平成32年1月1日」は平成の期間外です"),
        ("H31.5.1", "「H31.5.1」は平成の期間外です"),
        ("昭和64年1月8日", "「昭和64年1月8日」は昭和の期間外です"),
        ("令和元年4月30日", "「令和元年4月30日」は令和の期間外です"),
        ("令和0年6月1日", "「令和0年6月1日」は令和の期間外です"),
        ("明治元年1月24日", "「明治元年1月24日」は明治の期間外です"),
        ("令和7年2月30日", "「令和7年2月30日」は存在しない日付です"),
        ("R7.13.1", "「R7.13.1」は存在しない日付です"),
        ("R070230", "「R070230」は存在しない日付です"),
        ("慶応4年1月1日", "「慶応4年1月1日」の元号「慶応」には対応していません"),
        ("X7.4.1", "「X7.4.1」の元号「X」には対応していません"),
        ("2025-04-01", "「2025-04-01」は和暦の日付として読めません"),
        ("abc", "「abc」は和暦の日付として読めません"),
        ("", "「」は和暦の日付として読めません"),
    ],
)
def test_parse_wareki_rejects_with_japanese_message(text, message):
    with pytest.raises(ValueError) as excinfo:
        parse_wareki(text)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-01", date(2025, 4, 1)),
        ("2025/04/01", date(2025, 4, 1)),
        ("2025.04.01", date(2025, 4, 1)),
        ("2025-4-1", date(2025, 4, 1)),
        ("2025/4/1", date(2025, 4, 1)),
        ("20250401", date(2025, 4, 1)),
        ("2025年4月1日", date(2025, 4, 1)),
        ("2025年04月01日", date(2025, 4, 1)),
        ("２０２５－０４－０１", date(2025, 4, 1)),
        ("２０２５０４０１", date(2025, 4, 1)),
        ("２０２５年４月１日", date(2025, 4, 1)),
        (" 2025-04-01\n", date(2025, 4, 1)),
        ("2024-02-29", date(2024, 2, 29)),
        ("令和7年4月1日", date(2025, 4, 1)),
        ("R7.4.1", date(2025, 4, 1)),
        ("R070401", date(2025, 4, 1)),
        ("平成元年1月8日", date(1989, 1, 8)),
    ],
)
def test_parse_date_accepts_western_and_wareki_forms(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-02-30", "「2025-02-30」は存在しない日付です"),
        ("20250230", "「20250230」は存在しない日付です"),
        ("2023-02-29", "「2023-02-29」は存在しない日付です"),
        ("2025/13/01", "「2025/13/01」は存在しない日付です"),
        ("0000-01-01", "「0000-01-01」は存在しない日付です"),
        ("２０２５－０２－３０", "「２０２５－０２－３０」は存在しない日付です"),
        ("abc", "「abc」は日付として読めません"),
        ("", "「」は日付として読めません"),
        ("2025-04/01", "「2025-04/01」は日付として読めません"),
        ("25-04-01", "「25-04-01」は日付として読めません"),
        ("2025-04-01T00:00", "「2025-04-01T00:00」は日付として読めません"),
        ("平成31年5月1日", "「平成31年5月1日」は平成の期間外です"),
        ("令和7年2月30日", "「令和7年2月30日」は存在しない日付です"),
    ],
)
def test_parse_date_rejects_with_japanese_message(text, message):
    with pytest.raises(ValueError) as excinfo:
        parse_date(text)
    assert str(excinfo.value) == message


def test_parse_date_error_message_truncates_long_input():
    with pytest.raises(ValueError) as excinfo:
        parse_date("x" * 200)
    assert len(str(excinfo.value)) < 60


def test_parse_date_does_not_accept_non_ascii_digits_other_than_full_width():
    with pytest.raises(ValueError):
        parse_date("٢٠٢٥-٠٤-٠١")  # Arabic-Indic digits


_meiji_onwards = st.dates(min_value=date(1868, 1, 25), max_value=date(2200, 12, 31))


@given(_meiji_onwards)
def test_wareki_long_and_short_forms_round_trip(d):
    assert parse_wareki(to_wareki(d)) == d
    assert parse_date(to_wareki(d)) == d
    assert parse_wareki(to_wareki_short(d)) == d


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)))
def test_parse_date_round_trips_iso_and_compact_forms(d):
    assert parse_date(d.isoformat()) == d
    assert parse_date(d.strftime("%Y%m%d")) == d
    assert parse_date(f"{d.year}/{d.month}/{d.day}") == d
