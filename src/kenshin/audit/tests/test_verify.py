"""`kenshin audit verify` names the first broken row; `kenshin audit anchor` (LOG-02)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from kenshin.audit import chain, schema
from kenshin.audit.models import AuditEvent, ChainHead
from kenshin.audit.verify import Anchor, verify
from kenshin.core import audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def ten_rows():
    for n in range(10):
        audit.record(audit.Event.VIEW, None, f"{n:012d}", "inquiry", function="residents.view", n=n)


def behind_the_triggers_back(sql: str, params: list | None = None) -> None:
    """What someone with the schema owner's rights can do: lift the guards, edit, restore."""
    schema.remove(connection)
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
    schema.install(connection)


def run_verify(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", "verify", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as err:
        run_verify(*args)
    return str(err.value)


def test_an_intact_chain_is_accepted(ten_rows):
    out = run_verify()
    assert "監査ログは正常です" in out
    assert "番号 1〜10 の 10 行" in out


def test_an_empty_log_is_accepted():
    assert "0 行" in run_verify()


def test_editing_one_row_behind_the_triggers_back_is_reported_with_its_number(ten_rows):
    behind_the_triggers_back("UPDATE audit_auditevent SET purpose = 'other' WHERE seq = 6")
    message = refused()
    assert "番号 6:" in message
    assert "ハッシュと一致しません" in message


def test_editing_the_time_of_one_row_is_reported(ten_rows):
    row = AuditEvent.objects.get(seq=4)
    from datetime import timedelta

    later = connection.ops.adapt_datetimefield_value(row.at + timedelta(seconds=1))
    behind_the_triggers_back("UPDATE audit_auditevent SET at = %s WHERE seq = 4", [later])
    assert "番号 4:" in refused()


def test_a_row_rewritten_with_a_fresh_hash_breaks_the_link_of_the_next_row(ten_rows):
    row = AuditEvent.objects.filter(seq=3).values().get()
    row["result"] = "failure"
    forged = chain.row_hash(row["prev_hash"], row)
    behind_the_triggers_back(
        "UPDATE audit_auditevent SET result = 'failure', hash = %s WHERE seq = 3", [forged]
    )
    message = refused()
    assert "番号 4:" in message
    assert "つながりが切れています" in message


def test_deleting_a_row_in_the_middle_is_reported(ten_rows):
    behind_the_triggers_back("DELETE FROM audit_auditevent WHERE seq = 5")
    message = refused()
    assert "番号 5 の行がありません" in message


def test_deleting_rows_from_the_end_is_reported_against_the_head(ten_rows):
    behind_the_triggers_back("DELETE FROM audit_auditevent WHERE seq >= 9")
    message = refused()
    assert "番号 9〜10 の行がありません" in message


def test_the_last_row_rewritten_with_a_fresh_hash_is_reported_against_the_head(ten_rows):
    # No later row links to the last one: only the head row can betray this edit.
    row = AuditEvent.objects.filter(seq=10).values().get()
    row["user_id"], row["purpose"] = None, "audit"
    forged = chain.row_hash(row["prev_hash"], row)
    behind_the_triggers_back(
        "UPDATE audit_auditevent SET user_id = NULL, purpose = 'audit', hash = %s WHERE seq = 10",
        [forged],
    )
    report = verify()
    assert (report.problem.seq, report.problem.kind) == (10, "head")
    message = refused()
    assert "番号 10:" in message
    assert "末尾の記録（audit_chainhead）と一致しません" in message


def test_a_head_whose_prev_hash_was_changed_is_reported(ten_rows):
    behind_the_triggers_back("UPDATE audit_chainhead SET prev_hash = %s WHERE id = 1", ["f" * 64])
    assert "番号 10:" in refused()


def test_rows_beyond_the_head_are_reported(ten_rows):
    # A correctly hashed row 11 inserted without moving the head (appends would now collide).
    last = AuditEvent.objects.filter(seq=10).values().get()
    row = {**last, "seq": 11, "prev_hash": last["hash"]}
    row["hash"] = chain.row_hash(last["hash"], row)
    AuditEvent.objects.create(**row)
    report = verify()
    assert (report.problem.seq, report.problem.kind) == (11, "head")
    assert "番号 11 の行が末尾の記録" in refused()


def test_truncating_the_tail_and_rewinding_the_head_is_caught_by_the_anchor(ten_rows):
    # With the guards up the head cannot be rewound (test_guards). The owner of the schema
    # can drop them, delete rows 9-10 and rewind the head to row 8: a consistent chain that
    # only a copy kept outside the database can contradict.
    out = io.StringIO()
    call_command("audit", "anchor", stdout=out, stderr=io.StringIO())
    seq, digest, _ = out.getvalue().split()
    eight = AuditEvent.objects.get(seq=8)
    schema.remove(connection)
    with connection.cursor() as cur:
        cur.execute("DELETE FROM audit_auditevent WHERE seq > 8")
        cur.execute(
            "UPDATE audit_chainhead SET seq = 8, prev_hash = %s, hash = %s WHERE id = 1",
            [eight.prev_hash, eight.hash],
        )
    schema.install(connection)
    assert verify().ok  # the chain alone cannot tell …
    assert f"アンカーの番号 {seq} の行がありません" in refused("--from-anchor", f"{digest}@{seq}")


def test_truncating_the_tail_and_deleting_the_head_is_reported_and_not_rebuilt(ten_rows):
    behind_the_triggers_back("DELETE FROM audit_auditevent WHERE seq > 8")
    behind_the_triggers_back("DELETE FROM audit_chainhead")
    assert "末尾の記録（audit_chainhead）がありません" in refused()
    with pytest.raises(RuntimeError, match="audit_chainhead"), transaction.atomic():
        audit.record(audit.Event.VIEW, None, "000000000001", "inquiry")
    assert not ChainHead.objects.exists()  # still missing: verify keeps reporting it
    assert "末尾の記録（audit_chainhead）がありません" in refused()


def test_a_problem_in_a_later_batch_is_found(ten_rows):
    behind_the_triggers_back("UPDATE audit_auditevent SET username = 'x' WHERE seq = 8")
    report = verify(batch=3)
    assert (report.problem.seq, report.problem.kind, report.rows) == (8, "hash", 7)


def test_missing_guards_fail_verification(ten_rows):
    schema.remove(connection)
    assert "トリガー" in refused()


def test_a_missing_head_guard_fails_verification(ten_rows):
    name = "audit_chainhead_step_only"
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"DROP TRIGGER {name} ON audit_chainhead")
        else:
            cur.execute(f"DROP TRIGGER {name}")
    assert not schema.installed(connection)
    message = refused()
    assert "トリガー" in message
    assert name in message


def test_anchor_prints_seq_hash_and_jst_time_and_records_itself(ten_rows):
    out, err = io.StringIO(), io.StringIO()
    call_command("audit", "anchor", stdout=out, stderr=err)
    seq, digest, at = out.getvalue().strip().split(" ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00", at)
    row = AuditEvent.objects.get(seq=int(seq))
    assert (row.seq, row.hash, row.function) == (11, digest, "audit.anchor")
    assert "audit_anchor" in row.detail
    assert f"{digest}@{seq}" in err.getvalue()
    assert "アンカー（番号 11）とも一致しました" in run_verify("--from-anchor", f"{digest}@{seq}")


def test_a_chain_rebuilt_after_the_anchor_is_reported(ten_rows):
    out = io.StringIO()
    call_command("audit", "anchor", stdout=out, stderr=io.StringIO())
    seq, digest, _ = out.getvalue().split()
    # Rebuild everything from scratch: a consistent chain, but not the one anchored.
    behind_the_triggers_back("DELETE FROM audit_auditevent")
    behind_the_triggers_back("DELETE FROM audit_chainhead")
    for n in range(12):
        audit.record(audit.Event.VIEW, None, f"{n:012d}", "inquiry", n=n + 100)
    assert verify().ok  # the chain alone cannot tell …
    message = refused("--from-anchor", f"{digest}@{seq}")  # … the anchor can
    assert f"番号 {seq}:" in message
    assert "アンカー" in message


def test_an_anchor_beyond_the_end_is_reported(ten_rows):
    head = AuditEvent.objects.get(seq=10).hash
    assert "番号 10 の行がありません" not in refused("--from-anchor", f"{head}@12")
    assert "アンカーの番号 12 の行がありません" in refused("--from-anchor", f"{head}@12")


def test_a_malformed_anchor_is_explained():
    assert "ハッシュ@番号" in refused("--from-anchor", "abc")


def test_anchor_parse_accepts_upper_case_hex():
    assert Anchor.parse(("A" * 64) + "@3") == Anchor(3, "a" * 64)
