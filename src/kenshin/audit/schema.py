"""Database guards that make the audit table append-only (LOG-02).

Why triggers and not only Python: the log must resist anyone who reaches the database with the
application's credentials — a shell, a careless script, a future bug that calls ``.update()``.
Triggers refuse UPDATE and DELETE on ``audit_auditevent`` (and TRUNCATE on PostgreSQL, which
row triggers do not see) for every client. They do not stop the owner of the schema, who can
drop them; that is what the hash chain and the anchors are for (``verify``), and why production
should also run the application under a role without UPDATE/DELETE/TRUNCATE on the table
(docs/security.md).

The one-row head ``audit_chainhead`` is guarded too: the application must UPDATE it on every
append, so a grant alone cannot protect it. Without a guard, anyone with the application's
rights could set ``seq`` back (every later append then collides: no audited action can
succeed) or rewind it over deleted rows. The trigger lets the head move only one step forward
from itself (``seq + 1``, ``prev_hash`` = the old ``hash``) and refuses DELETE/TRUNCATE.

``install`` / ``remove`` are called by migrations. ``remove`` exists for the migration's
reverse and for test support (``kenshin.audit.testing``); the application never calls it.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditevent"
HEAD_TABLE = "audit_chainhead"
TABLES = (TABLE, HEAD_TABLE)
MESSAGE = "監査ログは追記のみです。更新・削除はできません（{op}）"
HEAD_MESSAGE = "監査ログの末尾の記録は1件ずつ進める以外に変更・削除できません（{op}）"
GENESIS = "0" * 64

# The head may only step forward from itself: anything else is refused.
_HEAD_STEP_VIOLATED = (
    "NEW.id {ne} OLD.id OR NEW.seq {ne} OLD.seq + 1 OR NEW.prev_hash {ne} OLD.hash"
)


def _sqlite_raise(message: str, op: str) -> str:
    return "SELECT RAISE(ABORT, '{}');".format(message.format(op=op).replace("'", "''"))


# name -> (table, CREATE TRIGGER body after "CREATE TRIGGER IF NOT EXISTS <name> ")
_SQLITE_TRIGGERS = {
    "audit_auditevent_no_update": (
        TABLE,
        f"BEFORE UPDATE ON {TABLE} BEGIN {_sqlite_raise(MESSAGE, 'UPDATE')} END",
    ),
    "audit_auditevent_no_delete": (
        TABLE,
        f"BEFORE DELETE ON {TABLE} BEGIN {_sqlite_raise(MESSAGE, 'DELETE')} END",
    ),
    "audit_chainhead_step_only": (
        HEAD_TABLE,
        f"BEFORE UPDATE ON {HEAD_TABLE} WHEN {_HEAD_STEP_VIOLATED.format(ne='IS NOT')} "
        f"BEGIN {_sqlite_raise(HEAD_MESSAGE, 'UPDATE')} END",
    ),
    "audit_chainhead_no_delete": (
        HEAD_TABLE,
        f"BEFORE DELETE ON {HEAD_TABLE} BEGIN {_sqlite_raise(HEAD_MESSAGE, 'DELETE')} END",
    ),
}

_PG_FUNCTIONS = (
    """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '監査ログは追記のみです。更新・削除はできません（%）', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit_auditevent is append-only (kenshin LOG-02)';
END
$$
""",
    """
CREATE OR REPLACE FUNCTION audit_refuse_head_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '監査ログの末尾の記録は1件ずつ進める以外に変更・削除できません（%）', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit_chainhead only moves one step forward (kenshin LOG-02)';
END
$$
""",
)
# The log: statement-level, refused even when no row matches; TRUNCATE is only seen there.
# The head: the UPDATE guard is a row trigger with a WHEN clause, evaluated without calling
# any function on the append path (one extra comparison per append, no PL/pgSQL call).
_PG_TRIGGERS = {
    "audit_auditevent_no_change": (
        TABLE,
        f"BEFORE UPDATE OR DELETE ON {TABLE} FOR EACH STATEMENT "
        "EXECUTE FUNCTION audit_refuse_change()",
    ),
    "audit_auditevent_no_truncate": (
        TABLE,
        f"BEFORE TRUNCATE ON {TABLE} FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
    ),
    "audit_chainhead_step_only": (
        HEAD_TABLE,
        f"BEFORE UPDATE ON {HEAD_TABLE} FOR EACH ROW "
        f"WHEN ({_HEAD_STEP_VIOLATED.format(ne='IS DISTINCT FROM')}) "
        "EXECUTE FUNCTION audit_refuse_head_change()",
    ),
    "audit_chainhead_no_delete": (
        HEAD_TABLE,
        f"BEFORE DELETE ON {HEAD_TABLE} FOR EACH ROW EXECUTE FUNCTION audit_refuse_head_change()",
    ),
    "audit_chainhead_no_truncate": (
        HEAD_TABLE,
        f"BEFORE TRUNCATE ON {HEAD_TABLE} FOR EACH STATEMENT "
        "EXECUTE FUNCTION audit_refuse_head_change()",
    ),
}


def _triggers(connection: BaseDatabaseWrapper) -> dict[str, tuple[str, str]]:
    if connection.vendor == "postgresql":
        return _PG_TRIGGERS
    if connection.vendor == "sqlite":
        return _SQLITE_TRIGGERS
    raise NotImplementedError(f"no audit guards for {connection.vendor}")  # pragma: no cover


def install(connection: BaseDatabaseWrapper) -> None:
    """Create the guards on the log and on its head (idempotent)."""
    triggers = _triggers(connection)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            for function in _PG_FUNCTIONS:
                cur.execute(function)
            for name, (table, body) in triggers.items():
                cur.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                cur.execute(f"CREATE TRIGGER {name} {body}")
        else:
            for name, (_table, body) in triggers.items():
                cur.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")


def remove(connection: BaseDatabaseWrapper) -> None:
    """Drop the guards (migration reverse; test support). Never called by the application."""
    triggers = _triggers(connection)
    with connection.cursor() as cur:
        for name, (table, _body) in triggers.items():
            if connection.vendor == "postgresql":
                cur.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            else:
                cur.execute(f"DROP TRIGGER IF EXISTS {name}")


def missing(connection: BaseDatabaseWrapper) -> list[str]:
    """The names of the guards that are not in place (or disabled on PostgreSQL)."""
    triggers = _triggers(connection)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid IN (%s::regclass, %s::regclass) "
                "AND tgname = ANY(%s) AND tgenabled <> 'D'",
                [TABLE, HEAD_TABLE, list(triggers)],
            )
        else:
            cur.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s, %s)",
                [TABLE, HEAD_TABLE],
            )
        present = {row[0] for row in cur.fetchall()}
    return [name for name in triggers if name not in present]


def installed(connection: BaseDatabaseWrapper) -> bool:
    """True when every guard, on the log and on its head, is in place (verify reports it)."""
    return not missing(connection)


def init_head(connection: BaseDatabaseWrapper) -> None:
    """Create the one head row from the newest audit row, if it is missing.

    For migration 0002 (an existing log gets its head) and the benchmark's bulk load only.
    ``append`` must never call this: rebuilding the head from whatever rows remain would hide
    rows deleted from the end. ``start_head`` is what ``append`` uses.
    """
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_chainhead (id, seq, prev_hash, hash) "
            "SELECT 1, COALESCE(MAX(e.seq), 0), "
            "COALESCE((SELECT prev_hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1), %s), "
            "COALESCE((SELECT hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1), %s) "
            "FROM audit_auditevent e WHERE 1 = 1 ON CONFLICT (id) DO NOTHING",
            [GENESIS, GENESIS],
        )


def start_head(connection: BaseDatabaseWrapper) -> None:
    """Create the genesis head row — only when the log is empty too (a fresh or flushed DB).

    Why only then: a missing head while rows exist means someone removed it (the guards were
    dropped); the head is the only record of how far the chain went, so it must not be
    guessed from the remaining rows. ``append`` then fails closed instead. Safe under
    concurrency: the insert does nothing if another writer won.
    """
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_chainhead (id, seq, prev_hash, hash) SELECT 1, 0, %s, %s "
            "WHERE NOT EXISTS (SELECT 1 FROM audit_auditevent) ON CONFLICT (id) DO NOTHING",
            [GENESIS, GENESIS],
        )
