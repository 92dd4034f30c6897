"""`kenshin linkage credential …` in-process (call_command), and the one way events are written:
the spellings of a credential an operator may paste, rotation in one transaction, and every
event writer cleaning its actor."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kenshin.linkage import actions, gateway, rotation, testing
from kenshin.linkage.contract import Refused
from kenshin.linkage.models import LinkageEvent, SystemCredential
from kenshin.linkage.tests.conftest import synthetic_my_number

pytestmark = pytest.mark.django_db
DB = "linkage"


def linkage(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("linkage", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _spell(token: str, how: str) -> str:
    prefix, _ = gateway.parse_token(token)
    return {"prefix": prefix, "kl_prefix": f"kl_{prefix}", "token": token}[how]


@pytest.mark.parametrize("how", ["prefix", "kl_prefix", "token"])
def test_revoke_accepts_what_list_shows_what_the_docs_show_and_the_whole_token(how) -> None:
    token = testing.provision("kokuho_sys", ("kokuho",))
    prefix, secret = gateway.parse_token(token)
    listed, _ = linkage("credential", "list", "--system", "kokuho_sys")
    assert listed.split("\t")[0] == prefix  # what `list` shows is the bare prefix

    out, err = linkage("credential", "revoke", _spell(token, how))

    assert prefix in out
    assert secret not in out + err  # a pasted token's secret is never echoed
    assert SystemCredential.objects.get(prefix=prefix).revoked_at is not None
    with pytest.raises(Refused, match="失効"):
        gateway.authenticate(token, "kokuho", "a", "test")
    event = LinkageEvent.objects.using(DB).filter(operation="credential_revoke").last()
    assert event.detail == {"credential": prefix}


def test_revoke_of_an_unknown_credential_is_an_operator_error() -> None:
    with pytest.raises(CommandError, match="見つかりません"):
        linkage("credential", "revoke", "kl_0123456789ab")


@pytest.mark.parametrize("how", ["prefix", "kl_prefix", "token"])
def test_rotate_issues_a_new_credential_and_keeps_the_old_until_revoked(how) -> None:
    old = testing.provision("kaigo_sys", ("kaigo",))
    out, err = linkage("credential", "rotate", _spell(old, how))
    new = out.strip()
    assert gateway.parse_token(new) is not None and new != old
    assert gateway.parse_token(old)[1] not in out + err
    assert gateway.authenticate(new, "kaigo", "a", "test").system_code == "kaigo_sys"
    assert gateway.authenticate(old, "kaigo", "a", "test").system_code == "kaigo_sys"
    assert "有効のまま" in err


def test_rotate_with_revoke_old_switches_in_one_go() -> None:
    old = testing.provision("kaigo_sys", ("kaigo",))
    out, _ = linkage("credential", "rotate", _spell(old, "kl_prefix"), "--revoke-old")
    assert gateway.authenticate(out.strip(), "kaigo", "a", "test").system_code == "kaigo_sys"
    with pytest.raises(Refused):
        gateway.authenticate(old, "kaigo", "a", "test")


def test_rotate_is_one_transaction(monkeypatch) -> None:
    """If revoking the old credential fails, the new one was never issued either."""
    old = testing.provision("kaigo_sys", ("kaigo",))
    before = SystemCredential.objects.count()
    events = LinkageEvent.objects.using(DB).count()

    def fail(cred, actor):
        raise RuntimeError("revoke failed")

    monkeypatch.setattr(actions, "_revoke", fail)
    with pytest.raises(RuntimeError):
        actions.rotate_credential(gateway.parse_token(old)[0], actor="admin", revoke_old=True)
    assert SystemCredential.objects.count() == before
    assert LinkageEvent.objects.using(DB).count() == events


def test_vault_sub_commands_are_dispatched() -> None:
    out, _ = linkage("keys", "status")
    assert "使用中の鍵" in out


# --- every event writer cleans its actor ---------------------------------------------------------


def test_a_key_event_actor_that_looks_like_a_my_number_is_stored_masked() -> None:
    number = synthetic_my_number()
    rotation.record_event("key_new", f"op {number}", "ok", {"key": 3})
    event = LinkageEvent.objects.using(DB).order_by("-id").first()
    assert number not in event.actor
    assert event.actor.startswith("op ")
    assert event.system_code == rotation.SYSTEM


def test_an_admin_event_actor_that_looks_like_a_my_number_is_stored_masked() -> None:
    number = synthetic_my_number()
    actions.register_system("kenpo_sys", "健保", ["kenko_zoshin"], actor=number)
    event = LinkageEvent.objects.using(DB).order_by("-id").first()
    assert event.operation == "system_add"
    assert number not in event.actor and event.actor


def test_event_values_clean_the_actor_for_the_bulk_path_too() -> None:
    number = synthetic_my_number()
    row = gateway.event_values(
        system_code="kenshin", actor=f"{number} " * 20, jimu="", operation="register"
    )
    fields = dict(zip(gateway.EVENT_FIELDS, row, strict=True))
    assert number not in fields["actor"]
    assert len(fields["actor"]) <= LinkageEvent._meta.get_field("actor").max_length
    gateway.insert_events([row])
    stored = LinkageEvent.objects.using(DB).order_by("-id").first()
    assert (stored.actor, stored.detail) == (fields["actor"], {})
