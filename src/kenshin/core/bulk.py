"""The fastest safe way to append many rows through Django's own connection.

Why not bulk_create: it builds a model instance per row and, on SQLite, is capped at 999
parameters per statement; at 1M rows it is 15–25× slower than executemany or COPY
(reference/perf-limits.md §A). Rows written here are validated by the caller beforehand, and
the write happens inside the caller's transaction (the same connection), so a failure rolls
everything back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, models


def whole_table_scan() -> str:
    """The hint to put after a table name when a query reads all of a big table (bulk reads).

    Why: such queries still filter on 団体コード, which leads several indexes, and SQLite then
    walks one of them and fetches every row from the table by id — 4–6× slower than a plain
    scan (1.0 s against 0.2 s for a million register records). PostgreSQL plans a plain scan
    by itself, so the hint is SQLite's ``NOT INDEXED`` or nothing.
    """
    from django.db import connection

    return " NOT INDEXED" if connection.vendor == "sqlite" else ""


def in_list(column: str, values: Sequence[object]) -> tuple[str, list[object]]:
    """``column IN (the values)`` as one parameter, whatever the number of values.

    Why: Django builds an ``IN (%s, %s, …)`` list with one parameter per value, and at 5,000
    values building it costs more than running the query (bench/README.md, result intake).
    PostgreSQL takes the list as one array (``= ANY(%s)``); SQLite as one JSON text read by
    ``json_each``. Both use the column's index.
    """
    import json

    from django.db import connection

    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]  # nosec B608 - a column name from code
    as_json = json.dumps(list(values), default=str)
    return f"{column} IN (SELECT value FROM json_each(%s))", [as_json]  # noqa: S608  # nosec B608


def serialise(key: str) -> None:
    """Hold a transaction-scoped lock named ``key``: one such writer at a time.

    Why: bulk writers that skip what is already on record (NOT EXISTS) cannot see each
    other's uncommitted rows on PostgreSQL; two of them with the same rows would both write.
    PostgreSQL: an advisory lock until the transaction ends. SQLite: nothing to do — the
    IMMEDIATE transaction mode (settings) already takes the single write lock at BEGIN.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])


def column_names(model: type[models.Model], fields: Sequence[str]) -> list[str]:
    """Database column names for model field names (a ForeignKey `feed` → `feed_id`)."""
    return [model._meta.get_field(f).column for f in fields]


def bulk_insert(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Iterable[Sequence[object]],
    using: str = "default",
) -> None:
    """Append `rows` (tuples in the order of `fields`) to the model's table.

    PostgreSQL: COPY FROM STDIN (text format; dates may be ISO strings or date objects).
    SQLite: one executemany on the raw connection (no per-row Python wrapper).
    """
    conn = connections[using]
    table = model._meta.db_table
    cols = column_names(model, fields)
    conn.ensure_connection()
    if conn.vendor == "postgresql":
        from psycopg import sql

        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, cols))
        )
        # wrap_database_errors: the driver's errors become Django's (DataError, …), as they
        # would through the ORM, so callers handle one family of exceptions.
        with conn.wrap_database_errors, conn.cursor() as cursor, cursor.cursor.copy(stmt) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" * len(cols))
        with conn.wrap_database_errors:
            conn.connection.executemany(
                f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})',  # noqa: S608  # nosec B608 - names from _meta
                rows,
            )


def copy_text_field(value: str) -> str:
    """Escape one text value for PostgreSQL's COPY text format (backslash, tab, newlines)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


@contextmanager
def copy_stream(
    model: type[models.Model], fields: Sequence[str], using: str = "default"
) -> Iterator[Callable[[str], None]]:
    """PostgreSQL only: one COPY … FROM STDIN kept open; yields write(text) for blocks of
    lines already in COPY text format (tab-separated, \\N = NULL, newline-terminated).

    Why: a caller that builds each line with one f-string (values validated, escaped with
    copy_text_field) spends a fraction of psycopg's per-row write_row; and the queued writer
    sends each block from its own thread, so the server stores one block while the caller
    parses the next instead of the two taking turns.
    """
    from psycopg import sql
    from psycopg.copy import QueuedLibpqWriter

    conn = connections[using]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(model._meta.db_table),
        sql.SQL(", ").join(map(sql.Identifier, column_names(model, fields))),
    )
    conn.ensure_connection()
    with conn.wrap_database_errors, conn.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(stmt, writer=QueuedLibpqWriter(raw)) as copy:
            yield copy.write


def insert_frame_into(table: str, cols: Sequence[str], frame: Any, using: str = "default") -> None:
    """Append a polars DataFrame whose columns are `cols` (in that order) to `table`.

    Why: a frame of 300,000 checked rows written through :func:`bulk_insert` goes back through
    a Python tuple per row. PostgreSQL: the frame is written as CSV by polars (native code)
    and sent in one ``COPY … (FORMAT csv)``: a null is an unquoted empty field, an empty text
    is written quoted (``""``) and stays empty — and any text, ``\\N`` included, stays text.
    SQLite: one executemany over the frame's rows, dates as ISO text and booleans as 0/1 —
    how Django stores them there. Inside the caller's transaction, like bulk_insert.
    """
    import polars as pl

    conn = connections[using]
    conn.ensure_connection()
    if conn.vendor == "postgresql":
        from psycopg import sql

        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, cols))
        )
        data = frame.write_csv(include_header=False).encode("utf-8")
        with conn.wrap_database_errors, conn.cursor() as cursor, cursor.cursor.copy(stmt) as copy:
            for i in range(0, len(data), 1 << 22):
                copy.write(data[i : i + (1 << 22)])
        return
    dates = [name for name, dtype in frame.schema.items() if dtype == pl.Date]
    if dates:
        frame = frame.with_columns(pl.col(dates).dt.to_string("%Y-%m-%d"))
    quoted = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" * len(cols))
    with conn.wrap_database_errors:
        conn.connection.executemany(
            f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})',  # noqa: S608  # nosec B608 - names from code
            frame.iter_rows(),
        )


def query_frame(sql: str, params: Sequence[object], schema: dict[str, Any]) -> Any:
    """The rows of a SELECT as a polars DataFrame with `schema` (column name → polars type).

    Why: a look-up of 300,000 keys returns 300,000 rows; made into Python tuples and then into
    a frame, they cost more than the query. PostgreSQL: ``COPY (SELECT …) TO STDOUT`` as CSV,
    read by polars directly (no Python object per row). SQLite: the rows in parts of 50,000,
    each made a frame.
    The SELECT gives booleans as 0/1 and dates as ISO text.
    """
    import io

    import polars as pl
    from django.db import connection

    raw = {k: {pl.Date: pl.String, pl.Boolean: pl.Int64}.get(v, v) for k, v in schema.items()}
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        buf = io.BytesIO()
        with connection.wrap_database_errors, connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
                for block in copy:
                    buf.write(block)
        frame = (
            pl.read_csv(io.BytesIO(buf.getvalue()), has_header=False, schema=raw)
            if buf.tell()
            else pl.DataFrame(schema=raw)
        )
    else:
        # In parts: 300,000 rows as Python tuples at once were ~150 MB beside the frame.
        parts = []
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(50_000):
                parts.append(pl.DataFrame(rows, schema=raw, orient="row"))
        frame = pl.concat(parts) if parts else pl.DataFrame(schema=raw)
    casts = [
        pl.col(name).str.to_date("%Y-%m-%d") if dtype == pl.Date else pl.col(name).cast(pl.Boolean)
        for name, dtype in schema.items()
        if dtype in (pl.Date, pl.Boolean)
    ]
    return frame.with_columns(casts) if casts else frame
