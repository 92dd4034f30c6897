"""Reading an uploaded file into rows of the Kenshin layout — or refusing it whole.

Why refuse early and whole: a file that is not what it claims (a workbook named .csv, UTF-16,
a binary, a zip bomb, a header that does not fit) would otherwise produce thousands of
misleading row errors or, worse, rows read into the wrong columns. Such files get one clear
Japanese message (:class:`FileRefused`) before any row is staged; files that read get their
problems per row and column.

The kind is decided by content, never by the file name: a ZIP container is a workbook, text
starting with ``{`` is FHIR JSON (one Bundle or NDJSON), anything else is CSV (UTF-8 with or
without BOM, or CP932, detected by ``core.files``). Limits (IMP-01) come from settings.
"""

from __future__ import annotations

import csv
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from django.conf import settings

from kenshin.core.files import FileFacts, RowStream, inspect_file, text_problem
from kenshin.intake.layout import BY_HEADER, BY_KEY, REQUIRED_HEADERS, SourceRow

# A cell longer than this is not a screening value (csv's own default is 131,072).
MAX_CELL = 10_000


class FileRefused(ValueError):
    """The file cannot be read at all; the message (Japanese) says why and what to do."""


@dataclass(frozen=True)
class Profile:
    """A saved column profile: the clinic's header → our column key, and value rewrites."""

    name: str
    mapping: Mapping[str, str]
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass
class Source:
    """An opened file: its facts, kind, the columns found, and its rows (read once)."""

    facts: FileFacts
    kind: str  # csv | xlsx | fhir
    columns: list[str]  # our keys in file order ('' for a column we do not read)
    ignored: list[str]  # headers we do not read (reported to staff, not an error)
    rows: Iterator[SourceRow]
    header: list[str] = field(default_factory=list)  # the file's own header (error file)
    total: int = 0  # units of progress: rows (CSV, Excel) or Bundles (FHIR)
    position: Callable[[], int] = lambda: 0
    close: Callable[[], None] = lambda: None  # for a reader left before its rows were read


def _limits() -> tuple[int, int, int]:
    return (
        settings.INTAKE_MAX_BYTES,
        settings.INTAKE_MAX_ROWS,
        settings.INTAKE_MAX_COLUMNS,
    )


def kind_of(facts: FileFacts) -> str:
    """csv, xlsx or fhir — from the bytes."""
    if facts.head.startswith(b"PK\x03\x04"):
        return "xlsx"
    start = facts.head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"{"):
        return "fhir"
    return "csv"


def open_file(path: Path, profile: Profile | None = None) -> Source:
    """Inspect, check the limits and the header, and return the rows to read.

    Raises :class:`FileRefused` for a file that cannot be read as a whole.
    """
    max_bytes, _, _ = _limits()
    facts = inspect_file(path)
    if facts.size > max_bytes:
        raise FileRefused(
            f"ファイルが大きすぎます（{facts.size:,} バイト、上限 {max_bytes:,} バイト）。"
            "分けて送ってください"
        )
    kind = kind_of(facts)
    if kind == "xlsx":
        return _open_xlsx(facts, profile)
    problem = text_problem(facts)
    if problem is not None:
        raise FileRefused(problem)
    if kind == "fhir":
        return _open_fhir(facts)
    return _open_csv(facts, profile)


# ------------------------------------------------------------------------------ header


def map_header(header: list[str], profile: Profile | None) -> tuple[list[str], list[str]]:
    """Our column key for each header cell ('' when not read) and the headers not read.

    Refuses a header that is empty, too wide, repeats a column, or lacks a required one —
    the usual signs of a shifted or foreign layout.
    """
    _, _, max_columns = _limits()
    cells = [h.strip().lstrip("\ufeff") for h in header]
    if not any(cells):
        raise FileRefused(
            "1 行目（見出しの行）が空です。見出しの行から始まるファイルにしてください"
        )
    if len(cells) > max_columns:
        raise FileRefused(
            f"列が多すぎます（{len(cells):,} 列、上限 {max_columns} 列）。"
            "見出しの行を確かめてください"
        )
    keys, ignored, seen = [], [], {}
    for i, cell in enumerate(cells, start=1):
        key = ""
        if profile is not None and cell in profile.mapping:
            key = profile.mapping[cell]
        elif cell in BY_HEADER:
            key = BY_HEADER[cell].key
        elif cell in BY_KEY:
            key = cell
        if key and key in seen:
            raise FileRefused(
                f"見出し「{BY_KEY[key].header}」が {seen[key]} 列目と {i} 列目の二つにあります。"
                "どちらか一方にしてください"
            )
        if key:
            seen[key] = i
        elif cell:
            ignored.append(cell)
        keys.append(key)
    missing = [h for h in REQUIRED_HEADERS if BY_HEADER[h].key not in seen]
    if missing:
        hint = "（列の対応表を選んでください）" if profile is None else ""
        raise FileRefused(
            "必要な列の見出しがありません: " + "、".join(missing) + hint
            + "。docs/formats/kenshin-csv.md の見出しを使ってください"
        )  # fmt: skip
    return keys, ignored


def _row(row_no: int, keys: list[str], cells: list[str], profile: Profile | None) -> SourceRow:
    if profile is None or not profile.values:  # the usual case, one comprehension
        out = {key: cell.strip() for key, cell in zip(keys, cells, strict=False) if key}
        return SourceRow(row_no, out, cells)
    out = {}
    for key, cell in zip(keys, cells, strict=False):
        if key:
            value = cell.strip()
            if key in profile.values:
                value = profile.values[key].get(value, value)
            out[key] = value
    return SourceRow(row_no, out, cells)


def row_of(
    row_no: int, keys: list[str], cells: list[str], profile: Profile | None, width: int
) -> SourceRow:
    """A CSV row of ``cells`` as the checks read it: a row of another width than the header
    is marked (``__width__``, an error of the row) — columns may have shifted."""
    row = _row(row_no, keys, cells, profile)
    if len(cells) != width:
        row.cells["__width__"] = f"{width}:{len(cells)}"
        if len(cells) > width * 4:
            row.raw = cells[: width + 1]  # 1,000,000 commas: keep what helps
    return row


def _count_check(n: int) -> None:
    _, max_rows, _ = _limits()
    if n > max_rows:
        raise FileRefused(f"行が多すぎます（上限 {max_rows:,} 行）。ファイルを分けて送ってください")


def _no_rows() -> FileRefused:
    return FileRefused(
        "データの行がありません（見出しの行だけです）。結果の行を入れたファイルを送ってください"
    )


def _csv_problem(exc: csv.Error) -> str:
    """csv's English error in the words staff can act on."""
    text = str(exc)
    if "field limit" in text:
        return f"{MAX_CELL:,} 文字を超える値があります。値を短くしてください"
    if "end of data" in text:
        return '引用符（"）が閉じられていません。閉じ忘れを直してください'
    if "expected after" in text:
        return '引用符（"）で囲んだ値の後ろに余分な文字があります。引用符を直してください'
    return f"CSV の書き方が正しくありません（{text}）。CSV として保存し直してください"


# ------------------------------------------------------------------------------ CSV


def _open_csv(facts: FileFacts, profile: Profile | None) -> Source:
    stream = RowStream(facts, strict=True)
    csv.field_size_limit(MAX_CELL)
    try:
        header = stream.header()
    except csv.Error as exc:
        stream.close()
        raise FileRefused(f"1 行目を CSV として読めません。{_csv_problem(exc)}") from None
    try:
        keys, ignored = map_header(header or [""], profile)  # []: the first line is blank
    except FileRefused:
        stream.close()
        raise
    width = len(header)
    max_rows = _limits()[1]

    def rows() -> Iterator[SourceRow]:
        n = 0
        with stream:
            reader = iter(stream)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    if n == 0:
                        raise _no_rows() from None
                    return
                except csv.Error as exc:
                    raise FileRefused(
                        f"{stream.row + 1} 行目を CSV として読めません。{_csv_problem(exc)}"
                    ) from None
                except UnicodeDecodeError:
                    raise FileRefused(
                        f"{stream.row + 1} 行目に {facts.encoding} として読めない文字があります"
                    ) from None
                n += 1
                if n > max_rows:
                    _count_check(n)
                yield row_of(stream.row, keys, cells, profile, width)

    # Progress in rows (the screen says 件): the line count from the inspection is the total.
    return Source(facts, "csv", keys, ignored, rows(), header, max(facts.lines - 1, 1),
                  lambda: max(stream.row - 1, 0), stream.close)  # fmt: skip


# ------------------------------------------------------------------------------ Excel


# A cell's or a row's position in a worksheet: <c r="XFD1048576">, <row r="1048576">. Matched
# loosely (spaces around =, single quotes, lower case) as the workbook library reads it.
_COLUMN_AT = re.compile(rb"""\sr\s*=\s*["']([A-Za-z]+)""")
_ROW_AT = re.compile(rb"""\sr\s*=\s*["'][A-Za-z]*([0-9]+)""")
_BROKEN_ZIP = (
    "Excel のブック（.xlsx）として読めません（壊れた ZIP です）。"
    "Excel で開いて保存し直してから送ってください"
)


def _check_zip(path: Path) -> None:
    """Refuse zip bombs before the workbook library expands anything (IMP-01)."""
    try:
        with zipfile.ZipFile(path) as zf:
            _check_parts(zf)
    except FileRefused:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OSError, ValueError):  # fmt: skip
        raise FileRefused(_BROKEN_ZIP) from None


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters.upper()[:4]:  # four letters are past any limit already
        n = n * 26 + ch - 64
    return n


def _check_parts(zf: zipfile.ZipFile) -> None:
    max_bytes = settings.INTAKE_MAX_XLSX_EXPANDED
    max_columns = settings.INTAKE_MAX_COLUMNS
    infos = zf.infolist()
    if len(infos) > 10_000:
        raise FileRefused("Excel のブックの中のファイルが多すぎます。CSV で送ってください")
    bomb = FileRefused(
        "Excel のブックを展開すると大きくなりすぎます（圧縮爆弾の疑い）。CSV で送ってください"
    )
    total = sum(i.file_size for i in infos)
    packed = max(sum(i.compress_size for i in infos), 1)
    if total > max_bytes or total / packed > settings.INTAKE_MAX_ZIP_RATIO:
        raise bomb
    if not any(i.filename == "xl/workbook.xml" for i in infos):
        raise FileRefused(
            "Excel のブック（.xlsx）ではない ZIP ファイルです。"
            "Excel のブック（.xlsx）か CSV で送ってください"
        )
    # Expand once, counting what comes out rather than trusting the sizes the ZIP declares,
    # and find the farthest cell: the workbook library sets aside the whole rectangle up to
    # it, so one value at XFD1048576 of a 5 KB file would take hundreds of gigabytes.
    expanded = last_row = last_column = 0
    for info in infos:
        tail = b""
        with zf.open(info) as fh:
            while chunk := fh.read(1 << 20):
                expanded += len(chunk)
                if expanded > max_bytes:
                    raise bomb
                window = tail + chunk
                columns = set(_COLUMN_AT.findall(window))
                rows = set(_ROW_AT.findall(window))
                last_column = max([last_column, *(_column_number(c) for c in columns)])
                last_row = max([last_row, *(int(r[:10]) for r in rows)])
                # What may be cut at the end, spaces (however many) kept as one.
                kept = window.rstrip()
                tail = kept[-4096:] + (b" " if len(kept) < len(window) else b"")
    if last_column > max_columns:
        raise FileRefused(
            f"列が多すぎます（{last_column:,} 列目に値があります。上限 {max_columns} 列）。"
            "データのある範囲だけを新しいブックに貼り付けて保存し直すか、CSV で送ってください"
        )
    _count_check(last_row - 1)  # the header is row 1


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV of it would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _open_xlsx(facts: FileFacts, profile: Profile | None) -> Source:
    from python_calamine import CalamineWorkbook

    _check_zip(facts.path)
    try:
        workbook = CalamineWorkbook.from_path(str(facts.path))
        names = workbook.sheet_names
        if not names:
            raise FileRefused("Excel のブックにシートがありません")
        sheet = workbook.get_sheet_by_name(names[0])
        _count_check(max(sheet.height - 1, 0))
        data = sheet.to_python(skip_empty_area=False)
    except FileRefused:
        raise
    except Exception:
        raise FileRefused("Excel のブック（.xlsx）として読めません。保存し直してください") from None
    if not data:
        raise FileRefused("Excel のブックの最初のシートが空です")
    header = [_cell_text(c) for c in data[0]]
    while header and not header[-1].strip():
        header.pop()  # the sheet is as wide as its widest row: a cell past the header shows
    keys, ignored = map_header(header, profile)
    width = len(header)

    def rows() -> Iterator[SourceRow]:
        n = 0
        for i, raw in enumerate(data[1:], start=2):
            cells = [_cell_text(c) for c in raw]
            if not any(c.strip() for c in cells):
                continue
            n += 1
            row = _row(i, keys, cells, profile)
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                row.cells["__width__"] = f"{width}:{len(cells)}"
            yield row
        if n == 0:
            raise _no_rows()

    facts = FileFacts(**{**facts.__dict__, "encoding": ""})
    done = [0]

    def counted() -> Iterator[SourceRow]:
        for row in rows():
            done[0] = row.row_no
            yield row

    return Source(facts, "xlsx", keys, ignored, counted(), header, len(data), lambda: done[0])


# ------------------------------------------------------------------------------ FHIR


def _open_fhir(facts: FileFacts) -> Source:
    from kenshin.intake import fhir

    text = facts.path.read_text(encoding=facts.encoding)
    bundles = max(text.count("\n{") + 1, 1)
    done = [0]

    def rows() -> Iterator[SourceRow]:
        n = 0
        try:
            for row in fhir.bundle_rows(text):
                n += 1
                _count_check(n)
                done[0] = row.row_no
                yield row
        except fhir.FhirFormatError as exc:
            message = str(exc).rstrip("。")
            if "ください" not in message:
                message += "。送り元の医療機関に、自治体検診の様式の Bundle か確かめてください"
            raise FileRefused(message) from None
        except RecursionError:  # [[[[… nested past the parser's depth
            raise FileRefused(
                f"{n + 1} 件目の Bundle の JSON の入れ子が深すぎます。"
                "FHIR の Bundle か確かめてください"
            ) from None
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            # A Bundle whose parts have the wrong JSON types (a list where the format has an
            # object, a 5,000-digit number…): the reader meets them as Python errors.
            raise FileRefused(
                f"{n + 1} 件目の Bundle を読めません（項目の形が自治体検診の様式と違います）。"
                "FHIR の Bundle か確かめてください"
            ) from None

    header = ["Bundle", "報告区分", "生年月日", "性別", "受診日", "検査方法"]
    return Source(facts, "fhir", [], [], rows(), header, bundles, lambda: done[0])
