"""Database guards that make the audit table append-only (LOG-02).

Why triggers and not only Python: the log must resist anyone who reaches the database with the
application's credentials — a shell, a careless script, a future bug that calls ``.update()``.
Triggers refuse UPDATE and DELETE on ``audit_auditevent`` (and TRUNCATE on PostgreSQL, which
row triggers do not see) for every client. They do not stop the owner of the schema, who can
drop them; that is what the hash chain and the anchors are for (``verify``), and why production
should also run the application under a role without UPDATE/DELETE/TRUNCATE on the table
(docs/security.md).

``install`` / ``remove`` are called by migrations. ``remove`` exists for the migration's
reverse and for test support (``kenshin.audit.testing``); the application never calls it.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditevent"
MESSAGE = "監査ログは追記のみです。更新・削除はできません（{op}）"

_SQLITE_TRIGGERS = {
    "audit_auditevent_no_update": "UPDATE",
    "audit_auditevent_no_delete": "DELETE",
}

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '監査ログは追記のみです。更新・削除はできません（%）', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit_auditevent is append-only (kenshin LOG-02)';
END
$$
"""
# Statement-level: refused even when no row matches, and TRUNCATE is only seen at that level.
_PG_TRIGGERS = {
    "audit_auditevent_no_change": "BEFORE UPDATE OR DELETE",
    "audit_auditevent_no_truncate": "BEFORE TRUNCATE",
}


def install(connection: BaseDatabaseWrapper) -> None:
    """Create the guards (idempotent)."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(_PG_FUNCTION)
            for name, when in _PG_TRIGGERS.items():
                cur.execute(f"DROP TRIGGER IF EXISTS {name} ON {TABLE}")
                cur.execute(
                    f"CREATE TRIGGER {name} {when} ON {TABLE} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
                )
        elif connection.vendor == "sqlite":
            for name, op in _SQLITE_TRIGGERS.items():
                message = MESSAGE.format(op=op).replace("'", "''")
                cur.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {TABLE} "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                )
        else:  # pragma: no cover - only the two supported databases
            raise NotImplementedError(f"no audit guards for {connection.vendor}")


def remove(connection: BaseDatabaseWrapper) -> None:
    """Drop the guards (migration reverse; test support). Never called by the application."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            for name in _PG_TRIGGERS:
                cur.execute(f"DROP TRIGGER IF EXISTS {name} ON {TABLE}")
        elif connection.vendor == "sqlite":
            for name in _SQLITE_TRIGGERS:
                cur.execute(f"DROP TRIGGER IF EXISTS {name}")


def installed(connection: BaseDatabaseWrapper) -> bool:
    """True when every guard is in place (``kenshin audit verify`` reports their absence)."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass "
                "AND tgname = ANY(%s) AND tgenabled <> 'D'",
                [TABLE, list(_PG_TRIGGERS)],
            )
            return cur.fetchone()[0] == len(_PG_TRIGGERS)
        cur.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s "
            "AND name IN (%s, %s)",
            [TABLE, *_SQLITE_TRIGGERS],
        )
        return cur.fetchone()[0] == len(_SQLITE_TRIGGERS)


def init_head(connection: BaseDatabaseWrapper) -> None:
    """Create the one head row from the newest audit row, if it is missing.

    Called by the migration and by ``append`` when the row has gone (a test flush empties
    every table). Safe under concurrency: the insert does nothing if another writer won.
    """
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_chainhead (id, seq, prev_hash, hash) "
            "SELECT 1, COALESCE(MAX(e.seq), 0), "
            "COALESCE((SELECT prev_hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1), %s), "
            "COALESCE((SELECT hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1), %s) "
            "FROM audit_auditevent e WHERE 1 = 1 ON CONFLICT (id) DO NOTHING",
            ["0" * 64, "0" * 64],
        )
