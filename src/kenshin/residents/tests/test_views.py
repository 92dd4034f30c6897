"""Staff pages: declared functions, search by POST with a purpose, every search and view audited
with its purpose (ACL-04, LOG-01), every person shown in a list audited too, flagged people
marked in lists, no personal data in URLs, bounded queries."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from django.conf import settings
from django.db import connection
from django.shortcuts import resolve_url
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kenshin.audit import review
from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.residents import services
from kenshin.residents.actions import import_feed_file
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db

SEARCH = reverse("residents:search")
LINK = re.compile(r'href="(/residents/view/[^"]+)"')


@pytest.fixture
def staff(make_user, signed_in):
    return signed_in(make_user("hokenshi1", roles=["hokenshi"]))


@pytest.fixture
def city(feed_file):
    rows = [
        person(宛名番号=f"10000000{i:02d}", 続柄="世帯主" if i == 0 else "子") for i in range(5)
    ]
    assert import_feed_file(feed_file(rows), actor="test").ok


def events(kind: str) -> list[AuditEvent]:
    """Events of one kind — for SEARCH, only the summary (criteria, hits), not listings."""
    qs = AuditEvent.objects.filter(event=kind)
    if kind == audit.Event.SEARCH:
        qs = qs.filter(subject_kind="")
    return list(qs.order_by("seq"))


def listings(function: str | None = None) -> list[AuditEvent]:
    """Listing events: one per person shown in a list."""
    qs = AuditEvent.objects.filter(event=audit.Event.SEARCH, subject_kind="resident")
    if function:
        qs = qs.filter(function=function)
    return list(qs.order_by("seq"))


BADGE = '<span class="badge badge--warn" title="この方の記録の閲覧・一覧表示はアクセス点検の対象です">閲覧注意</span>'


def search(client, purpose="inquiry", **terms):
    return client.post(SEARCH, {"purpose": purpose, **terms})


def first_link(response) -> str:
    return LINK.search(response.content.decode()).group(1)


def audit_insert_cost() -> int:
    """Queries one audit.record costs on this database (the writer is engineer C's)."""
    with CaptureQueriesContext(connection) as ctx:
        audit.record(audit.Event.VIEW, None, audit.Subject("test", "cost"), "audit")
    return len(ctx.captured_queries)


def test_search_page_requires_login(client):
    response = client.get(SEARCH)
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))


def test_user_without_the_search_function_is_refused(make_user, signed_in):
    client = signed_in(make_user("admin1", roles=["system_admin"]))
    assert client.get(SEARCH).status_code == 403


def test_search_form_offers_purposes_with_none_chosen(staff):
    html = staff.get(SEARCH).content.decode()
    assert "利用目的" in html and "問合せ対応" in html and "受診券・クーポン発行" in html
    assert '<option value="" selected>選択してください</option>' in html


def test_search_without_purpose_is_refused_in_japanese_and_not_run(staff, city):
    response = staff.post(SEARCH, {"kana": "ヤマダ", "birth_date": "1985-04-01"})
    html = response.content.decode()
    assert "利用目的を選んでください" in html
    assert "検索結果" not in html and "/residents/view/" not in html
    assert events(audit.Event.SEARCH) == []


def test_search_with_an_unknown_purpose_is_refused(staff, city):
    response = search(staff, purpose="curiosity", atena_no="1000000000")
    assert "利用目的を選んでください" in response.content.decode()
    assert events(audit.Event.SEARCH) == []


def test_search_by_kana_and_birth_date_lists_results_with_opaque_links(staff, city):
    response = search(staff, kana="ヤマダ", birth_date="1985-04-01")
    html = response.content.decode()
    assert response.status_code == 200
    assert "検索結果 5 件" in html
    links = LINK.findall(html)
    assert len(links) == 5
    assert not any("1000000000" in link for link in links)  # 宛名番号 never in a URL
    assert response["Cache-Control"] == "no-store"


def test_search_is_audited_with_purpose_kind_of_criteria_and_hits_never_the_terms(staff, city):
    search(staff, purpose="voucher", kana="ヤマダ", birth_date="1985-04-01")
    (event,) = events(audit.Event.SEARCH)
    assert event.purpose == "voucher"
    assert event.function == "residents.search"
    assert event.username == "hokenshi1" and "保健師" in event.roles
    assert event.subject_ref == ""
    detail = json.loads(event.detail)
    assert detail == {"by": "kana+birth", "hits": 5, "more": False}
    assert "ヤマダ" not in event.detail and "1985" not in event.detail


@pytest.mark.parametrize(
    ("terms", "by"),
    [
        ({"atena_no": "1000000001"}, "atena_no"),
        ({"household_no": "2000000001"}, "household_no"),
        ({"name": "山田", "birth_date": "1985-04-01"}, "name+birth"),
        ({"kana": "ヤマダ", "name": "山田", "birth_date": "S60.4.1"}, "kana+name+birth"),
    ],
)
def test_search_event_names_the_kind_of_criteria(staff, city, terms, by):
    search(staff, **terms)
    (event,) = events(audit.Event.SEARCH)
    assert json.loads(event.detail)["by"] == by
    for value in terms.values():
        assert value not in event.detail


def test_rejected_search_is_audited_as_a_failure_without_terms(staff, city):
    response = search(staff, kana="ヤマダ")
    assert "氏名（カナか漢字）と生年月日の両方が必要です" in response.content.decode()
    (event,) = events(audit.Event.SEARCH)
    assert event.result == audit.Result.FAILURE
    assert json.loads(event.detail) == {"by": "kana", "hits": 0}


def test_every_resident_in_the_results_gets_a_listing_event_without_personal_data(staff, city):
    search(staff, purpose="voucher", household_no="2000000001")
    (summary,) = events(audit.Event.SEARCH)
    assert json.loads(summary.detail) == {"by": "household_no", "hits": 5, "more": False}
    listed = listings()
    assert [e.subject_ref for e in listed] == [f"10000000{i:02d}" for i in range(5)]
    for e in listed:
        assert e.seq > summary.seq and e.subject_kind == "resident"
        assert e.purpose == "voucher" and e.function == "residents.search"
        assert e.username == "hokenshi1" and e.result == audit.Result.SUCCESS
        assert json.loads(e.detail) == {"listed": True}
    assert events(audit.Event.VIEW) == []  # listed, not opened


def test_a_rejected_search_lists_nobody(staff, city):
    search(staff, kana="ヤマダ")
    assert listings() == []


def test_flagged_resident_in_the_results_is_marked_and_reported(make_user, staff, city):
    """Review finding: a 世帯番号 search showed a DV-protected person's address with no trace."""
    kacho = make_user("kacho1", roles=["kacho"])
    services.set_flag(kacho, "1000000002", "dv", date(2020, 1, 1), "x")
    html = search(staff, purpose="inquiry", household_no="2000000001").content.decode()
    assert "1000000002" in html and "広島県呉市中央四丁目1番6号" in html
    assert html.count(BADGE) == 1
    row = next(tr for tr in html.split("<tr>") if "1000000002" in tr)
    assert BADGE in row
    assert "DV等" not in html  # the list says 閲覧注意, not why ("DV" alone occurs in tokens)
    rows, total = review.access_history("1000000002")
    assert total == 2
    assert [(r.event_label, r.username, r.purpose) for r in rows] == [
        ("一覧表示", "hokenshi1", "inquiry"),
        ("登録", "kacho1", ""),  # the flag itself
    ]
    today = clock.today()
    report = review.flagged_views(review.Period(today, today))
    assert [(r.subject_ref, r.event_label, r.username) for r in report.rows] == [
        ("1000000002", "一覧表示", "hokenshi1")
    ]
    assert "閲覧注意：DV等支援措置" in report.rows[0].reason


def test_household_list_on_the_person_page_records_each_member_and_marks_flags(
    make_user, staff, city
):
    services.set_flag(make_user("kacho1", roles=["kacho"]), "1000000003", "vip", date(2020, 1, 1))
    page = staff.get(first_link(search(staff, purpose="follow_up", atena_no="1000000000")))
    html = page.content.decode()
    (view,) = events(audit.Event.VIEW)
    assert view.subject_ref == "1000000000"
    household = listings("residents.view")
    # The other four members; the person themselves has the VIEW.
    assert [e.subject_ref for e in household] == [f"10000000{i:02d}" for i in range(1, 5)]
    assert all(e.purpose == "follow_up" and json.loads(e.detail) == {"listed": True}
               for e in household)  # fmt: skip
    assert html.count(BADGE) == 1
    refs = {v[0]: ref for ref, v in staff.session["residents_refs"].items()}
    row = next(tr for tr in html.split("<tr") if f"/residents/view/{refs['1000000003']}/" in tr)
    assert BADGE in row


def test_search_with_unreadable_date_shows_a_japanese_message(staff, city):
    response = search(staff, kana="ヤマダ", birth_date="1985-02-30")
    assert "「1985-02-30」は存在しない日付です" in response.content.decode()


def test_opening_a_person_records_a_view_with_subject_and_purpose(staff, city):
    link = first_link(search(staff, purpose="result_entry", atena_no="1000000000"))
    page = staff.get(link)
    assert page.status_code == 200
    (view,) = events(audit.Event.VIEW)
    assert view.subject_kind == "resident" and view.subject_ref == "1000000000"
    assert view.purpose == "result_entry"
    assert view.function == "residents.view"
    assert "利用目的：<strong>結果登録</strong>" in page.content.decode()


def test_household_links_carry_the_same_purpose(staff, city):
    page = staff.get(first_link(search(staff, purpose="disclosure", atena_no="1000000000")))
    member = [link for link in LINK.findall(page.content.decode())][3]
    staff.get(member)
    views = events(audit.Event.VIEW)
    assert [v.purpose for v in views] == ["disclosure", "disclosure"]
    assert views[1].subject_ref == "1000000003"


def test_changing_the_purpose_on_the_person_page_reopens_under_the_new_purpose(staff, city):
    link = first_link(search(staff, purpose="inquiry", atena_no="1000000000"))
    staff.get(link)
    response = staff.post(link, {"purpose": "data_correction"})
    assert response.status_code == 302 and response["Location"] == link
    page = staff.get(link)
    assert "利用目的：<strong>記録の訂正</strong>" in page.content.decode()
    assert [v.purpose for v in events(audit.Event.VIEW)] == ["inquiry", "data_correction"]


def test_changing_to_no_purpose_is_refused(staff, city):
    link = first_link(search(staff, atena_no="1000000000"))
    response = staff.post(link, {"purpose": ""})
    assert response.status_code == 400
    assert "利用目的を選んでください" in response.content.decode()
    assert events(audit.Event.VIEW) == []


def test_a_reference_without_purpose_asks_for_one_before_showing_anything(staff, city):
    link = first_link(search(staff, atena_no="1000000000"))
    ref = link.rstrip("/").rsplit("/", 1)[1]
    session = staff.session
    session["residents_refs"] = {ref: "1000000000"}  # a session from before purposes
    session.save()
    page = staff.get(link)
    html = page.content.decode()
    assert page.status_code == 200
    assert "利用目的の選択" in html
    assert "山田" not in html and "1000000000" not in html
    assert events(audit.Event.VIEW) == []
    staff.post(link, {"purpose": "follow_up"})
    assert "山田" in staff.get(link).content.decode()
    assert [v.purpose for v in events(audit.Event.VIEW)] == ["follow_up"]


def test_person_page_shows_household_and_history_in_a_fixed_number_of_queries(staff, city):
    link = first_link(search(staff, atena_no="1000000000"))
    staff.get(link)  # warm the session and the user's grants
    cost = audit_insert_cost()
    with CaptureQueriesContext(connection) as ctx:
        page = staff.get(link)
    html = page.content.decode()
    assert page.status_code == 200
    assert "異動履歴" in html and "全件" in html
    # the household's members + the purpose form + the 個人番号 button (ref + "mynumber/")
    assert html.count("/residents/view/") == 5 + 1 + 1
    assert "昭和60年4月1日" in html
    # session, user, OTP device, grants, record, household, savepoint + release around the
    # audit inserts, flags in the household, flags of the person, history, categories, the
    # 統合宛名番号 link, session save (savepoint, update, release) — plus the VIEW and the 4
    # listing events.
    assert len(ctx.captured_queries) == PERSON_QUERIES + (1 + 4) * cost, [
        q["sql"][:120] for q in ctx.captured_queries
    ]


def test_person_page_cannot_be_opened_by_guessing(staff, city):
    assert staff.get("/residents/view/1000000000/").status_code == 404
    assert events(audit.Event.VIEW) == []


def test_home_shows_counts(staff, city):
    html = staff.get(reverse("web:home")).content.decode()
    assert "住民" in html and "5 人" in html


def test_expired_or_guessed_link_shows_a_japanese_page(staff, city):
    response = staff.get("/residents/view/not-a-ref/")
    assert response.status_code == 404
    assert "検索結果から開いてください" in response.content.decode()


def test_search_view_query_count_grows_only_by_the_listing_events(staff, city):
    def queries(data):
        with CaptureQueriesContext(connection) as ctx:
            search(staff, **data)
        return len(ctx.captured_queries)

    search(staff, atena_no="1000000000")  # session exists
    cost = audit_insert_cost()
    one = queries({"atena_no": "1000000001"})
    five = queries({"kana": "ヤマダ", "birth_date": "1985-04-01"})
    # session, user, OTP device, grants, the search, savepoint + release around the audit
    # inserts, flags in the list (one query), the session save (savepoint, update, release)
    # — plus the summary event and one listing event per person shown.
    assert one == SEARCH_QUERIES + (1 + 1) * cost
    assert five == SEARCH_QUERIES + (1 + 5) * cost


def test_more_than_the_page_size_says_so(staff, feed_file):
    rows = [person(宛名番号=f"2{i:09d}") for i in range(51)]
    assert import_feed_file(feed_file(rows), actor="test").ok
    response = search(staff, kana="ヤマダ", birth_date="1985-04-01")
    html = response.content.decode()
    assert "50 件を超えたため先頭の 50 件を表示" in html
    assert html.count("/residents/view/") == 50
    assert json.loads(events(audit.Event.SEARCH)[0].detail) == {
        "by": "kana+birth",
        "hits": 50,
        "more": True,
    }
    assert len(listings()) == 50  # the 51st was not shown, so not listed


def test_exactly_the_page_size_does_not_claim_more(staff, feed_file):
    rows = [person(宛名番号=f"2{i:09d}") for i in range(50)]
    assert import_feed_file(feed_file(rows), actor="test").ok
    html = search(staff, kana="ヤマダ", birth_date="1985-04-01").content.decode()
    assert "検索結果 50 件" in html and "超えた" not in html


def test_csrf_failure_page_is_japanese(make_user):
    from django.test import Client

    from kenshin.accounts import testing

    strict = testing.signed_in_client(
        make_user("jimu1", roles=["jimu"]), Client(enforce_csrf_checks=True)
    )
    response = strict.post(SEARCH, {"purpose": "inquiry", "atena_no": "1"})
    assert response.status_code == 403
    assert "画面の有効期限が切れました" in response.content.decode()


# Queries of the views themselves, without the audit insert (measured; update with care).
PERSON_QUERIES = 16
SEARCH_QUERIES = 11
