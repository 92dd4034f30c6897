"""The linkage contract, one suite for both adapters (issue 4 acceptance).

Every test runs twice: against InProcessClient in the test database, and against HttpClient
talking to a real ``kenshin linkage serve`` process on loopback (conftest.py). The server's
database is shared by the whole session, so every test makes its own synthetic 宛名 and
個人番号.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kenshin.linkage import rules
from kenshin.linkage.contract import (
    AtenaRef,
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
)
from kenshin.linkage.tests.conftest import (
    JIMU,
    synthetic_atena,
    synthetic_my_number,
    wrong_check_digit,
)

pytestmark = pytest.mark.django_db

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
STAFF = "hokenshi_a"
OTHER_STAFF = "hokenshi_b"


def test_register_without_my_number_issues_a_unified_number(linkage_client):
    atena = synthetic_atena()
    reg = linkage_client.register(atena, actor=STAFF)
    assert reg.outcome == "issued"
    assert rules.is_valid_unified(reg.unified_atena_no)
    assert linkage_client.find_by_atena(atena.atena_no, actor=STAFF) == reg.unified_atena_no
    view = linkage_client.person(reg.unified_atena_no, actor=STAFF)
    assert view.has_my_number is False
    assert view.merged_into is None


def test_register_again_is_existing_and_keeps_the_number(linkage_client):
    atena = synthetic_atena()
    first = linkage_client.register(atena, actor=STAFF)
    moved = synthetic_atena(atena_no=atena.atena_no, address="広島県呉市転居先1番地")
    again = linkage_client.register(moved, actor=STAFF)
    assert (again.outcome, again.unified_atena_no) == ("existing", first.unified_atena_no)


def test_register_with_my_number_then_find_by_it(linkage_client):
    number = synthetic_my_number()
    reg = linkage_client.register(synthetic_atena(number), actor=STAFF)
    assert reg.outcome == "issued"
    assert linkage_client.find_by_my_number(number, actor=STAFF) == reg.unified_atena_no
    assert linkage_client.person(reg.unified_atena_no, actor=STAFF).has_my_number is True


def test_unknown_my_number_finds_nothing(linkage_client):
    assert linkage_client.find_by_my_number(synthetic_my_number(), actor=STAFF) is None


def test_same_my_number_from_another_system_links_to_the_same_person(linkage):
    number = synthetic_my_number()
    mine = linkage.client.register(synthetic_atena(number), actor=STAFF)
    code, other = linkage.new_system()
    theirs_atena = synthetic_atena(number, name="試験　花江")  # items differ: the number decides
    theirs = other.register(theirs_atena, actor="juki_batch")
    assert theirs.outcome == "linked_my_number"
    assert theirs.unified_atena_no == mine.unified_atena_no
    refs = linkage.client.atenas_of(mine.unified_atena_no, actor=STAFF)
    assert AtenaRef(code, theirs_atena.atena_no) in refs
    assert len(refs) == 2
    found = linkage.client.find_by_atena(theirs_atena.atena_no, actor=STAFF, system_code=code)
    assert found == mine.unified_atena_no


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sep=st.sampled_from(["", "-", " ", "－", "　", "‐", "−"]),
    full=st.booleans(),
    pad=st.sampled_from(["", " ", "　"]),
)
def test_full_width_and_hyphenated_my_number_find_the_same_person(linkage, sep, full, pad):
    number = synthetic_my_number()
    reg = linkage.client.register(synthetic_atena(number), actor=STAFF)
    spelled = sep.join([number[:4], number[4:8], number[8:]])
    if full:
        spelled = spelled.translate(FULLWIDTH)
    assert (
        linkage.client.find_by_my_number(pad + spelled + pad, actor=STAFF) == reg.unified_atena_no
    )
    # Registered in another spelling, it is still the same person.
    again = linkage.client.register(synthetic_atena(pad + spelled), actor=STAFF)
    assert (again.outcome, again.unified_atena_no) == ("linked_my_number", reg.unified_atena_no)


def test_five_item_match_links_and_four_items_never_do(linkage):
    base = synthetic_atena()
    mine = linkage.client.register(base, actor=STAFF)
    _, other = linkage.new_system()
    # Same five items, keyed differently (half-width kana, spaces, full-width digits).
    same = synthetic_atena(
        name="試験 花子",
        name_kana="ｼｹﾝ ﾊﾅｺ",
        birth_date=base.birth_date,
        sex=base.sex,
        address=base.address.translate(FULLWIDTH),
    )
    linked = other.register(same, actor="juki_batch")
    assert (linked.outcome, linked.unified_atena_no) == ("linked_five_items", mine.unified_atena_no)
    for change in (
        {"name": "試験　花江"},
        {"name_kana": "シケン　ハナエ"},
        {"birth_date": base.birth_date.replace(day=base.birth_date.day % 28 + 1)},
        {"sex": 1},
        {"address": base.address + "の2"},
    ):
        four = synthetic_atena(
            **{
                "name": base.name,
                "name_kana": base.name_kana,
                "birth_date": base.birth_date,
                "sex": base.sex,
                "address": base.address,
                **change,
            }
        )
        reg = other.register(four, actor="juki_batch")
        assert reg.outcome == "issued", change
        assert reg.unified_atena_no != mine.unified_atena_no


def test_five_item_match_with_a_different_my_number_is_a_new_person_and_a_candidate(linkage):
    base = synthetic_atena(synthetic_my_number())
    mine = linkage.client.register(base, actor=STAFF)
    twin = synthetic_atena(
        synthetic_my_number(),
        name=base.name,
        name_kana=base.name_kana,
        birth_date=base.birth_date,
        sex=base.sex,
        address=base.address,
    )
    reg = linkage.client.register(twin, actor=STAFF)
    assert reg.outcome == "issued"
    assert reg.duplicate_suspected is True
    assert reg.unified_atena_no != mine.unified_atena_no
    pairs = {
        frozenset((c.unified_a, c.unified_b))
        for c in linkage.client.duplicate_candidates(actor=STAFF)
    }
    assert frozenset((mine.unified_atena_no, reg.unified_atena_no)) in pairs


def test_register_many_decides_each_row(linkage_client):
    number = synthetic_my_number()
    known = linkage_client.register(synthetic_atena(number), actor=STAFF)
    batch = [synthetic_atena(), synthetic_atena(number), synthetic_atena(synthetic_my_number())]
    regs = linkage_client.register_many(batch, actor="feed_import")
    assert [r.atena_no for r in regs] == [a.atena_no for a in batch]
    assert [r.outcome for r in regs] == ["issued", "linked_my_number", "issued"]
    assert regs[1].unified_atena_no == known.unified_atena_no
    assert len({regs[0].unified_atena_no, regs[2].unified_atena_no, known.unified_atena_no}) == 3


def test_find_by_atena_and_the_reverse(linkage_client):
    atena = synthetic_atena()
    reg = linkage_client.register(atena, actor=STAFF)
    assert linkage_client.atenas_of(reg.unified_atena_no, actor=STAFF) == [
        AtenaRef("kenshin", atena.atena_no)
    ]
    assert linkage_client.find_by_atena("T0000000000X", actor=STAFF) is None
    with pytest.raises(NotFound):
        linkage_client.atenas_of(rules.unified_atena_no(10**13), actor=STAFF)
    with pytest.raises(InvalidInput):
        linkage_client.atenas_of(reg.unified_atena_no[:-1] + "x", actor=STAFF)


def test_masked_and_revealed_my_number(linkage):
    number = synthetic_my_number()
    reg = linkage.client.register(synthetic_atena(number), actor=STAFF)
    masked = linkage.client.masked_my_number(reg.unified_atena_no, actor=STAFF)
    assert masked == "**** **** " + number[-4:]
    mark = linkage.last_event_id()
    assert (
        linkage.client.reveal_my_number(reg.unified_atena_no, actor=STAFF, purpose="inquiry")
        == number
    )
    (event,) = linkage.events(mark)
    assert (event["operation"], event["result"]) == ("reveal_my_number", "ok")
    assert event["detail"] == {"purpose": "inquiry"}
    without = linkage.client.register(synthetic_atena(), actor=STAFF)
    assert linkage.client.masked_my_number(without.unified_atena_no, actor=STAFF) is None
    assert (
        linkage.client.reveal_my_number(without.unified_atena_no, actor=STAFF, purpose="inquiry")
        is None
    )


def test_reveal_needs_a_purpose_code(linkage_client):
    reg = linkage_client.register(synthetic_atena(synthetic_my_number()), actor=STAFF)
    with pytest.raises(InvalidInput):
        linkage_client.reveal_my_number(reg.unified_atena_no, actor=STAFF, purpose="")
    with pytest.raises(InvalidInput):
        linkage_client.reveal_my_number(reg.unified_atena_no, actor=STAFF, purpose="自由記述")


def test_wrong_check_digit_is_invalid_input_without_the_value(linkage):
    bad = wrong_check_digit(synthetic_my_number())
    mark = linkage.last_event_id()
    with pytest.raises(InvalidInput) as register_error:
        linkage.client.register(synthetic_atena(bad), actor=STAFF)
    with pytest.raises(InvalidInput) as find_error:
        linkage.client.find_by_my_number(bad, actor=STAFF)
    for error in (register_error.value, find_error.value):
        assert "検査用数字" in str(error)
        assert bad not in str(error)
    events = linkage.events(mark)
    assert [e["result"] for e in events] == ["invalid", "invalid"]
    assert bad not in json.dumps(events, default=str, ensure_ascii=False)


def _expect_refused(linkage, client, reason: str):
    mark = linkage.last_event_id()
    with pytest.raises(Refused):
        client.find_by_my_number(synthetic_my_number(), actor=STAFF)
    events = linkage.events(mark)
    assert [(e["result"], e["detail"].get("reason")) for e in events] == [("refused", reason)]
    return events[0]


def test_bad_credentials_are_refused_and_logged(linkage):
    token = linkage.issue("kenshin")
    prefix, secret = token.split("_")[1], token.split("_", 2)[2]
    cases = [
        ("not-a-token", "malformed_credential"),
        (f"kl_{'0' * 12}_{secret}", "unknown_credential"),
        (f"kl_{prefix}_{'A' * len(secret)}", "bad_secret"),
    ]
    for bad, reason in cases:
        event = _expect_refused(linkage, linkage.client_for(bad, JIMU), reason)
        assert secret not in json.dumps(event, default=str)
        assert event["operation"] == "find_by_my_number"


def test_missing_credential_is_refused_and_logged(linkage):
    """An adapter given no credential still calls (HttpClient: without Authorization), and
    the server refuses and logs it."""
    event = _expect_refused(linkage, linkage.client_for("", JIMU), "no_credential")
    assert event["system_code"] == ""


def test_revoked_credential_is_refused(linkage):
    code, client = linkage.new_system()
    token = linkage.issue(code)
    client = linkage.client_for(token, JIMU)
    assert client.find_by_my_number(synthetic_my_number(), actor=STAFF) is None
    linkage.revoke(token)
    event = _expect_refused(linkage, client, "revoked")
    assert event["system_code"] == code


@pytest.mark.parametrize(
    ("jimu", "reason"),
    [("", "no_jimu"), ("no_such_jimu", "unknown_jimu"), ("zeimu", "jimu_not_allowed")],
)
def test_missing_unknown_or_disallowed_jimu_is_refused_and_logged(linkage, jimu, reason):
    token = linkage.issue("kenshin")
    event = _expect_refused(linkage, linkage.client_for(token, jimu), reason)
    assert event["system_code"] == "kenshin"
    assert event["jimu_code"] in ("", "?", "zeimu")


def test_every_call_is_logged_without_the_my_number(linkage):
    number = synthetic_my_number()
    mark = linkage.last_event_id()
    client = linkage.client
    reg = client.register(synthetic_atena(number), actor=STAFF)
    unified = reg.unified_atena_no
    client.find_by_my_number(number, actor=STAFF)
    client.atenas_of(unified, actor=STAFF)
    client.person(unified, actor=STAFF)
    client.masked_my_number(unified, actor=STAFF)
    client.reveal_my_number(unified, actor=STAFF, purpose="inquiry")
    events = linkage.events(mark)
    assert [e["operation"] for e in events] == [
        "register",
        "find_by_my_number",
        "atenas_of",
        "person",
        "masked_my_number",
        "reveal_my_number",
    ]
    for e in events:
        assert (e["system_code"], e["jimu_code"], e["actor"]) == ("kenshin", JIMU, STAFF)
        assert e["unified_atena_no"] == unified
        assert e["result"] == "ok"
    text = json.dumps(events, default=str, ensure_ascii=False)
    assert number not in text
    assert number[:4] + " " + number[4:8] not in text


def test_merge_needs_a_second_person_and_unmerge_restores(linkage):
    client = linkage.client
    keep_atena, gone_atena = synthetic_atena(), synthetic_atena(synthetic_my_number())
    keep = client.register(keep_atena, actor=STAFF).unified_atena_no
    gone = client.register(gone_atena, actor=STAFF).unified_atena_no
    number = gone_atena.my_number

    req = client.request_merge(keep, gone, actor=STAFF, reason="同一人物（住基で確認）")
    assert (req.kind, req.status, req.survivor, req.absorbed) == ("merge", "pending", keep, gone)
    with pytest.raises(Conflict):
        client.decide_merge(req.id, actor=STAFF, approve=True)
    done = client.decide_merge(req.id, actor=OTHER_STAFF, approve=True)
    assert (done.status, done.decided_by) == ("applied", OTHER_STAFF)

    assert client.find_by_atena(gone_atena.atena_no, actor=STAFF) == keep
    assert client.find_by_my_number(number, actor=STAFF) == keep
    assert client.person(gone, actor=STAFF).merged_into == keep
    assert {r.atena_no for r in client.atenas_of(keep, actor=STAFF)} == {
        keep_atena.atena_no,
        gone_atena.atena_no,
    }
    assert client.reveal_my_number(keep, actor=STAFF, purpose="inquiry") == number

    undo = client.request_unmerge(req.id, actor=OTHER_STAFF, reason="別人と判明")
    with pytest.raises(Conflict):
        client.decide_merge(undo.id, actor=OTHER_STAFF, approve=True)
    client.decide_merge(undo.id, actor=STAFF, approve=True)

    assert client.find_by_atena(gone_atena.atena_no, actor=STAFF) == gone
    assert client.find_by_my_number(number, actor=STAFF) == gone
    assert client.person(gone, actor=STAFF).merged_into is None
    assert client.person(keep, actor=STAFF).has_my_number is False
    history = client.merges(actor=STAFF, unified_atena_no=gone)
    assert [(m.kind, m.status) for m in history] == [("unmerge", "applied"), ("merge", "applied")]


def test_merge_of_two_people_with_different_my_numbers_is_refused(linkage_client):
    a = linkage_client.register(synthetic_atena(synthetic_my_number()), actor=STAFF)
    b = linkage_client.register(synthetic_atena(synthetic_my_number()), actor=STAFF)
    with pytest.raises(Conflict) as error:
        linkage_client.request_merge(
            a.unified_atena_no, b.unified_atena_no, actor=STAFF, reason="確認"
        )
    assert "個人番号" in str(error.value)


def test_rejected_merge_changes_nothing(linkage_client):
    a = linkage_client.register(synthetic_atena(), actor=STAFF).unified_atena_no
    b_atena = synthetic_atena()
    b = linkage_client.register(b_atena, actor=STAFF).unified_atena_no
    req = linkage_client.request_merge(a, b, actor=STAFF, reason="確認")
    assert linkage_client.decide_merge(req.id, actor=OTHER_STAFF, approve=False).status == (
        "rejected"
    )
    assert linkage_client.find_by_atena(b_atena.atena_no, actor=STAFF) == b


def test_unified_numbers_are_never_reused_after_a_merge(linkage_client):
    a = linkage_client.register(synthetic_atena(), actor=STAFF).unified_atena_no
    b = linkage_client.register(synthetic_atena(), actor=STAFF).unified_atena_no
    req = linkage_client.request_merge(a, b, actor=STAFF, reason="同一人物")
    linkage_client.decide_merge(req.id, actor=OTHER_STAFF, approve=True)
    later = [linkage_client.register(synthetic_atena(), actor=STAFF).unified_atena_no for _ in "xy"]
    assert not {a, b} & set(later)
    assert min(later) > max(a, b)
