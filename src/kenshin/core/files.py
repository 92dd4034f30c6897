"""Reading files that people send: content hash, encoding detection, a CSV row stream.

Why detect by content: cities and clinics send UTF-8 with or without BOM and CP932 under any
extension; guessing from the name or trying Shift_JIS (not CP932) garbles ①, 髙 and NEC special
characters. Shared by the resident feed (residents) and the result intake (intake), so both
say the same thing about the same bad file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileFacts:
    """What one pass over the bytes tells us before any row is read."""

    path: Path
    sha256: str
    encoding: str  # "utf-8-sig", "utf-8" or "cp932"
    size: int
    bad_line: int | None = None  # first line neither UTF-8 nor CP932 (mixed: the odd one)
    head: bytes = b""  # the first bytes (magic numbers: a workbook, a UTF-16 BOM, a PDF…)
    nul: bool = False  # a NUL byte somewhere: binary data, not text
    mixed: bool = False  # some lines are UTF-8 text, others are not: two encodings in one file
    lines: int = 0  # line breaks counted (rows of a CSV, near enough for a progress bar)


def inspect_file(path: Path) -> FileFacts:
    """Hash the file and decide its encoding in one pass (UTF-8 if it all decodes, else CP932)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8_ok = True
    size = 0
    first = b""
    nul = False
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            if not first:
                first = chunk[:8]
            size += len(chunk)
            digest.update(chunk)
            nul = nul or b"\x00" in chunk
            lines += chunk.count(b"\n")
            if utf8_ok:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8_ok = False
        if utf8_ok:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8_ok = False
    if first[:3] == codecs.BOM_UTF8:
        encoding = "utf-8-sig"
    elif utf8_ok:
        encoding = "utf-8"
    else:
        encoding = "cp932"
    bad_line = None
    mixed = False
    if not utf8_ok:
        # CP932 decodes most UTF-8 Japanese without an error (as mojibake), so a file whose
        # lines were saved in both encodings would otherwise be read as CP932, garbled.
        utf8_line, other_line = _line_kinds(path)
        mixed = utf8_line is not None and other_line is not None
        if mixed and encoding == "cp932":
            # The line that differs from the first line with Japanese in it.
            bad_line = max(utf8_line or 0, other_line or 0)
    if encoding == "utf-8-sig" and not utf8_ok:
        bad_line = _first_undecodable_line(path, "utf-8")  # a BOM says UTF-8: believe it
    elif encoding == "cp932" and not mixed:
        cp932_bad = _first_undecodable_line(path, "cp932")
        if cp932_bad is not None:
            # Neither decodes: the encoding that reads further is most likely the intended
            # one, and its first failure is the line staff should look at.
            bad_line = max(cp932_bad, _first_undecodable_line(path, "utf-8") or 0)
    return FileFacts(
        path=path, sha256=digest.hexdigest(), encoding=encoding, size=size, bad_line=bad_line,
        head=first, nul=nul, mixed=mixed, lines=lines,
    )  # fmt: skip


def _line_kinds(path: Path) -> tuple[int | None, int | None]:
    """The first line that is UTF-8 Japanese text and the first that is CP932, not UTF-8."""
    utf8_line = other_line = None
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            if line.isascii():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                if other_line is None and _decodes(line, "cp932"):
                    other_line = n
            else:
                # U+0800 and above (kana, kanji): CP932 bytes are hardly ever such UTF-8.
                if utf8_line is None and any(ord(ch) >= 0x800 for ch in text):
                    utf8_line = n
            if utf8_line and other_line:
                break
    return utf8_line, other_line


_MAGIC = (
    (b"PK\x03\x04", "ZIP 形式（Excel のブックなど）のファイルです。CSV として保存し直すか、"
     "Excel のブック（.xlsx）として送ってください"),
    (b"\xd0\xcf\x11\xe0", "古い Excel 形式（.xls）のファイルです。"
     ".xlsx か CSV で保存し直してください"),
    (b"%PDF", "PDF ファイルです。CSV で送ってください"),
)  # fmt: skip


def text_problem(facts: FileFacts) -> str | None:
    """Why a file cannot be read as CSV text, in Japanese — None when it can.

    Checked before any row is read, so a binary file named .csv, a UTF-16 export or a
    workbook saved under the wrong name gets one clear message instead of a page of row errors.
    """
    if facts.size == 0:
        return "ファイルが空です（0 バイト）。中身の入ったファイルを選び直してください"
    for magic, message in _MAGIC:
        if facts.head.startswith(magic):
            return message
    if facts.head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return (
            "UTF-16 のファイルは読めません。UTF-8 または CP932（Shift_JIS）で保存し直してください"
        )
    if facts.nul:
        return "文字ではないデータ（バイナリ）が含まれています。CSV ファイルか確かめてください"
    if facts.mixed and facts.bad_line is not None:
        return (
            f"{facts.bad_line} 行目の文字コードがほかの行と違います（UTF-8 と CP932 が"
            "混ざっています）。ファイル全体を UTF-8 か CP932 のどちらかで保存し直してください"
        )
    if facts.bad_line is not None:
        return (
            f"{facts.bad_line} 行目に UTF-8 でも CP932 でも読めない文字があります。"
            "UTF-8 または CP932 で保存し直してください"
        )
    return None


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    """Line number (1-based) of the first byte that does not decode, or None if all do."""
    decoder = codecs.getincrementaldecoder(encoding)()
    newlines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # The decoder may hold back the tail of the previous chunk; counting lines in
                # this chunk up to the failure is exact enough to point staff at the row.
                return newlines + chunk.count(b"\n", 0, max(exc.start, 0)) + 1
            newlines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return newlines + 1
    return None


class RowStream:
    """csv rows of a feed file with their row numbers (1 = header) and the bytes consumed."""

    def __init__(self, facts: FileFacts, *, strict: bool = False):
        # strict: an unclosed quote at the end of the file is an error (csv.Error), not a
        # last cell that silently swallows every row after it.
        self.facts = facts
        self._raw = facts.path.open("rb")
        self._text = io.TextIOWrapper(self._raw, encoding=facts.encoding, newline="")
        self._reader = csv.reader(self._text, strict=strict)
        self.row = 0

    def header(self) -> list[str]:
        """The first row (an empty list for an empty file)."""
        try:
            first = next(self._reader)
        except StopIteration:
            return []
        self.row = 1
        return first

    def __iter__(self) -> Iterator[list[str]]:
        for cells in self._reader:
            self.row += 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank lines (often a trailing one) carry nothing
            yield cells

    @property
    def bytes_read(self) -> int:
        return self.facts.size if self._raw.closed else self._raw.tell()

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
