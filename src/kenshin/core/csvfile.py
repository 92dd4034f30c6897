"""CSV files people open in Excel: encodings, formula-safe cells, streamed chunks.

Why one place: every export (roster lists, the access review, the intake's error file) must
open cleanly in Excel on the city's PCs — CP932 or UTF-8 with BOM, the user's choice — and
must never let a cell that starts with = + - @ run as a formula on a staff PC (EXP-02, CSV
injection). Characters CP932 cannot hold become 〓 (the 外字 convention of 住記 systems)
rather than failing the whole file.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator, Sequence

ENCODINGS = {"utf-8-sig": "UTF-8（BOM付き）", "cp932": "Shift_JIS（CP932）"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\0")
GETA = "〓"


def _geta(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return GETA, error.end


codecs.register_error("kenshin_geta", _geta)


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows and never evaluates (CSV formula injection, EXP-02)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_chunks(
    header: Sequence[object], rows: Iterable[Sequence[object]], encoding: str, *, every: int = 500
) -> Iterator[bytes]:
    """The header and rows as CSV bytes, ``every`` rows per chunk (a streaming response).

    Every cell goes through :func:`csv_cell`. ``utf-8-sig`` writes its BOM once, at the start.
    """
    if encoding not in ENCODINGS:
        raise ValueError(encoding)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    errors = "kenshin_geta" if encoding == "cp932" else "strict"
    writer.writerow([csv_cell(v) for v in header])
    yield out.getvalue().encode(encoding, errors)
    out.seek(0)
    out.truncate()
    later = "utf-8" if encoding == "utf-8-sig" else encoding
    for n, row in enumerate(rows, start=1):
        writer.writerow([csv_cell(v) for v in row])
        if n % every == 0:
            yield out.getvalue().encode(later, errors)
            out.seek(0)
            out.truncate()
    tail = out.getvalue()
    if tail:
        yield tail.encode(later, errors)
