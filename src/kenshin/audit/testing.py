"""Pytest plugin: let transactional tests empty the audit table that the triggers protect.

Why: pytest-django's transactional tests (``transaction=True``, ``live_server``) empty every
table after each test with Django's flush — ``DELETE FROM`` on SQLite, ``TRUNCATE`` on
PostgreSQL — which the append-only guards (on the log and on its head row) rightly refuse.
The application has no way around the guards; only this plugin, loaded by the root
conftest.py, wraps the flush: inside one transaction it drops the guards, runs the flush,
and puts the guards back. Other connections never see the tables unguarded (DDL is
transactional on both databases), and the guards are back before the next test starts
whatever the fixture order is, because the wrap sits in the flush itself rather than in a
fixture whose teardown might run before or after pytest-django's.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.backends.base.operations import BaseDatabaseOperations

from kenshin.audit import schema

_original = BaseDatabaseOperations.execute_sql_flush


def _flush_with_guards_lifted(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
    if not any(table in sql for sql in sql_list for table in schema.TABLES):
        return _original(self, sql_list)
    conn = self.connection
    with transaction.atomic(using=conn.alias):
        had_guards = schema.installed(conn)
        schema.remove(conn)
        _original(self, sql_list)
        if had_guards:
            schema.install(conn)
    return None


def pytest_configure(config: pytest.Config) -> None:
    BaseDatabaseOperations.execute_sql_flush = _flush_with_guards_lifted  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    BaseDatabaseOperations.execute_sql_flush = _original  # type: ignore[method-assign]
