"""Database guards on the linkage server's history tables (the pattern of audit/schema.py).

Why triggers: these rules must hold for anyone who reaches the linkage database with the
server's credentials — a shell, a script, a future bug — not only for code that goes through
actions.py.

- ``linkage_linkageevent`` (the server's access log) is append-only: UPDATE and DELETE are
  refused (and TRUNCATE on PostgreSQL, which row triggers do not see).
- ``linkage_person`` rows are never deleted: a 団体内統合宛名番号, once issued, stays on record
  even after a merge folds it into another. UPDATE stays allowed: a merge sets
  ``merged_into`` and an unmerge clears it.
- ``linkage_numbercounter`` only counts up: an UPDATE that lowers ``last`` (or renames the
  counter) and any DELETE are refused, so a number can never be issued twice.

``install`` / ``remove`` are called by migration 0002; ``remove`` otherwise only by test
support (linkage/testing_guards.py), never by the application.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

EVENT_TABLE = "linkage_linkageevent"
PERSON_TABLE = "linkage_person"
COUNTER_TABLE = "linkage_numbercounter"
TABLES = (EVENT_TABLE, PERSON_TABLE, COUNTER_TABLE)

EVENT_MESSAGE = "番号連携ログは追記のみです。更新・削除はできません（{op}）"
PERSON_MESSAGE = "団体内統合宛名番号は削除できません（{op}）"
COUNTER_MESSAGE = "採番の値は増やす以外に変更・削除できません（{op}）"

_COUNTER_BACKWARDS = "NEW.last < OLD.last OR NEW.name {ne} OLD.name"


def _sqlite_raise(message: str, op: str) -> str:
    return "SELECT RAISE(ABORT, '{}');".format(message.format(op=op).replace("'", "''"))


_SQLITE_TRIGGERS = {
    "linkage_event_no_update": (
        EVENT_TABLE,
        f"BEFORE UPDATE ON {EVENT_TABLE} BEGIN {_sqlite_raise(EVENT_MESSAGE, 'UPDATE')} END",
    ),
    "linkage_event_no_delete": (
        EVENT_TABLE,
        f"BEFORE DELETE ON {EVENT_TABLE} BEGIN {_sqlite_raise(EVENT_MESSAGE, 'DELETE')} END",
    ),
    "linkage_person_no_delete": (
        PERSON_TABLE,
        f"BEFORE DELETE ON {PERSON_TABLE} BEGIN {_sqlite_raise(PERSON_MESSAGE, 'DELETE')} END",
    ),
    "linkage_counter_up_only": (
        COUNTER_TABLE,
        f"BEFORE UPDATE ON {COUNTER_TABLE} WHEN {_COUNTER_BACKWARDS.format(ne='IS NOT')} "
        f"BEGIN {_sqlite_raise(COUNTER_MESSAGE, 'UPDATE')} END",
    ),
    "linkage_counter_no_delete": (
        COUNTER_TABLE,
        f"BEFORE DELETE ON {COUNTER_TABLE} BEGIN {_sqlite_raise(COUNTER_MESSAGE, 'DELETE')} END",
    ),
}


def _pg_function(name: str, message: str, hint: str) -> str:
    text = message.replace("{op}", "%").replace("'", "''")
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{text}', TG_OP
        USING ERRCODE = 'insufficient_privilege', HINT = '{hint}';
END
$$
"""


_PG_FUNCTIONS = (
    _pg_function(
        "linkage_refuse_event_change", EVENT_MESSAGE, "linkage_linkageevent is append-only"
    ),
    _pg_function("linkage_refuse_person_delete", PERSON_MESSAGE, "linkage_person is never deleted"),
    _pg_function(
        "linkage_refuse_counter_change", COUNTER_MESSAGE, "linkage_numbercounter only counts up"
    ),
)

_PG_TRIGGERS = {
    # Statement level: refused even when no row matches; TRUNCATE is only seen there.
    "linkage_event_no_change": (
        EVENT_TABLE,
        f"BEFORE UPDATE OR DELETE ON {EVENT_TABLE} FOR EACH STATEMENT "
        "EXECUTE FUNCTION linkage_refuse_event_change()",
    ),
    "linkage_event_no_truncate": (
        EVENT_TABLE,
        f"BEFORE TRUNCATE ON {EVENT_TABLE} FOR EACH STATEMENT "
        "EXECUTE FUNCTION linkage_refuse_event_change()",
    ),
    "linkage_person_no_delete": (
        PERSON_TABLE,
        f"BEFORE DELETE OR TRUNCATE ON {PERSON_TABLE} FOR EACH STATEMENT "
        "EXECUTE FUNCTION linkage_refuse_person_delete()",
    ),
    # Row level with a WHEN clause: the issuing path (last + n) calls no function at all.
    "linkage_counter_up_only": (
        COUNTER_TABLE,
        f"BEFORE UPDATE ON {COUNTER_TABLE} FOR EACH ROW "
        f"WHEN ({_COUNTER_BACKWARDS.format(ne='IS DISTINCT FROM')}) "
        "EXECUTE FUNCTION linkage_refuse_counter_change()",
    ),
    "linkage_counter_no_delete": (
        COUNTER_TABLE,
        f"BEFORE DELETE OR TRUNCATE ON {COUNTER_TABLE} FOR EACH STATEMENT "
        "EXECUTE FUNCTION linkage_refuse_counter_change()",
    ),
}


def _triggers(connection: BaseDatabaseWrapper) -> dict[str, tuple[str, str]]:
    if connection.vendor == "postgresql":
        return _PG_TRIGGERS
    if connection.vendor == "sqlite":
        return _SQLITE_TRIGGERS
    raise NotImplementedError(f"no linkage guards for {connection.vendor}")  # pragma: no cover


def install(connection: BaseDatabaseWrapper) -> None:
    """Create the guards (idempotent)."""
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
    """The guards that are not in place (or disabled on PostgreSQL)."""
    triggers = _triggers(connection)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = ANY(%s::regclass[]) "
                "AND tgname = ANY(%s) AND tgenabled <> 'D'",
                [list(TABLES), list(triggers)],
            )
        else:
            cur.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN (%s, %s, %s)",
                list(TABLES),
            )
        present = {row[0] for row in cur.fetchall()}
    return [name for name in triggers if name not in present]


def installed(connection: BaseDatabaseWrapper) -> bool:
    return not missing(connection)
