"""Staff pages: login required, search by POST, no personal data in URLs, bounded queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kenshin.residents.actions import import_feed_file
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user(
        "hokenshi1", password="correct horse battery staple"
    )
    client.force_login(user)
    return client


@pytest.fixture
def city(feed_file):
    rows = [
        person(宛名番号=f"10000000{i:02d}", 続柄="世帯主" if i == 0 else "子") for i in range(5)
    ]
    assert import_feed_file(feed_file(rows), actor="test").ok


def test_search_page_requires_login(client):
    response = client.get(reverse("residents:search"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_search_by_kana_and_birth_date_lists_results_with_opaque_links(staff, city):
    response = staff.post(
        reverse("residents:search"), {"kana": "ヤマダ", "birth_date": "1985-04-01"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "検索結果 5 件" in html
    links = re.findall(r'href="(/residents/view/[^"]+)"', html)
    assert len(links) == 5
    assert not any("1000000000" in link for link in links)  # 宛名番号 never in a URL
    assert response["Cache-Control"] == "no-store"


def test_search_with_one_identifier_shows_the_rule(staff, city):
    response = staff.post(reverse("residents:search"), {"kana": "ヤマダ"})
    assert "氏名（カナか漢字）と生年月日の両方が必要です" in response.content.decode()


def test_search_with_unreadable_date_shows_a_japanese_message(staff, city):
    response = staff.post(
        reverse("residents:search"), {"kana": "ヤマダ", "birth_date": "1985-02-30"}
    )
    assert "「1985-02-30」は存在しない日付です" in response.content.decode()


def test_person_page_shows_household_and_history(staff, city):
    response = staff.post(reverse("residents:search"), {"atena_no": "1000000000"})
    link = re.search(r'href="(/residents/view/[^"]+)"', response.content.decode()).group(1)
    with CaptureQueriesContext(connection) as ctx:
        page = staff.get(link)
    html = page.content.decode()
    assert page.status_code == 200
    assert "異動履歴" in html and "全件" in html
    assert html.count("/residents/view/") == 5  # the household's members
    assert "昭和60年4月1日" in html
    assert len(ctx.captured_queries) <= 10


def test_person_page_cannot_be_opened_by_guessing(staff, city):
    assert staff.get("/residents/view/1000000000/").status_code == 404


def test_home_shows_counts(staff, city):
    html = staff.get(reverse("web:home")).content.decode()
    assert "住民" in html and "5 人" in html


def test_expired_or_guessed_link_shows_a_japanese_page(staff, city):
    response = staff.get("/residents/view/not-a-ref/")
    assert response.status_code == 404
    assert "検索結果から開いてください" in response.content.decode()


def test_search_view_query_count_does_not_grow_with_results(staff, city):
    def queries(data):
        with CaptureQueriesContext(connection) as ctx:
            staff.post(reverse("residents:search"), data)
        return len(ctx.captured_queries)

    staff.post(reverse("residents:search"), {"atena_no": "1000000000"})  # session exists
    one = queries({"atena_no": "1000000001"})
    five = queries({"kana": "ヤマダ", "birth_date": "1985-04-01"})
    assert five == one <= 7  # session, user, the search, the session save (in a savepoint)


def test_more_than_the_page_size_says_so(staff, feed_file):
    rows = [person(宛名番号=f"2{i:09d}") for i in range(51)]
    assert import_feed_file(feed_file(rows), actor="test").ok
    html = staff.post(
        reverse("residents:search"), {"kana": "ヤマダ", "birth_date": "1985-04-01"}
    ).content.decode()
    assert "50 件を超えたため先頭の 50 件を表示" in html
    assert html.count("/residents/view/") == 50


def test_exactly_the_page_size_does_not_claim_more(staff, feed_file):
    rows = [person(宛名番号=f"2{i:09d}") for i in range(50)]
    assert import_feed_file(feed_file(rows), actor="test").ok
    html = staff.post(
        reverse("residents:search"), {"kana": "ヤマダ", "birth_date": "1985-04-01"}
    ).content.decode()
    assert "検索結果 50 件" in html and "超えた" not in html


def test_csrf_failure_page_is_japanese(client, django_user_model):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.create_user("jimu1", password="x" * 16))
    response = strict.post(reverse("residents:search"), {"atena_no": "1"})
    assert response.status_code == 403
    assert "画面の有効期限が切れました" in response.content.decode()
