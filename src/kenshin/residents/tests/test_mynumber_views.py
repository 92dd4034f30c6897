"""The resident page and the 個人番号: the 統合宛名番号 shown, the masked number fetched on demand
(audited), the full number revealed once with permission + purpose + a fresh code (ACL-03,
ACL-05, SESS-01), and never in a URL or a page otherwise (MN-03)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from kenshin.accounts.sessions import IDLE_LIMIT
from kenshin.accounts.testing import current_code
from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.core.mynumber import check_digit, find_all
from kenshin.residents.actions import import_feed_file
from kenshin.residents.models import ResidentLink
from kenshin.residents.rules import RESIDENT_HEADER_WITH_MY_NUMBER
from kenshin.residents.tests.conftest import person
from kenshin.residents.tests.test_views import first_link, search

pytestmark = pytest.mark.django_db

NUMBER = "31415926535" + str(check_digit("31415926535"))
OTHER = "27182818284" + str(check_digit("27182818284"))
GROUPED = f"{NUMBER[:4]} {NUMBER[4:8]} {NUMBER[8:]}"
BUTTON = re.compile(r'action="(/residents/view/[^"]+/mynumber/)"')
REVEAL = re.compile(r'action="(/residents/view/[^"]+/mynumber/reveal/)"')


@pytest.fixture
def city(feed_file):
    rows = [
        person(宛名番号="1000000001", 個人番号=NUMBER),
        person(宛名番号="1000000002", 個人番号=OTHER, 氏名="山田　花子", 続柄="妻"),
        person(宛名番号="1000000003", 個人番号="", 氏名="山田　一郎", 続柄="子"),
    ]
    path = feed_file(rows, header=RESIDENT_HEADER_WITH_MY_NUMBER)
    assert import_feed_file(path, actor="test").ok


@pytest.fixture
def hokenshi(make_user, signed_in):
    return signed_in(make_user("hokenshi1", roles=["hokenshi"]))


@pytest.fixture
def kacho_user(make_user):
    return make_user("kacho1", roles=["kacho"])


@pytest.fixture
def kacho(kacho_user, signed_in):
    return signed_in(kacho_user)


def open_person(client, atena_no: str) -> str:
    """The person page's HTML, opened from a search under the purpose 問合せ対応."""
    return client.get(first_link(search(client, atena_no=atena_no))).content.decode()


def mynumber_events(function: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(function=function).order_by("seq"))


def test_person_page_shows_the_unified_number_and_a_button_never_the_number(hokenshi, city):
    html = open_person(hokenshi, "1000000001")
    unified = ResidentLink.objects.get(atena_no="1000000001").unified_atena_no
    assert f"<dd>{unified}</dd>" in html
    assert BUTTON.search(html) and "個人番号を確認" in html
    assert NUMBER not in html and NUMBER[-4:] not in html and not find_all(html)


def test_the_button_is_offered_only_with_view_mynumber(make_user, signed_in, city):
    etsuran = signed_in(make_user("etsuran1", roles=["etsuran"]))
    html = open_person(etsuran, "1000000001")
    assert "個人番号を確認" not in html
    action = BUTTON.search(
        open_person(signed_in(make_user("h2", roles=["hokenshi"])), "1000000001")
    )
    assert etsuran.post(action.group(1)).status_code == 403


def test_masked_number_on_demand_is_audited_with_the_purpose(hokenshi, city):
    action = BUTTON.search(open_person(hokenshi, "1000000001")).group(1)
    assert hokenshi.get(action).status_code == 405  # POST only: nothing fetched by a link
    page = hokenshi.post(action)
    html = page.content.decode()
    assert page.status_code == 200
    assert f"**** **** {NUMBER[-4:]}" in html
    assert NUMBER not in html and not find_all(html)
    assert "全桁を表示" not in html  # a 保健師 may not reveal
    (event,) = mynumber_events("linkage.view_mynumber")
    assert (event.event, event.subject_ref, event.purpose, event.result) == (
        audit.Event.VIEW,
        "1000000001",
        "inquiry",
        "success",
    )
    assert NUMBER[-4:] not in event.detail


def test_masked_number_costs_a_fixed_number_of_queries(hokenshi, city):
    costs = []
    for atena_no in ("1000000001", "1000000002"):
        action = BUTTON.search(open_person(hokenshi, atena_no)).group(1)
        hokenshi.post(action)  # warm the credential cache and the grants
        with (
            CaptureQueriesContext(connection) as main,
            CaptureQueriesContext(connections["linkage"]) as vault,
        ):
            assert hokenshi.post(action).status_code == 200
        costs.append((len(main.captured_queries), len(vault.captured_queries)))
    assert costs[0] == costs[1]
    main_cost, vault_cost = costs[0]
    assert main_cost <= 16 and vault_cost <= 6, costs


def test_person_without_a_mynumber_says_so(hokenshi, city):
    action = BUTTON.search(open_person(hokenshi, "1000000003")).group(1)
    html = hokenshi.post(action).content.decode()
    assert "個人番号は番号連携サーバに登録されていません" in html


def test_unlinked_person_gets_the_instruction_not_an_error(hokenshi, city):
    ResidentLink.objects.filter(atena_no="1000000001").delete()
    action = BUTTON.search(open_person(hokenshi, "1000000001")).group(1)
    html = hokenshi.post(action).content.decode()
    assert "kenshin residents link" in html
    (event,) = mynumber_events("linkage.view_mynumber")
    assert event.result == "failure"


def reveal_action(client) -> str:
    masked = client.post(BUTTON.search(open_person(client, "1000000001")).group(1))
    return REVEAL.search(masked.content.decode()).group(1)


def test_reveal_with_purpose_and_a_fresh_code_shows_the_number_once(kacho, kacho_user, city):
    action = reveal_action(kacho)
    page = kacho.post(action, {"purpose": "disclosure", "code": current_code(kacho_user.totp)})
    html = page.content.decode()
    assert page.status_code == 200
    assert GROUPED in html
    assert "<title>個人番号の表示" in html and NUMBER not in re.search(
        r"<title>(.*?)</title>", html
    ).group(1).replace(" ", "")
    assert page["Cache-Control"] == "no-store"
    assert NUMBER not in page.request["PATH_INFO"]
    # The page is marked as showing 個人番号: the session's idle limit is now 15 minutes.
    assert kacho.session[IDLE_LIMIT] == settings.SESSION_IDLE_SECONDS_MYNUMBER == 15 * 60
    (event,) = [e for e in mynumber_events("linkage.reveal_mynumber") if e.event == "view"]
    assert (event.subject_ref, event.purpose, event.result) == (
        "1000000001",
        "disclosure",
        "success",
    )
    assert NUMBER not in event.detail and NUMBER[-4:] not in event.detail
    # The same code cannot reveal again (a reload re-posts it).
    again = kacho.post(action, {"purpose": "disclosure", "code": current_code(kacho_user.totp)})
    assert GROUPED not in again.content.decode()


def test_reveal_after_sixteen_idle_minutes_ends_the_session(kacho, kacho_user, city):
    action = reveal_action(kacho)
    start = clock.now()
    with clock.frozen(start):
        kacho.post(action, {"purpose": "disclosure", "code": current_code(kacho_user.totp)})
    with clock.frozen(start + timedelta(minutes=16)):
        late = kacho.get("/")
    assert late.status_code == 302 and "login" in late["Location"]


def test_reveal_with_a_wrong_code_is_refused_and_audited(kacho, kacho_user, city):
    action = reveal_action(kacho)
    good = current_code(kacho_user.totp)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    page = kacho.post(action, {"purpose": "disclosure", "code": wrong})
    html = page.content.decode()
    assert "確認コードが正しくありません" in html
    assert GROUPED not in html and NUMBER not in html
    assert AuditEvent.objects.filter(
        event="mfa_failed", function="linkage.reveal_mynumber"
    ).exists()
    (denied,) = mynumber_events("linkage.reveal_mynumber")[-1:]
    assert (denied.event, denied.subject_ref, denied.result) == ("view", "1000000001", "denied")


def test_reveal_needs_a_purpose(kacho, kacho_user, city):
    action = reveal_action(kacho)
    html = kacho.post(action, {"code": current_code(kacho_user.totp)}).content.decode()
    assert "利用目的を選んでください" in html and GROUPED not in html


def test_reveal_needs_the_permission(hokenshi, make_user, signed_in, city):
    kacho = signed_in(make_user("kacho9", roles=["kacho"]))
    action = reveal_action(kacho)
    page = hokenshi.post(action, {"purpose": "disclosure", "code": "000000"})
    assert page.status_code in (403, 404)
    assert AuditEvent.objects.filter(
        event="access_denied", function="linkage.reveal_mynumber"
    ).exists()
