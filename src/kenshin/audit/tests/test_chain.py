"""The chain as append writes it: canonical form, links, gap-free seq, rollback with the caller."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, transaction

from kenshin.audit import chain, schema, services
from kenshin.audit.models import AuditEvent, ChainHead
from kenshin.audit.verify import verify
from kenshin.core import audit
from kenshin.core.audit import Actor, Entry

FIELDS = {
    "seq": 7,
    "at": datetime(2026, 11, 26, 23, 40, 1, 5, tzinfo=timezone(timedelta(hours=9))),
    "municipality_code": "342025",
    "event": "view",
    "user_id": None,
    "username": "山田\\x0a",
    "roles": "hokenshi",
    "address": "10.0.0.1",
    "break_glass": 0,
    "function": "residents.view",
    "subject_kind": "resident",
    "subject_ref": "000000000123",
    "purpose": "inquiry",
    "result": "success",
    "detail": '{"a":"é"}',
}


def test_canonical_form_is_a_compact_json_array_in_the_fixed_order_with_utc_microseconds():
    expected = json.dumps(
        [7, "2026-11-26T14:40:01.000005Z", "342025", "view", None, "山田\\x0a", "hokenshi",
         "10.0.0.1", False, "residents.view", "resident", "000000000123", "inquiry", "success",
         '{"a":"é"}'],
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8")  # fmt: skip
    assert chain.canonical(FIELDS) == expected


def test_row_hash_known_answer_pins_the_format():
    # If this changes, every chain ever written stops verifying: change it only with a
    # migration path for old rows. (Checked independently with printf … | sha256sum.)
    assert chain.row_hash(chain.GENESIS, FIELDS) == (
        "42f56dd620af5116c3c2c52a5644494c6167919a11066324f532879475142620"
    )


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        chain.canonical_time(datetime(2026, 1, 1))


def _entry(n: int = 0, **detail) -> Entry:
    return Entry(
        at=datetime(2026, 11, 26, 5, 0, n % 60, n, tzinfo=UTC),
        event="view",
        actor=Actor(3, "hokenshi1", "hokenshi", "10.0.0.9", n % 2 == 0),
        subject_kind="resident",
        subject_ref=f"{n:012d}",
        purpose="inquiry",
        function="residents.view",
        result="success",
        detail=detail or {"n": n, "日本語": "値"},
    )


@pytest.mark.django_db
def test_appended_rows_link_to_their_predecessor_and_hash_their_own_fields():
    seqs = [services.append(_entry(n)) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    rows = list(AuditEvent.objects.order_by("seq").values())
    prev = chain.GENESIS
    for row in rows:
        assert row["prev_hash"] == prev
        assert row["hash"] == chain.row_hash(prev, row)  # the server's sha256 == Python's
        prev = row["hash"]
    head = ChainHead.objects.get()
    assert (head.seq, head.hash, head.prev_hash) == (5, rows[-1]["hash"], rows[-2]["hash"])
    assert verify().ok


@pytest.mark.django_db
def test_an_append_rolls_back_with_the_callers_transaction_and_leaves_no_gap():
    services.append(_entry(1))
    with pytest.raises(RuntimeError), transaction.atomic():
        services.append(_entry(2))
        raise RuntimeError("the action failed")
    assert services.append(_entry(3)) == 2
    assert list(AuditEvent.objects.values_list("seq", flat=True).order_by("seq")) == [1, 2]
    assert verify().ok


@pytest.mark.django_db
def test_record_goes_through_append_and_stores_the_canonical_detail():
    audit.record(audit.Event.SEARCH, None, function="residents.search", hits=3, b=1, a=2)
    row = AuditEvent.objects.get()
    assert row.detail == '{"a":2,"b":1,"hits":3}'
    assert (row.username, row.user_id, row.event) == ("system", None, "search")
    assert verify().ok


@pytest.mark.django_db
def test_a_missing_head_row_is_created_when_the_log_is_empty_too():
    # What a test flush (or a fresh database) leaves: no rows, no head. The guards are
    # lifted only to empty the head table, as the flush plugin does.
    schema.remove(connection)
    ChainHead.objects.all().delete()
    schema.install(connection)
    assert services.append(_entry(1)) == 1
    assert ChainHead.objects.get().seq == 1
    assert verify().ok


@pytest.mark.django_db
def test_a_missing_head_row_is_not_rebuilt_while_rows_exist():
    # Rebuilding the head from the remaining rows would hide rows deleted from the end:
    # append fails closed instead (and so does the audited action around it).
    services.append(_entry(1))
    services.append(_entry(2))
    schema.remove(connection)
    ChainHead.objects.all().delete()
    schema.install(connection)
    with pytest.raises(services.ChainHeadMissing, match="audit_chainhead"), transaction.atomic():
        services.append(_entry(3))
    assert not ChainHead.objects.exists()
    assert AuditEvent.objects.count() == 2
    assert "末尾の記録（audit_chainhead）がありません" in verify().problem.message


@pytest.mark.django_db
def test_stored_time_round_trips_to_the_same_canonical_text():
    services.append(_entry(0))
    at = AuditEvent.objects.get().at
    assert chain.canonical_time(at) == "2026-11-26T05:00:00.000000Z"
    assert connection.vendor in {"sqlite", "postgresql"}
