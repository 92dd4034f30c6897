"""個人番号 stays in the linkage database, and that database stays apart (MN-01).

- No model or migration outside ``linkage`` has a column for 個人番号 in any spelling.
- The router keeps linkage tables and everything else in their own databases.
- On PostgreSQL, after ``grant-roles`` the main application's role can neither connect to the
  linkage database nor touch any of its tables (``has_table_privilege``).
- The linkage database's own guards: the access log is append-only, 統合宛名番号 are never
  deleted, the number counter only counts up.
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.apps import apps
from django.db import DatabaseError, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import AddField, AlterField, CreateModel, RenameField, RunSQL
from django.utils import timezone

from kenshin.linkage import cli_vault, provision, schema
from kenshin.linkage.models import LinkageEvent, NumberCounter, Person

pytestmark = pytest.mark.django_db(databases=["default", "linkage"])

# 個人番号 in the spellings a column might take.
FORBIDDEN = re.compile(
    r"my[\s_\-]?number|kojin[\s_\-]?bango|kojin[\s_\-]?bangou|個人番号|マイナンバー|mynumber",
    re.IGNORECASE,
)
MAIN_ROLE, LINKAGE_ROLE = "kenshin_test_main", "kenshin_test_linkage"


def _field_words(name: str, field) -> list[str]:
    words = [name, str(getattr(field, "verbose_name", "") or ""), str(field.db_column or "")]
    return [w for w in words if w]


# ------------------------------------------------------------------------- no column elsewhere


def test_no_model_outside_linkage_has_a_my_number_field():
    offenders = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label == "linkage":
            continue
        for field in model._meta.get_fields():
            if not hasattr(field, "column"):
                continue
            for word in _field_words(field.name, field):
                if FORBIDDEN.search(word):
                    offenders.append(f"{model._meta.label}.{field.name} ({word})")
    assert offenders == []


def test_no_migration_outside_linkage_creates_a_my_number_column():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    offenders = []
    for (app_label, name), migration in loader.disk_migrations.items():
        if app_label == "linkage":
            continue
        for op in migration.operations:
            fields = []
            if isinstance(op, CreateModel):
                fields = list(op.fields)
            elif isinstance(op, (AddField, AlterField)):
                fields = [(op.name, op.field)]
            elif isinstance(op, RenameField):
                if FORBIDDEN.search(op.new_name):
                    offenders.append(f"{app_label}.{name}: rename to {op.new_name}")
            elif isinstance(op, RunSQL):
                sql = op.sql if isinstance(op.sql, str) else " ".join(map(str, op.sql))
                if FORBIDDEN.search(sql):
                    offenders.append(f"{app_label}.{name}: RunSQL")
            for field_name, field in fields:
                for word in _field_words(field_name, field):
                    if FORBIDDEN.search(word):
                        offenders.append(f"{app_label}.{name}: {field_name} ({word})")
    assert offenders == []
    assert any(label == "linkage" for label, _ in loader.disk_migrations)  # the scan saw them


# ------------------------------------------------------------------------- router


def _tables(alias: str) -> set[str]:
    conn = connections[alias]
    with conn.cursor() as cur:
        return {t.name for t in conn.introspection.get_table_list(cur) if t.type == "t"}


def test_router_keeps_linkage_tables_and_the_rest_apart():
    linkage_tables = {m._meta.db_table for m in apps.get_app_config("linkage").get_models()}
    in_linkage, in_default = _tables("linkage"), _tables("default")
    assert linkage_tables <= in_linkage
    assert in_linkage - linkage_tables <= {"django_migrations"}
    assert not (in_default & linkage_tables)
    assert (
        connections["linkage"].settings_dict["NAME"] != connections["default"].settings_dict["NAME"]
    )


# ------------------------------------------------------------------------- PostgreSQL roles


def _pg_only():
    if connections["linkage"].vendor != "postgresql":
        pytest.skip("PostgreSQL のロールと権限の検査（SQLite はファイルで分離します）")


@pytest.fixture
def roles():
    """Two NOLOGIN roles; created once, kept (roles are cluster-wide: a concurrent run of the
    suite on another database may be using them; they hold nothing once the test database is
    dropped)."""
    _pg_only()
    with connections["linkage"].cursor() as cur:
        for role in (MAIN_ROLE, LINKAGE_ROLE):
            cur.execute(
                f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
    return MAIN_ROLE, LINKAGE_ROLE


def _has(sql: str, params: list) -> bool:
    with connections["linkage"].cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def test_main_role_has_no_privilege_on_the_linkage_database(roles):
    main, linkage = roles
    db = connections["linkage"].settings_dict["NAME"]
    out, err = StringIO(), StringIO()
    code = cli_vault.handle(
        {"action": "grant-roles", "linkage_role": linkage, "main_role": main, "dry_run": False},
        out,
        err,
    )
    assert code == 0, err.getvalue()
    tables = sorted(_tables("linkage"))
    assert "linkage_mynumber" in tables
    for table in tables:
        assert not _has(
            "SELECT has_table_privilege(%s, %s, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES')",
            [main, table],
        ), table
        assert _has("SELECT has_table_privilege(%s, %s, 'SELECT')", [linkage, table]), table
    assert not _has("SELECT has_database_privilege(%s, %s, 'CONNECT')", [main, db])
    assert _has("SELECT has_database_privilege(%s, %s, 'CONNECT')", [linkage, db])
    assert not _has("SELECT has_schema_privilege(%s, 'public', 'USAGE')", [main])
    # PUBLIC (any other role) is shut out too: no ACL entry for grantee 0 on the database.
    assert not _has(
        "SELECT count(*) > 0 FROM pg_database, aclexplode(datacl) a "
        "WHERE datname = %s AND a.grantee = 0",
        [db],
    )
    # The linkage role may read and add, but not rewrite the access log or delete numbers.
    assert _has("SELECT has_table_privilege(%s, 'linkage_mynumber', 'UPDATE')", [linkage])
    assert not _has("SELECT has_table_privilege(%s, 'linkage_linkageevent', 'UPDATE')", [linkage])
    assert not _has("SELECT has_table_privilege(%s, 'linkage_person', 'DELETE')", [linkage])
    assert _has(
        "SELECT has_sequence_privilege(%s, 'linkage_linkageevent_id_seq', 'USAGE')", [linkage]
    )


def test_grant_roles_dry_run_prints_sql_and_changes_nothing(roles):
    main, linkage = roles
    out, err = StringIO(), StringIO()
    code = cli_vault.handle(
        {"action": "grant-roles", "linkage_role": linkage, "main_role": main, "dry_run": True},
        out,
        err,
    )
    assert code == 0
    text = out.getvalue()
    assert "REVOKE ALL ON DATABASE" in text and f'FROM "{main}"' in text
    assert f'GRANT CONNECT ON DATABASE "{connections["linkage"].settings_dict["NAME"]}"' in text


def test_grant_roles_refuses_missing_or_identical_roles():
    _pg_only()
    with pytest.raises(provision.ProvisionError):
        provision.grant_roles(linkage_role="kenshin_no_such_role", main_role="kenshin_nor_this")
    with pytest.raises(provision.ProvisionError):
        provision.grant_roles(linkage_role="same", main_role="same")
    with pytest.raises(provision.ProvisionError):
        provision.grant_roles(linkage_role='x"; DROP TABLE y; --', main_role="m")


def test_grant_roles_on_sqlite_explains_the_file_separation(tmp_path):
    if connections["linkage"].vendor != "sqlite":
        pytest.skip("SQLite の説明")
    out, err = StringIO(), StringIO()
    assert cli_vault.handle({"action": "grant-roles", "dry_run": False}, out, err) == 0
    assert "別のファイル" in out.getvalue()


def test_sqlite_grant_roles_makes_the_file_owner_only(tmp_path):
    """On a real file (not the in-memory test database): chmod 0600, WAL files too."""
    import sqlite3

    path = tmp_path / "linkage.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    for f in tmp_path.iterdir():
        f.chmod(0o644)
    assert provision.sqlite_file(str(path), dry_run=True).applied is False
    assert (path.stat().st_mode & 0o777) == 0o644
    result = provision.sqlite_file(str(path))
    db.close()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "linkage.sqlite3-wal").exists() is False or (
        (tmp_path / "linkage.sqlite3-wal").stat().st_mode & 0o777
    ) == 0o600
    assert any("0o600" in note for note in result.notes)


# ------------------------------------------------------------------------- guards


def _refused(work) -> None:
    with pytest.raises(DatabaseError), transaction.atomic(using="linkage"):
        work()


def test_guards_are_installed():
    assert schema.missing(connections["linkage"]) == []


def test_the_access_log_is_append_only():
    event = LinkageEvent.objects.create(
        at=timezone.now(), system_code="x", actor="a", jimu_code="j", operation="o", result="ok"
    )
    _refused(lambda: LinkageEvent.objects.filter(pk=event.pk).update(result="changed"))
    _refused(lambda: LinkageEvent.objects.filter(pk=event.pk).delete())
    assert LinkageEvent.objects.get(pk=event.pk).result == "ok"


def test_unified_numbers_are_never_deleted_but_merges_may_update_them():
    now = timezone.now()
    a = Person.objects.create(
        id=900001, municipality_code="341002", unified_atena_no="A1", created_at=now
    )
    b = Person.objects.create(
        id=900002, municipality_code="341002", unified_atena_no="B1", created_at=now
    )
    Person.objects.filter(pk=b.pk).update(merged_into=a)  # a merge
    Person.objects.filter(pk=b.pk).update(merged_into=None)  # and its undoing
    _refused(lambda: Person.objects.filter(pk=b.pk).delete())
    assert Person.objects.filter(pk__in=[a.pk, b.pk]).count() == 2


def test_the_number_counter_only_counts_up():
    NumberCounter.objects.create(name="test_counter", last=10)
    NumberCounter.objects.filter(name="test_counter").update(last=11)
    NumberCounter.objects.filter(name="test_counter").update(last=11)  # unchanged is fine
    _refused(lambda: NumberCounter.objects.filter(name="test_counter").update(last=5))
    _refused(lambda: NumberCounter.objects.filter(name="test_counter").update(name="other"))
    _refused(lambda: NumberCounter.objects.filter(name="test_counter").delete())
    assert NumberCounter.objects.get(name="test_counter").last == 11


@pytest.mark.django_db(databases=["default", "linkage"], transaction=True)
def test_transactional_tests_can_still_empty_the_guarded_tables():
    """The flush after this test must pass the guards (testing_guards plugin) and restore them."""
    LinkageEvent.objects.create(
        at=timezone.now(), system_code="x", actor="a", jimu_code="j", operation="o", result="ok"
    )
    Person.objects.create(
        id=900003, municipality_code="341002", unified_atena_no="C1", created_at=timezone.now()
    )
    NumberCounter.objects.create(name="flush_counter", last=3)
    assert schema.installed(connections["linkage"])


@pytest.mark.django_db(databases=["default", "linkage"], transaction=True)
def test_guards_are_back_after_the_flush():
    """Runs after the test above (pytest-django keeps transactional tests in file order)."""
    assert schema.installed(connections["linkage"])
    assert not Person.objects.filter(id=900003).exists()
    assert not NumberCounter.objects.filter(name="flush_counter").exists()
