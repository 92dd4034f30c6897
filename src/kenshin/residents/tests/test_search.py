"""Search: narrow by design (two identifiers or an exact number), variant-tolerant, indexed."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kenshin.residents import services
from kenshin.residents.actions import import_feed_file
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def city(feed_file):
    rows = [
        person(),
        person(宛名番号="1000000002", 氏名="髙橋　花子", 氏名カナ="タカハシ　ハナコ", 性別="2",
               世帯番号="2000000002", 世帯主氏名="髙橋　花子"),
        person(宛名番号="1000000003", 氏名="山崎　京子", 氏名カナ="ヤマサキ　キョウコ", 性別="2",
               生年月日="1950-01-02", 世帯番号="2000000003", 世帯主氏名="山崎　京子"),
        person(宛名番号="1000000004", 氏名="山田　次郎", 氏名カナ="ヤマダ　ジロウ", 続柄="子",
               生年月日="2010-05-05"),
    ]  # fmt: skip
    report = import_feed_file(feed_file(rows), actor="test")
    assert report.ok, report.errors


def test_kana_prefix_with_birth_date_finds_the_person(city):
    found = services.search_residents(kana="ﾔﾏﾀﾞ", birth_date="1985-04-01")
    assert [r.atena_no for r in found] == ["1000000001"]


def test_kana_prefix_alone_is_rejected(city):
    with pytest.raises(
        services.SearchRejected, match="氏名（カナか漢字）と生年月日の両方が必要です"
    ):
        services.search_residents(kana="ヤマ")


def test_birth_date_alone_is_rejected(city):
    with pytest.raises(services.SearchRejected):
        services.search_residents(birth_date="1985-04-01")


def test_exact_atena_no_alone_is_enough(city):
    assert [r.name for r in services.search_residents(atena_no="１０００００００03")] == [
        "山崎　京子"
    ]


def test_household_no_lists_the_household(city):
    found = services.search_residents(household_no="2000000001")
    assert {r.atena_no for r in found} == {"1000000001", "1000000004"}


def test_kanji_variants_find_each_other_but_are_stored_as_written(city):
    born = date(1985, 4, 1)
    assert [r.name for r in services.search_residents(name="高橋", birth_date=born)] == [
        "髙橋　花子"
    ]
    assert [r.name for r in services.search_residents(name="山﨑", birth_date="1950-01-02")] == [
        "山崎　京子"
    ]


def test_small_kana_and_large_kana_find_each_other(city):
    found = services.search_residents(kana="ヤマサキ　キヨウ", birth_date="S25.1.2")
    assert [r.atena_no for r in found] == ["1000000003"]


def test_household_members_head_first(city):
    members = services.household_members("2000000001")
    assert [m.relationship for m in members] == ["世帯主", "子"]


def test_search_is_one_query(city):
    with CaptureQueriesContext(connection) as ctx:
        services.search_residents(kana="ヤマダ", birth_date="1985-04-01")
    assert len(ctx.captured_queries) == 1


def test_kana_prefix_search_is_a_range_not_like(city):
    """LIKE on SQLite cannot use a plain index (reference/perf-limits.md §F): use a range."""
    with CaptureQueriesContext(connection) as ctx:
        services.search_residents(kana="ヤマダ", birth_date="1985-04-01")
    sql = ctx.captured_queries[0]["sql"].upper()
    assert " LIKE " not in sql
    assert "KANA_KEY" in sql and ">=" in sql and "<" in sql


def test_kanji_prefix_finds_names_continuing_with_astral_kanji(feed_file):
    rows = [person(氏名="山𠀋　太郎", 世帯主氏名="山𠀋　太郎")]
    assert import_feed_file(feed_file(rows), actor="test").ok
    assert [r.name for r in services.search_residents(name="山", birth_date="1985-04-01")] == [
        "山𠀋　太郎"
    ]


def test_foreign_name_with_middle_dot_is_accepted_and_found(feed_file):
    rows = [person(氏名="スミス　ジョン", 氏名カナ="スミス・ジョン", 世帯主氏名="スミス　ジョン")]
    report = import_feed_file(feed_file(rows), actor="test")
    assert report.ok, [str(e) for e in report.errors]
    found = services.search_residents(kana="スミスジ", birth_date="1985-04-01")
    assert [r.name_kana for r in found] == ["スミス・ジョン"]
