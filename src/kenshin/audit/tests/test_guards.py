"""Append-only guards: the database itself refuses UPDATE, DELETE and TRUNCATE (LOG-02).

The head row may only step forward from itself; DELETE and TRUNCATE of it are refused.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from kenshin.audit import schema
from kenshin.audit.models import AuditEvent, ChainHead
from kenshin.core import audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged():
    for n in range(3):
        audit.record(audit.Event.VIEW, None, f"{n:012d}", "inquiry", function="residents.view")
    return list(AuditEvent.objects.order_by("seq"))


def _refused(fn) -> str:
    """Run fn in a savepoint; it must fail with the guards' message."""
    with pytest.raises(DatabaseError) as err, transaction.atomic():
        fn()
    assert "監査ログは追記のみです" in str(err.value)
    return str(err.value)


def _raw(sql: str):
    def run():
        with connection.cursor() as cur:
            cur.execute(sql)

    return run


def test_guards_are_installed_by_the_migrations():
    assert schema.installed(connection)


def test_orm_queryset_update_is_refused(logged):
    _refused(lambda: AuditEvent.objects.filter(seq=2).update(detail='{"x":1}'))
    assert AuditEvent.objects.get(seq=2).detail == logged[1].detail


def test_orm_save_of_an_existing_row_is_refused(logged):
    row = logged[0]
    row.username = "someone_else"
    _refused(row.save)
    assert AuditEvent.objects.get(seq=1).username == "system"


def test_raw_sql_update_is_refused(logged):
    _refused(_raw("UPDATE audit_auditevent SET result = 'failure' WHERE seq = 1"))
    _refused(_raw("UPDATE audit_auditevent SET result = 'failure'"))
    assert set(AuditEvent.objects.values_list("result", flat=True)) == {"success"}


def test_orm_delete_is_refused(logged):
    _refused(lambda: AuditEvent.objects.filter(seq=3).delete())
    _refused(logged[0].delete)
    assert AuditEvent.objects.count() == 3


def test_raw_sql_delete_is_refused(logged):
    _refused(_raw("DELETE FROM audit_auditevent WHERE seq = 2"))
    _refused(_raw("DELETE FROM audit_auditevent"))
    assert AuditEvent.objects.count() == 3


def test_truncate_is_refused_on_postgresql(logged):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (its DELETE FROM without WHERE is refused above)")
    _refused(_raw("TRUNCATE audit_auditevent"))
    assert AuditEvent.objects.count() == 3


def test_inserts_are_still_allowed(logged):
    audit.record(audit.Event.LOGOUT, None)
    assert AuditEvent.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_test_support_flush_lifts_the_guards_only_for_the_flush():
    # What pytest-django does after every transactional test: without kenshin.audit.testing
    # this flush would be refused by the guards (and so would the teardown of this test).
    audit.record(audit.Event.LOGIN, None)
    call_command("flush", interactive=False, verbosity=0)
    assert AuditEvent.objects.count() == 0
    assert schema.installed(connection)
    with connection.cursor() as cur:
        cur.execute("SELECT 1")  # the connection is usable
    audit.record(audit.Event.LOGIN, None)
    _refused(_raw("DELETE FROM audit_auditevent"))


# The head row: the application must UPDATE it on every append, so it is guarded by what the
# update does — one step forward from itself — rather than by refusing UPDATE outright.


def _head_refused(fn) -> str:
    with pytest.raises(DatabaseError) as err, transaction.atomic():
        fn()
    assert "監査ログの末尾の記録は1件ずつ進める以外に変更・削除できません" in str(err.value)
    return str(err.value)


def _head() -> tuple:
    return ChainHead.objects.values_list("seq", "prev_hash", "hash").get()


def test_setting_the_head_back_is_refused_and_appends_keep_working(logged):
    # Without the guard this one statement made every later append (every audited action)
    # fail on the duplicate seq: a denial of audit by anyone with the application's rights.
    before = _head()
    _head_refused(_raw("UPDATE audit_chainhead SET seq = 1 WHERE id = 1"))
    _head_refused(lambda: ChainHead.objects.update(seq=99))
    assert _head() == before
    audit.record(audit.Event.VIEW, None, "000000000001", "inquiry")
    assert _head()[0] == 4


def test_rewinding_the_head_over_deleted_rows_is_refused(logged):
    second = logged[1]
    _head_refused(
        lambda: ChainHead.objects.update(seq=2, prev_hash=second.prev_hash, hash=second.hash)
    )
    assert _head()[0] == 3


def test_a_head_step_that_does_not_link_to_the_old_hash_is_refused(logged):
    _head_refused(_raw("UPDATE audit_chainhead SET seq = seq + 1, hash = hash WHERE id = 1"))
    _head_refused(
        _raw("UPDATE audit_chainhead SET seq = seq + 1, prev_hash = prev_hash WHERE id = 1")
    )
    _head_refused(_raw("UPDATE audit_chainhead SET id = 2, seq = seq + 1, prev_hash = hash"))
    assert _head()[0] == 3


def test_deleting_the_head_is_refused(logged):
    _head_refused(_raw("DELETE FROM audit_chainhead"))
    _head_refused(lambda: ChainHead.objects.all().delete())
    assert ChainHead.objects.count() == 1


def test_truncating_the_head_is_refused_on_postgresql(logged):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    _head_refused(_raw("TRUNCATE audit_chainhead"))
    assert ChainHead.objects.count() == 1


def test_the_one_step_an_append_makes_is_allowed(logged):
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE audit_chainhead SET seq = seq + 1, prev_hash = hash, hash = %s WHERE id = 1",
            ["a" * 64],
        )
    assert _head() == (4, logged[-1].hash, "a" * 64)


def test_installed_reports_the_head_guards():
    assert schema.installed(connection)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("DROP TRIGGER audit_chainhead_no_delete ON audit_chainhead")
        else:
            cur.execute("DROP TRIGGER audit_chainhead_no_delete")
    assert schema.missing(connection) == ["audit_chainhead_no_delete"]
    assert not schema.installed(connection)
