"""Reading feed files: content hash, encoding detection, and a row stream with positions.

Why detect by content: cities send UTF-8 with or without BOM and CP932 under any extension;
guessing from the name or trying Shift_JIS (not CP932) garbles ①, 髙 and NEC special characters.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kenshin.residents.rules import (
    CATEGORY_HEADER,
    RESIDENT_HEADER,
    RESIDENT_HEADER_WITH_MY_NUMBER,
)

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileFacts:
    """What one pass over the bytes tells us before any row is read."""

    path: Path
    sha256: str
    encoding: str  # "utf-8-sig", "utf-8" or "cp932"
    size: int
    bad_line: int | None = None  # first line that is neither UTF-8 nor CP932


def inspect_file(path: Path) -> FileFacts:
    """Hash the file and decide its encoding in one pass (UTF-8 if it all decodes, else CP932)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8_ok = True
    size = 0
    first = b""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            if not first:
                first = chunk[:3]
            size += len(chunk)
            digest.update(chunk)
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
    if first == codecs.BOM_UTF8:
        encoding = "utf-8-sig"
    elif utf8_ok:
        encoding = "utf-8"
    else:
        encoding = "cp932"
    bad_line = None
    if encoding == "utf-8-sig" and not utf8_ok:
        bad_line = _first_undecodable_line(path, "utf-8")  # a BOM says UTF-8: believe it
    elif encoding == "cp932":
        cp932_bad = _first_undecodable_line(path, "cp932")
        if cp932_bad is not None:
            # Neither decodes: the encoding that reads further is most likely the intended
            # one, and its first failure is the line staff should look at.
            bad_line = max(cp932_bad, _first_undecodable_line(path, "utf-8") or 0)
    return FileFacts(
        path=path, sha256=digest.hexdigest(), encoding=encoding, size=size, bad_line=bad_line
    )


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

    def __init__(self, facts: FileFacts):
        self.facts = facts
        self._raw = facts.path.open("rb")
        self._text = io.TextIOWrapper(self._raw, encoding=facts.encoding, newline="")
        self._reader = csv.reader(self._text)
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
        return self._raw.tell()

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feed_kind_of(header: list[str]) -> str | None:
    """'resident' or 'categories' from the header line (the closer match), or None if empty.

    A resident file may end with the optional 個人番号 column (rules.MY_NUMBER_COLUMN).
    """
    cleaned = [c.strip() for c in header]
    if not cleaned:
        return None

    def score(expected: tuple[str, ...]) -> int:
        return sum(a == b for a, b in zip(cleaned, expected, strict=False)) - abs(
            len(cleaned) - len(expected)
        )

    resident = max(score(RESIDENT_HEADER), score(RESIDENT_HEADER_WITH_MY_NUMBER))
    return "categories" if score(CATEGORY_HEADER) > resident else "resident"
