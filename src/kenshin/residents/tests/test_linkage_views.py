"""Staff pages for 統合宛名: duplicate candidates side by side, a merge requested by one person
and decided by another with a fresh code (four eyes, ACL-05), unmerge, history."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kenshin.accounts.testing import current_code
from kenshin.audit.models import AuditEvent
from kenshin.core.mynumber import check_digit
from kenshin.residents.actions import import_feed_file
from kenshin.residents.models import ResidentLink
from kenshin.residents.rules import RESIDENT_HEADER_WITH_MY_NUMBER
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db

CANDIDATES = reverse("linkage:candidates")
MERGES = reverse("linkage:merges")
COMPARE = re.compile(r'href="(/linkage/candidates/\d+/)"')


def synthetic(first_eleven: str) -> str:
    return first_eleven + str(check_digit(first_eleven))


@pytest.fixture
def twins(feed_file):
    """The same five items under three 宛名番号: two with different 個人番号 (two people, or a
    keying error — they cannot be merged), and a third without one, which matches both and so
    is linked to neither: three numbers, three suspected duplicates."""
    rows = [
        person(宛名番号="1000000001", 個人番号=synthetic("31415926535")),
        person(宛名番号="1000000002", 個人番号=synthetic("27182818284"), 世帯番号="2000000002"),
        person(宛名番号="1000000003", 個人番号="", 世帯番号="2000000003"),
    ]
    path = feed_file(rows, header=RESIDENT_HEADER_WITH_MY_NUMBER)
    assert import_feed_file(path, actor="test").ok
    links = dict(ResidentLink.objects.values_list("atena_no", "unified_atena_no"))
    assert len(set(links.values())) == 3
    return links


def compare_url(client, links: dict[str, str], first: str, second: str) -> str:
    """The comparison page of the candidate pairing these two residents' numbers."""
    for url in COMPARE.findall(client.get(CANDIDATES).content.decode()):
        html = client.get(url).content.decode()
        if links[first] in html and links[second] in html:
            return url
    raise AssertionError("no such candidate")


@pytest.fixture
def users(make_user, signed_in):
    first, second = make_user("kacho1", roles=["kacho"]), make_user("kacho2", roles=["kacho"])
    return (first, signed_in(first)), (second, signed_in(second))


def request_merge(client, links) -> str:
    """Ask to fold the third resident's number into the first's; return the request's URL."""
    compare = compare_url(client, links, "1000000001", "1000000003")
    page = client.post(compare, {"survivor": "a", "reason": "住基の二重登録を確認（文書番号123）"})
    assert page.status_code == 302, page.content.decode()
    return page["Location"]


def test_candidates_need_the_merge_function(make_user, signed_in, twins):
    hokenshi = signed_in(make_user("hokenshi1", roles=["hokenshi"]))
    assert hokenshi.get(CANDIDATES).status_code == 403
    assert hokenshi.get(MERGES).status_code == 403


def test_candidate_list_is_a_fixed_number_of_queries(users, twins):
    (_, client), _ = users
    client.get(CANDIDATES)
    with CaptureQueriesContext(connection) as ctx:
        html = client.get(CANDIDATES).content.decode()
    assert len(COMPARE.findall(html)) == 3
    assert "山田" not in html  # numbers only; the people are on the comparison page
    assert len(ctx.captured_queries) <= 12, [q["sql"][:80] for q in ctx.captured_queries]


def test_comparison_shows_both_people_side_by_side_and_records_the_views(users, twins):
    (_, client), _ = users
    compare = compare_url(client, twins, "1000000001", "1000000003")
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    html = client.get(compare).content.decode()
    assert html.count("ヤマダ　タロウ") == 2 and html.count("1985-04-01") == 2
    assert "1000000001" in html and "1000000003" in html and "1000000002" not in html
    viewed = AuditEvent.objects.filter(
        event="view", function="linkage.merge", subject_kind="resident"
    )
    viewed = viewed.filter(seq__gt=before)
    assert sorted(viewed.values_list("subject_ref", flat=True)) == ["1000000001", "1000000003"]
    assert set(viewed.values_list("purpose", flat=True)) == {"data_correction"}


def test_merge_needs_a_second_person_with_a_fresh_code(users, twins):
    (first_user, first), (second_user, second) = users
    merge_url = request_merge(first, twins)
    html = first.get(merge_url).content.decode()
    assert "承認待ち" in html and "kacho1" in html

    # The requester cannot approve: the engine's message is shown, nothing changes.
    page = first.post(merge_url, {"decision": "approve", "code": current_code(first_user.totp)})
    assert page.status_code == 200
    assert "承認待ち" in page.content.decode()
    assert AuditEvent.objects.filter(function="linkage.merge", result="denied").exists()
    assert len(set(ResidentLink.objects.values_list("unified_atena_no", flat=True))) == 3

    page = second.post(merge_url, {"decision": "approve", "code": current_code(second_user.totp)})
    assert page.status_code == 302
    html = second.get(merge_url).content.decode()
    assert "実行済み" in html and "kacho2" in html
    # Both 宛名 now show the surviving number.
    links = dict(ResidentLink.objects.values_list("atena_no", "unified_atena_no"))
    assert links == {**twins, "1000000003": twins["1000000001"]}
    assert "1" in second.get(MERGES).content.decode()
    # The request, the decision and the links that followed it are in the audit log.
    merge_id = merge_url.rstrip("/").rsplit("/", 1)[1]
    merge_events = AuditEvent.objects.filter(subject_kind="unified_merge", subject_ref=merge_id)
    assert sorted(merge_events.values_list("event", "result")) == [
        ("create", "success"), ("update", "denied"), ("update", "success"),
    ]  # fmt: skip
    refreshed = AuditEvent.objects.get(subject_kind="resident_link", function="linkage.merge")
    assert refreshed.username == "kacho2" and json.loads(refreshed.detail)["linked"] == 2


def test_unmerge_is_requested_and_approved_by_two_people_and_kept_in_history(users, twins):
    (first_user, first), (second_user, second) = users
    merge_url = request_merge(first, twins)
    assert (
        second.post(
            merge_url, {"decision": "approve", "code": current_code(second_user.totp)}
        ).status_code
        == 302
    )
    page = second.post(merge_url, {"reason": "別人と判明（文書番号124）"})
    assert page.status_code == 302
    unmerge_url = page["Location"]
    assert unmerge_url != merge_url
    page = first.post(unmerge_url, {"decision": "approve", "code": current_code(first_user.totp)})
    assert page.status_code == 302
    links = dict(ResidentLink.objects.values_list("atena_no", "unified_atena_no"))
    assert links == twins
    history = first.get(MERGES).content.decode()
    assert "統合の取消" in history and history.count("<td>実行済み</td>") == 2


def test_merge_request_needs_a_reason(users, twins):
    (_, client), _ = users
    compare = COMPARE.search(client.get(CANDIDATES).content.decode()).group(1)
    page = client.post(compare, {"survivor": "a", "reason": ""})
    assert page.status_code == 200 and "理由を入力してください" in page.content.decode()


def test_a_wrong_code_is_refused_before_the_engine_is_asked(users, twins):
    (_, first), (second_user, second) = users
    merge_url = request_merge(first, twins)
    good = current_code(second_user.totp)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    page = second.post(merge_url, {"decision": "approve", "code": wrong})
    assert "確認コードが正しくありません" in page.content.decode()
    assert "承認待ち" in second.get(merge_url).content.decode()
    assert AuditEvent.objects.filter(event="mfa_failed", function="linkage.merge").exists()
