"""Separate the linkage database from the main application's role (MN-01; ``grant-roles``).

Why: keeping 個人番号 in its own database only helps if the main application cannot reach it.
On PostgreSQL, ``grant_roles`` makes the linkage database reachable by the linkage server's
role alone: CONNECT is revoked from PUBLIC and from the main role, every linkage table and
sequence is revoked from both, and the linkage role gets exactly what the server needs —
with no UPDATE/DELETE on the access log and no DELETE on 統合宛名番号 or the counter (the
triggers of schema.py refuse those too; two independent locks). Rerun after each
``kenshin linkage migrate``: default privileges cover new tables made by the same owner, and
rerunning costs nothing. It must run as the database's owner (or a superuser) — only they
can revoke — and it checks the result: if the main role could still connect or read a table,
nothing is changed and it fails. The runtime role of the linkage server should not own the
tables (an owner can drop triggers and grants); a warning says so when it does.

On SQLite the separation is the separate file: it is made readable by its owner only (0600),
and the linkage server should run as a different OS user from the main application.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections

from kenshin.linkage import schema
from kenshin.linkage.models import DB

_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

# What the linkage server may do per table; any table not named here gets the full DML set.
_TABLE_PRIVILEGES = {
    schema.EVENT_TABLE: "SELECT, INSERT",
    schema.PERSON_TABLE: "SELECT, INSERT, UPDATE",
    schema.COUNTER_TABLE: "SELECT, INSERT, UPDATE",
    "django_migrations": "SELECT",
}
_DEFAULT_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


class ProvisionError(RuntimeError):
    """grant-roles was refused; Japanese message for the operator."""


@dataclass
class ProvisionResult:
    vendor: str
    statements: list[str] = field(default_factory=list)  # SQL run (or to run, dry run)
    notes: list[str] = field(default_factory=list)  # what was done / what to do
    warnings: list[str] = field(default_factory=list)  # separation that does not hold
    applied: bool = False


def _check_role(name: str, what: str, option: str) -> None:
    if not name:
        raise ProvisionError(f"{what}のロールを {option} で指定してください")
    if not _ROLE.match(name):
        raise ProvisionError(f"{what}のロール名「{name}」は使えません（英数字と _ のみ）")


def grant_statements(
    *, database: str, schema_name: str, tables: list[str], linkage_role: str, main_role: str, q
) -> list[str]:
    """The SQL that leaves the linkage database to ``linkage_role`` alone (``q`` quotes)."""
    db, sch, lnk, main = q(database), q(schema_name), q(linkage_role), q(main_role)
    sql = [
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        f"REVOKE ALL ON DATABASE {db} FROM {main}",
        f"GRANT CONNECT ON DATABASE {db} TO {lnk}",
        f"REVOKE ALL ON SCHEMA {sch} FROM PUBLIC",
        f"REVOKE ALL ON SCHEMA {sch} FROM {main}",
        f"GRANT USAGE ON SCHEMA {sch} TO {lnk}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM PUBLIC",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM {main}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sch} FROM PUBLIC",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sch} FROM {main}",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {sch} FROM PUBLIC",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {sch} FROM {main}",
    ]
    for table in sorted(tables):
        privileges = _TABLE_PRIVILEGES.get(table, _DEFAULT_PRIVILEGES)
        sql.append(f"GRANT {privileges} ON TABLE {sch}.{q(table)} TO {lnk}")
    sql += [
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {sch} TO {lnk}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {sch} GRANT {_DEFAULT_PRIVILEGES} ON TABLES TO {lnk}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {sch} GRANT USAGE, SELECT ON SEQUENCES TO {lnk}",
    ]
    return sql


def grant_roles(
    *, linkage_role: str = "", main_role: str = "", dry_run: bool = False, using: str = DB
) -> ProvisionResult:
    """Apply (or, dry run, only list) the separation of the linkage database."""
    conn = connections[using]
    if conn.vendor == "sqlite":
        return sqlite_file(str(conn.settings_dict["NAME"]), dry_run=dry_run)
    if conn.vendor != "postgresql":  # pragma: no cover
        raise ProvisionError(f"{conn.vendor} には対応していません")
    _check_role(linkage_role, "番号連携サーバ", "--linkage-role")
    _check_role(main_role, "主系アプリ", "--main-role")
    if linkage_role == main_role:
        raise ProvisionError("番号連携サーバと主系アプリには別のロールを指定してください")
    database = conn.settings_dict["NAME"]
    with conn.cursor() as cur:
        cur.execute("SELECT current_schema()")
        schema_name = cur.fetchone()[0]
        tables = [t.name for t in conn.introspection.get_table_list(cur) if t.type in ("t", "p")]
        cur.execute(
            "SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)", [linkage_role, main_role]
        )
        existing = {row[0] for row in cur.fetchall()}
    result = ProvisionResult(vendor="postgresql")
    result.statements = grant_statements(
        database=database,
        schema_name=schema_name,
        tables=tables,
        linkage_role=linkage_role,
        main_role=main_role,
        q=conn.ops.quote_name,
    )
    missing = [r for r in (linkage_role, main_role) if r not in existing]
    if missing:
        message = "ロール {} がありません。先に CREATE ROLE で作成してください".format(
            "・".join(missing)
        )
        if not dry_run:
            raise ProvisionError(message)
        result.warnings.append(message)
        return result
    if not dry_run:
        from django.db import transaction

        _require_owner(conn, database)
        with transaction.atomic(using=using), conn.cursor() as cur:
            for statement in result.statements:
                cur.execute(statement)
            # A REVOKE by a role that may not grant the privilege is only a warning in
            # PostgreSQL: check the result inside the transaction, and undo it all if the main
            # role could still connect or read.
            _verify_separation(cur, database, tables, main_role)
        result.applied = True
        result.notes.append(
            f"データベース {database} は {linkage_role} だけが接続できるようにしました。"
            "kenshin linkage migrate の後にもう一度実行してください"
        )
    result.warnings += _pg_weak_points(conn, database, linkage_role, main_role)
    return result


def _require_owner(conn, database: str) -> None:
    """grant-roles must run as the database's owner (or a superuser): only they can revoke."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
            "OR pg_has_role(current_user, datdba, 'USAGE') FROM pg_database WHERE datname = %s",
            [database],
        )
        allowed = cur.fetchone()[0]
    if not allowed:
        raise ProvisionError(
            f"grant-roles はデータベース {database} の所有者のロール（またはスーパーユーザー）で"
            "実行してください（docs/linkage.md 4 章）。このロールでは権限を外せません"
        )


def _verify_separation(cur, database: str, tables: list[str], main_role: str) -> None:
    """Raise (rolling the grants back) unless the main role can neither connect nor read."""
    cur.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", [main_role, database])
    leaks = ["CONNECT"] if cur.fetchone()[0] else []
    for table in tables:
        cur.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')",
            [main_role, table],
        )
        if cur.fetchone()[0]:
            leaks.append(table)
    if leaks:
        raise ProvisionError(
            f"主系アプリのロール {main_role} の権限を外せませんでした（{', '.join(leaks[:5])}）。"
            "何も変更していません"
        )


def _pg_weak_points(conn, database: str, linkage_role: str, main_role: str) -> list[str]:
    """Ways the main role could still reach the linkage data despite the grants."""
    found = []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rolsuper, pg_has_role(%s, %s, 'MEMBER'), "
            "(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s), current_user "
            "FROM pg_roles WHERE rolname = %s",
            [main_role, linkage_role, database, main_role],
        )
        is_super, is_member, owner, current = cur.fetchone()
    if is_super:
        found.append(
            f"主系アプリのロール {main_role} はスーパーユーザーです。権限に関係なく読めます"
        )
    if is_member:
        found.append(f"主系アプリのロール {main_role} は {linkage_role} のメンバーです")
    if owner == main_role:
        found.append(f"データベース {database} の所有者が主系アプリのロール {main_role} です")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
            "AND tableowner = %s",
            [linkage_role],
        )
        owned = cur.fetchone()[0]
    if owned or owner == linkage_role:
        found.append(
            f"番号連携サーバの実行ロール {linkage_role} が表やデータベースの所有者です。"
            "所有者は権限やトリガーを外せるため、追記専用のログを守れません。"
            "所有者（migrate と grant-roles を行うロール）と実行ロールを分けてください"
        )
    if current == main_role:
        found.append(
            f"番号連携データベースに主系アプリのロール {main_role} で接続しています"
            "（KENSHIN_LINKAGE_DATABASE_URL）"
        )
    return found


def sqlite_file(name: str, *, dry_run: bool = False) -> ProvisionResult:
    """SQLite: the separate file, made readable by its owner only (with its WAL files)."""
    result = ProvisionResult(vendor="sqlite")
    result.notes.append(
        "SQLite では、番号連携データベースは主系とは別のファイルです。分離はファイルと"
        "その権限で行います（ロールはありません）。番号連携サーバ（kenshin linkage serve）を"
        "主系アプリと別の OS ユーザーで動かすと、主系からは読めません"
    )
    if name == ":memory:" or "mode=memory" in name:
        result.notes.append("メモリ上のデータベースのため、ファイルの権限は変更しません")
        return result
    files = [Path(name + suffix) for suffix in ("", "-wal", "-shm") if Path(name + suffix).exists()]
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        if dry_run:
            result.notes.append(f"{path}: {oct(mode)} → 0o600 にします（--dry-run のため未変更）")
        elif mode != 0o600:
            os.chmod(path, 0o600)
            result.notes.append(f"{path}: {oct(mode)} → 0o600 にしました")
        else:
            result.notes.append(f"{path}: 0o600（所有者のみ）です")
    result.applied = not dry_run
    return result
