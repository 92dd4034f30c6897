"""Pytest plugin: let transactional tests empty the linkage tables the triggers protect.

Why: pytest-django empties every table after a transactional test with Django's flush
(``DELETE FROM`` on SQLite, ``TRUNCATE`` on PostgreSQL), which linkage/schema.py's guards
rightly refuse (the access log, 統合宛名番号, the number counter). As kenshin.audit.testing does
for the audit log, this plugin wraps the flush itself: inside one transaction it drops the
guards, flushes and puts them back, so no other connection ever sees the tables unguarded.
The wrap chains to whatever flush was in place (the audit plugin's), so both can be loaded
in any order. Registered in the root conftest.py's ``pytest_plugins``.
"""

from __future__ import annotations

import pytest

# Django is imported lazily: this plugin may load before pytest-django has set Django up.
_previous = None


def _flush_with_guards_lifted(self, sql_list: list[str]) -> None:
    from django.db import transaction

    from kenshin.linkage import schema

    previous = _previous
    if not any(table in sql for sql in sql_list for table in schema.TABLES):
        return previous(self, sql_list)
    conn = self.connection
    with transaction.atomic(using=conn.alias):
        had_guards = schema.installed(conn)
        schema.remove(conn)
        previous(self, sql_list)
        if had_guards:
            schema.install(conn)
    return None


@pytest.hookimpl(trylast=True)  # after kenshin.audit.testing has put its wrap in place
def pytest_configure(config: pytest.Config) -> None:
    global _previous
    from django.db.backends.base.operations import BaseDatabaseOperations

    _previous = BaseDatabaseOperations.execute_sql_flush
    BaseDatabaseOperations.execute_sql_flush = _flush_with_guards_lifted  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    from django.db.backends.base.operations import BaseDatabaseOperations

    if BaseDatabaseOperations.execute_sql_flush is _flush_with_guards_lifted:
        BaseDatabaseOperations.execute_sql_flush = _previous  # type: ignore[method-assign]
