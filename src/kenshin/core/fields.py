"""Model fields shared by the apps."""

from __future__ import annotations

from django.db import models


class BinaryCollationCharField(models.CharField):
    """A CharField compared in code-point order on every database.

    Why: search keys are katakana, whose code-point order is gojūon order. On PostgreSQL a
    ja_JP-collated column makes `ORDER BY key` sort every prefix match (p99 > 50 ms at 1M rows,
    reference/perf-limits.md §F); with COLLATE "C" one btree serves the range and the order.
    SQLite's default BINARY collation already is code-point order.
    """

    def db_parameters(self, connection):  # type: ignore[no-untyped-def]
        params = super().db_parameters(connection)
        params["collation"] = "C" if connection.vendor == "postgresql" else None
        return params
