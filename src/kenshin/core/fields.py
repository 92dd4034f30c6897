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


def code_field(label: str, max_length: int) -> BinaryCollationCharField:
    """A numeric-code column (団体コード, 宛名番号, 世帯番号) compared byte-wise.

    Why: under a ja_JP or en_US collation every btree comparison calls strcoll; for digit
    strings the order is the same and byte comparison halves the cost of the unique index
    during a million-row load on PostgreSQL.
    """
    return BinaryCollationCharField(label, max_length=max_length)
