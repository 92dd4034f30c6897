"""State changes and the gateway of the linkage server: the edges the contract suite does not
reach (query counts, what is stored, conflicts inside a batch, credentials, the cache)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from kenshin.core import clock
from kenshin.linkage import actions, clients, crypto, gateway, rules, services, testing
from kenshin.linkage.contract import Conflict, InvalidInput, NotFound, Refused
from kenshin.linkage.models import (
    Atena,
    DuplicateCandidate,
    LinkageEvent,
    MergeRequest,
    MyNumber,
    NumberCounter,
    Person,
    SystemCredential,
)
from kenshin.linkage.tests.conftest import (
    JIMU,
    synthetic_atena,
    synthetic_my_number,
    wrong_check_digit,
)

pytestmark = pytest.mark.django_db
DB = "linkage"


@pytest.fixture
def caller(settings) -> gateway.Caller:
    return gateway.authenticate(settings.LINKAGE_CREDENTIAL, JIMU, "hokenshi_a", "test")


@pytest.fixture
def approver(settings) -> gateway.Caller:
    return gateway.authenticate(settings.LINKAGE_CREDENTIAL, JIMU, "hokenshi_b", "test")


def other_caller(code: str = "juki", jimu: str = "juki") -> gateway.Caller:
    token = testing.provision(code, (jimu,))
    return gateway.authenticate(token, jimu, "juki_batch", "test")


def same_five(atena, **changes):
    items = {
        "name": atena.name,
        "name_kana": atena.name_kana,
        "birth_date": atena.birth_date,
        "sex": atena.sex,
        "address": atena.address,
        **changes,
    }
    return synthetic_atena(**items)


# --- registration ---------------------------------------------------------------------------------


def _queries(caller, atenas) -> int:
    with CaptureQueriesContext(connections[DB]) as ctx:
        actions.register_many(caller, atenas)
    return len(ctx.captured_queries)


def test_register_many_costs_a_fixed_number_of_queries_not_one_per_row(caller):
    def batch(n):
        return [synthetic_atena(synthetic_my_number() if i % 2 else None) for i in range(n)]

    ten = _queries(caller, batch(10))
    assert ten <= 13
    # SQLite splits a bulk INSERT at 999 parameters (an Atena row has 11): a few more
    # statements for 200 rows, never one per row.
    assert _queries(caller, batch(200)) <= ten + 4
    # Updates of existing 宛名 add one bulk UPDATE, not one per row.
    first = batch(50)
    actions.register_many(caller, first)
    moved = [replace(a, address=a.address + "転居") for a in first]
    assert _queries(caller, moved) <= _queries(caller, batch(10)) + 2


def test_serials_come_from_one_counter_update_and_are_contiguous(caller):
    before = NumberCounter.objects.using(DB).filter(name="unified_atena_no").first()
    last = before.last if before else 0
    regs = actions.register_many(caller, [synthetic_atena() for _ in range(5)])
    serials = [rules.serial_of(r.unified_atena_no) for r in regs]
    assert serials == list(range(last + 1, last + 6))
    assert NumberCounter.objects.using(DB).get(name="unified_atena_no").last == last + 5


def test_my_number_is_stored_encrypted_for_its_row_with_a_blind_index(caller):
    number = synthetic_my_number()
    reg = actions.register(caller, synthetic_atena(number))
    person_id = rules.serial_of(reg.unified_atena_no)
    row = MyNumber.objects.using(DB).get(person_id=person_id)
    ring = crypto.keyring()
    assert number.encode() not in bytes(row.ciphertext)
    assert ring.decrypt(row.ciphertext, person_id) == number
    with pytest.raises(crypto.DecryptError):
        ring.decrypt(row.ciphertext, person_id + 1)
    assert bytes(row.blind_index) == ring.blind_index(number)
    assert row.key_id == ring.active_key_id


def test_one_event_per_registered_atena_and_never_the_number(caller):
    numbers = [synthetic_my_number() for _ in range(3)]
    mark = LinkageEvent.objects.using(DB).order_by("-id").values_list("id", flat=True).first()
    regs = actions.register_many(caller, [synthetic_atena(n) for n in numbers])
    events = list(LinkageEvent.objects.using(DB).filter(id__gt=mark).order_by("id"))
    assert [e.unified_atena_no for e in events] == [r.unified_atena_no for r in regs]
    assert {(e.operation, e.result, e.actor) for e in events} == {("register", "ok", "hokenshi_a")}
    text = json.dumps([e.detail for e in events])
    assert not any(n in text for n in numbers)


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"my_number": "wrong"}, "3件目: 個人番号の検査用数字が正しくありません"),
        ({"my_number": "12345"}, "3件目: 個人番号は12桁の数字で入力してください"),
        ({"name": ""}, "3件目: 名寄せの5項目がそろっていません（漢字氏名）"),
        ({"sex": 9}, "3件目: 名寄せの5項目がそろっていません（性別）"),
        ({"atena_no": " "}, "3件目: 宛名番号がありません"),
        ({"atena_no": "X" * 16}, "3件目: 宛名番号は15文字以内です"),
        ({"address": "長" * 201}, "3件目: 住所は200文字以内です"),
    ],
)
def test_an_invalid_row_refuses_the_whole_batch_and_names_only_its_position(
    caller, bad_row, message
):
    if bad_row.get("my_number") == "wrong":
        bad_row = {"my_number": wrong_check_digit(synthetic_my_number())}
    before = Person.objects.using(DB).count()
    rows = [synthetic_atena(), synthetic_atena(), synthetic_atena(**bad_row)]
    with pytest.raises(InvalidInput) as error:
        actions.register_many(caller, rows)
    assert str(error.value) == message
    assert Person.objects.using(DB).count() == before


def test_the_same_atena_twice_in_one_batch_is_refused(caller):
    a = synthetic_atena()
    with pytest.raises(InvalidInput, match="2件目: 同じ宛名番号"):
        actions.register_many(caller, [a, a])


def test_same_my_number_twice_in_a_batch_is_one_person(caller):
    number = synthetic_my_number()
    regs = actions.register_many(caller, [synthetic_atena(number), synthetic_atena(number)])
    assert [r.outcome for r in regs] == ["issued", "linked_my_number"]
    assert regs[0].unified_atena_no == regs[1].unified_atena_no


def test_five_items_twice_in_a_batch_is_one_person(caller):
    a = synthetic_atena()
    regs = actions.register_many(caller, [a, same_five(a)])
    assert [r.outcome for r in regs] == ["issued", "linked_five_items"]


def test_existing_atena_gets_a_my_number_attached_once(caller):
    atena = synthetic_atena()
    reg = actions.register(caller, atena)
    number = synthetic_my_number()
    again = actions.register(caller, replace(atena, my_number=number))
    assert (again.outcome, again.unified_atena_no) == ("existing", reg.unified_atena_no)
    assert (
        MyNumber.objects.using(DB).filter(person_id=rules.serial_of(reg.unified_atena_no)).exists()
    )


def test_existing_atena_with_someone_elses_my_number_is_a_conflict(caller):
    number = synthetic_my_number()
    actions.register(caller, synthetic_atena(number))
    atena = synthetic_atena()
    actions.register(caller, atena)
    retry = replace(atena, my_number=number)
    with pytest.raises(Conflict) as error:
        actions.register_many(caller, [synthetic_atena(), retry])
    assert str(error.value).startswith("2件目: ")
    assert number not in str(error.value)


def test_existing_atena_with_a_different_my_number_than_held_is_a_conflict(caller):
    atena = synthetic_atena(synthetic_my_number())
    actions.register(caller, atena)
    changed = replace(atena, my_number=synthetic_my_number())
    with pytest.raises(Conflict, match="1件目: この宛名の団体内統合宛名番号には別の個人番号"):
        actions.register(caller, changed)


def test_existing_atena_updates_changed_items_only(caller):
    atena = synthetic_atena()
    actions.register(caller, atena)
    row = Atena.objects.using(DB).get(system_id=caller.system_id, atena_no=atena.atena_no)
    moved = replace(atena, address="広島県呉市転居先2番地")
    actions.register(caller, moved)
    row2 = Atena.objects.using(DB).get(pk=row.pk)
    assert row2.address == "広島県呉市転居先2番地"
    assert row2.match_key != row.match_key


def test_five_item_match_attaches_a_my_number_to_a_person_without_one(caller):
    atena = synthetic_atena()
    reg = actions.register(caller, atena)
    number = synthetic_my_number()
    linked = actions.register(other_caller(), same_five(atena, my_number=number))
    assert (linked.outcome, linked.unified_atena_no) == ("linked_five_items", reg.unified_atena_no)
    client = clients.InProcessClient(testing.provision(), JIMU)
    assert client.find_by_my_number(number, actor="x") == reg.unified_atena_no


def test_several_five_item_matches_issue_a_new_number_and_candidates(caller, approver):
    a = synthetic_atena(synthetic_my_number())
    b = same_five(a, my_number=synthetic_my_number())  # a namesake twin with another number
    ra, rb = actions.register(caller, a), actions.register(caller, b)
    assert (rb.outcome, rb.duplicate_suspected) == ("issued", True)
    rc = actions.register(other_caller(), same_five(a))
    assert (rc.outcome, rc.duplicate_suspected) == ("issued", True)
    serials = sorted(rules.serial_of(r.unified_atena_no) for r in (ra, rb, rc))
    pairs = set(
        DuplicateCandidate.objects.using(DB)
        .filter(person_a_id__in=serials)
        .values_list("person_a_id", "person_b_id", "basis")
    )
    assert pairs == {
        (serials[0], serials[1], "five_items"),
        (serials[0], serials[2], "five_items"),
        (serials[1], serials[2], "five_items"),
    }


# --- merge and unmerge ----------------------------------------------------------------------------


def _merge(caller, approver, keep, gone):
    req = actions.request_merge(caller, keep, gone, "同一人物")
    return actions.decide_merge(approver, req.id, True)


def test_merge_moves_atenas_and_re_encrypts_the_my_number_for_the_survivor(caller, approver):
    number = synthetic_my_number()
    keep = actions.register(caller, synthetic_atena()).unified_atena_no
    gone_atena = synthetic_atena(number)
    gone = actions.register(caller, gone_atena).unified_atena_no
    actions.register(caller, same_five(gone_atena))  # five-item link: same person, 2 宛名
    DuplicateCandidate.objects.using(DB).create(
        person_a_id=rules.serial_of(keep),
        person_b_id=rules.serial_of(gone),
        basis="five_items",
        found_at=clock.now(),
    )
    done = _merge(caller, approver, keep, gone)
    keep_id, gone_id = rules.serial_of(keep), rules.serial_of(gone)
    req = MergeRequest.objects.using(DB).get(pk=done.id)
    assert req.moved["my_number"] is True
    assert len(req.moved["atenas"]) == 2
    row = MyNumber.objects.using(DB).get(person_id=keep_id)
    assert crypto.keyring().decrypt(row.ciphertext, keep_id) == number
    assert not MyNumber.objects.using(DB).filter(person_id=gone_id).exists()
    assert Person.objects.using(DB).get(pk=gone_id).merged_into_id == keep_id
    assert DuplicateCandidate.objects.using(DB).get(person_b_id=gone_id).resolution == "merged"


def test_unmerge_moves_back_exactly_what_the_merge_moved(caller, approver):
    keep_atena, gone_atena = synthetic_atena(), synthetic_atena()
    keep = actions.register(caller, keep_atena).unified_atena_no
    gone = actions.register(caller, gone_atena).unified_atena_no
    merge = _merge(caller, approver, keep, gone)
    later = synthetic_atena()
    later_reg = actions.register(caller, later)
    Atena.objects.using(DB).filter(atena_no=later.atena_no).update(
        person_id=rules.serial_of(keep)
    )  # a 宛名 that joined the survivor after the merge
    undo = actions.request_unmerge(approver, merge.id, "別人")
    actions.decide_merge(caller, undo.id, True)
    owner = dict(Atena.objects.using(DB).values_list("atena_no", "person_id"))
    assert owner[gone_atena.atena_no] == rules.serial_of(gone)
    assert owner[keep_atena.atena_no] == rules.serial_of(keep)
    assert owner[later.atena_no] == rules.serial_of(keep)
    assert later_reg.unified_atena_no not in (keep, gone)
    assert MergeRequest.objects.using(DB).filter(pk__in=[merge.id, undo.id]).count() == 2


@pytest.mark.parametrize("case", ["same", "merged", "both_numbers", "pending"])
def test_merge_requests_that_cannot_be_asked(caller, approver, case):
    a = actions.register(caller, synthetic_atena(synthetic_my_number())).unified_atena_no
    b = actions.register(caller, synthetic_atena()).unified_atena_no
    if case == "same":
        with pytest.raises(InvalidInput):
            actions.request_merge(caller, a, a, "理由")
    elif case == "merged":
        c = actions.register(caller, synthetic_atena()).unified_atena_no
        _merge(caller, approver, a, b)
        with pytest.raises(Conflict):
            actions.request_merge(caller, c, b, "理由")
    elif case == "both_numbers":
        c = actions.register(caller, synthetic_atena(synthetic_my_number())).unified_atena_no
        with pytest.raises(Conflict, match="別人の個人番号"):
            actions.request_merge(caller, a, c, "理由")
    else:
        actions.request_merge(caller, a, b, "理由")
        with pytest.raises(Conflict, match="承認待ち"):
            actions.request_merge(caller, b, a, "理由")


def test_merge_needs_a_reason_and_a_known_number(caller):
    a = actions.register(caller, synthetic_atena()).unified_atena_no
    with pytest.raises(InvalidInput):
        actions.request_merge(caller, a, rules.unified_atena_no(10**13 - 1), "")
    with pytest.raises(NotFound):
        actions.request_merge(caller, a, rules.unified_atena_no(10**13 - 1), "理由")


def test_a_decided_request_cannot_be_decided_again(caller, approver):
    a = actions.register(caller, synthetic_atena()).unified_atena_no
    b = actions.register(caller, synthetic_atena()).unified_atena_no
    done = _merge(caller, approver, a, b)
    with pytest.raises(Conflict, match="すでに処理"):
        actions.decide_merge(approver, done.id, False)
    with pytest.raises(NotFound):
        actions.decide_merge(approver, 10**9, True)


def test_unmerge_refused_while_the_survivor_is_merged_into_a_third(caller, approver):
    a, b, c = (actions.register(caller, synthetic_atena()).unified_atena_no for _ in range(3))
    first = _merge(caller, approver, b, a)
    _merge(caller, approver, c, b)
    with pytest.raises(Conflict, match="先にその統合を取り消して"):
        actions.request_unmerge(caller, first.id, "別人")
    client = clients.InProcessClient(testing.provision(), JIMU)
    assert client.person(a, actor="x").merged_into == c  # chains resolve to the live number


def test_unmerge_twice_is_refused(caller, approver):
    a, b = (actions.register(caller, synthetic_atena()).unified_atena_no for _ in range(2))
    merge = _merge(caller, approver, a, b)
    undo = actions.request_unmerge(caller, merge.id, "別人")
    actions.decide_merge(approver, undo.id, True)
    with pytest.raises(Conflict):
        actions.request_unmerge(caller, merge.id, "別人")


# --- systems, credentials and the gateway ---------------------------------------------------------


def test_credential_is_shown_once_and_stored_as_a_hash():
    testing.provision("zeimu_sys", ("zeimu",))
    token = actions.issue_credential("zeimu_sys", actor="admin")
    prefix, secret = gateway.parse_token(token)
    row = SystemCredential.objects.using(DB).get(prefix=prefix)
    assert row.secret_hash == gateway.secret_hash(secret)
    assert secret not in row.secret_hash
    listed = [c for c in actions.list_credentials("zeimu_sys") if c["prefix"] == prefix]
    assert listed and set(listed[0]) == {
        "prefix", "system", "created", "created_by", "expires", "revoked",
    }  # fmt: skip
    assert secret not in repr(listed)


def test_unknown_system_or_jimu_in_administration():
    with pytest.raises(NotFound):
        actions.issue_credential("no_such_system", actor="admin")
    with pytest.raises(InvalidInput):
        actions.register_system("x_sys", "X", ["no_such_jimu"], actor="admin")
    with pytest.raises(InvalidInput):
        actions.register_system("X-Sys", "X", ["juki"], actor="admin")
    with pytest.raises(NotFound):
        actions.revoke_credential("000000000000", actor="admin")


def test_revocation_takes_effect_at_once_in_this_process():
    token = testing.provision("kokuho_sys", ("kokuho",))
    gateway.authenticate(token, "kokuho", "a", "test")  # now cached
    actions.revoke_credential(gateway.parse_token(token)[0], actor="admin")
    with pytest.raises(Refused, match="失効"):
        gateway.authenticate(token, "kokuho", "a", "test")


def test_rotation_issues_a_new_credential_and_may_revoke_the_old():
    old = testing.provision("kaigo_sys", ("kaigo",))
    new = actions.rotate_credential(gateway.parse_token(old)[0], actor="admin", revoke_old=True)
    assert gateway.authenticate(new, "kaigo", "a", "test").system_code == "kaigo_sys"
    with pytest.raises(Refused):
        gateway.authenticate(old, "kaigo", "a", "test")


def test_expired_credential_and_inactive_system_are_refused():
    testing.provision("juki_sys", ("juki",))
    expired = actions.issue_credential(
        "juki_sys", actor="admin", expires_at=clock.now() - timedelta(seconds=1)
    )
    with pytest.raises(Refused, match="有効期限"):
        gateway.authenticate(expired, "juki", "a", "test")
    token = actions.issue_credential("juki_sys", actor="admin")
    actions.register_system("juki_sys", "住基", ["juki"], actor="admin", active=False)
    gateway.forget_all()  # on_commit hook; the test transaction never commits
    with pytest.raises(Refused, match="停止"):
        gateway.authenticate(token, "juki", "a", "test")


def test_an_accepted_credential_is_cached_briefly(settings):
    token = settings.LINKAGE_CREDENTIAL
    gateway.authenticate(token, JIMU, "a", "test")
    with CaptureQueriesContext(connections[DB]) as ctx:
        gateway.authenticate(token, JIMU, "a", "test")
    assert ctx.captured_queries == []


def test_refusal_log_never_holds_a_token_or_a_my_number_look_alike(settings):
    number = synthetic_my_number()
    bad = settings.LINKAGE_CREDENTIAL[:-4] + "AAAA"
    with pytest.raises(Refused):
        gateway.authenticate(bad, number, "staff " + number, "find_by_my_number")
    event = LinkageEvent.objects.using(DB).latest("id")
    assert (event.result, event.detail, event.jimu_code) == (
        "refused",
        {"reason": "bad_secret"},
        "?",
    )
    text = json.dumps([event.actor, event.detail, event.jimu_code])
    assert number not in text
    assert gateway.parse_token(bad)[1] not in text


def test_missing_actor_is_refused(settings):
    with pytest.raises(Refused, match="操作者"):
        gateway.authenticate(settings.LINKAGE_CREDENTIAL, JIMU, " ", "person")


# --- services -------------------------------------------------------------------------------------


def test_client_uses_the_setting_then_the_file(settings, tmp_path):
    assert isinstance(services.client(), clients.InProcessClient)
    path = tmp_path / "credential"
    path.write_text(settings.LINKAGE_CREDENTIAL + "\n")
    settings.LINKAGE_CREDENTIAL_FILE = str(path)
    token, settings.LINKAGE_CREDENTIAL = settings.LINKAGE_CREDENTIAL, ""
    assert services.credential() == token
    path.unlink()
    with pytest.raises(services.NotConfigured):
        services.client()


def test_client_speaks_http_when_a_url_is_set(settings):
    settings.LINKAGE_URL = "http://127.0.0.1:9/"
    client = services.client()
    try:
        assert type(client).__name__ == "HttpClient"
    finally:
        client.close()


def test_embedded_setup_writes_a_private_credential_file_once(settings, tmp_path):
    settings.LINKAGE_CREDENTIAL = ""
    settings.LINKAGE_CREDENTIAL_FILE = str(tmp_path / "keys" / "linkage-credential")
    services.ensure_embedded_setup(actor="setup")
    path = tmp_path / "keys" / "linkage-credential"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = path.read_text().strip()
    count = SystemCredential.objects.using(DB).count()
    services.ensure_embedded_setup(actor="setup")
    assert path.read_text().strip() == token
    assert SystemCredential.objects.using(DB).count() == count
    client = services.client()
    reg = client.register(synthetic_atena(), actor="setup")
    assert reg.outcome == "issued"


def test_lean_sql_names_match_the_models():
    expected = {
        "linkage_person": Person,
        "linkage_mynumber": MyNumber,
        "linkage_atena": Atena,
        "linkage_linkageevent": LinkageEvent,
    }
    for table, model in expected.items():
        assert model._meta.db_table == table
    assert Person._meta.get_field("merged_into").column == "merged_into_id"
    assert MyNumber._meta.get_field("person").column == "person_id"
    assert Atena._meta.get_field("system").column == "system_id"
    for sql in (clients.SQL_BY_NUMBER, clients.SQL_BY_ATENA, clients.SQL_ATENAS, gateway.EVENT_SQL):
        assert "%s" in sql


def test_embedded_setup_refuses_a_stale_credential_from_the_environment(settings, tmp_path):
    settings.LINKAGE_CREDENTIAL_FILE = str(tmp_path / "linkage-credential")
    actions.revoke_credential(gateway.parse_token(settings.LINKAGE_CREDENTIAL)[0], actor="x")
    with pytest.raises(services.NotConfigured):
        services.ensure_embedded_setup(actor="setup")
    assert not (tmp_path / "linkage-credential").exists()


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="SQLite serialises writers by itself (BEGIN IMMEDIATE)",
)
@pytest.mark.django_db(transaction=True, databases=["default", "linkage"])
def test_concurrent_batches_with_the_same_new_my_number_make_one_person(settings):
    """Two feeds registering the same new person at the same instant: the counter lock
    serialises them, so the second links instead of issuing a second number. Round 1 starts
    without a counter row (the very first registration), round 2 with one."""
    import threading

    token = settings.LINKAGE_CREDENTIAL
    for _round in range(2):
        number = synthetic_my_number()
        barrier = threading.Barrier(2)
        results, errors = [], []

        def work(actor: str, number=number, barrier=barrier, results=results, errors=errors):
            try:
                caller = gateway.authenticate(token, JIMU, actor, "register")
                barrier.wait(timeout=10)
                results.append(actions.register(caller, synthetic_atena(number)))
            except Exception as e:  # reported by the assertion below
                errors.append(type(e).__name__)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=work, args=(f"feed_{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert sorted(r.outcome for r in results) == ["issued", "linked_my_number"]
        assert len({r.unified_atena_no for r in results}) == 1
