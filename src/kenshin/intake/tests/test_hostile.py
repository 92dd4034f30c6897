"""Hostile files (security.md IMP-01, IMP-02, IMP-06): every file a clinic — or someone
pretending to be one — could send is refused whole with one Japanese message that says what to
do, or read with its bad rows contained as row errors. Nothing crashes, memory stays bounded,
nothing lands outside INTAKE_DIR, no staged row is left by a refused file and no exam is
written by staging.

Each entry of CORPUS is uploaded with ``actions.receive_file`` and checked with
``actions.stage_batch``; limits are lowered through the ``settings`` fixture so that the files
stay small. The last test runs the whole corpus and counts: N/N refused or contained, 0 crashes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import xlsxwriter
from django.conf import settings as django_settings

from kenshin.core import clock
from kenshin.intake import actions, pipeline, readers
from kenshin.intake.layout import COLUMNS, REQUIRED_HEADERS, header_row
from kenshin.intake.models import BatchState, ImportBatch, RowStatus, StagedRow
from kenshin.intake.tests.helpers import csv_bytes, exam_row
from kenshin.screening.models import Exam
from kenshin.screening.tests.town import HANAKO, KEN, TARO
from kenshin.screening.vouchers import vouchers_of

pytestmark = pytest.mark.django_db
TODAY = date(2025, 11, 20)
LIMITS = ("INTAKE_MAX_BYTES", "INTAKE_MAX_ROWS", "INTAKE_MAX_COLUMNS", "INTAKE_MAX_XLSX_EXPANDED",
          "INTAKE_MAX_ZIP_RATIO")  # fmt: skip
DEFAULT_LIMITS = {name: getattr(django_settings, name) for name in LIMITS}
MAX_PEAK = 64 * 1024 * 1024  # Python memory while a file is checked: flat, whatever the file
JAPANESE = re.compile(r"[ぁ-んァ-ヶ一-龯]")
STORED = re.compile(r"^[0-9a-f]{32}$")

RECEIVE = "refused at receive"
REFUSED = "refused"
STAGED = "staged"


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(TODAY):
        yield


# ------------------------------------------------------------------------------ rows and files


def fobt(person, **extra: str) -> dict[str, str]:
    values = {"voucher_no": vouchers_of(person.atena_no)[0].voucher_no,
              "name_kana": person.kana, "birth_date": person.birth.isoformat(),
              "sex": str(person.sex), "method": "fecal_occult_blood", "day1": "陰性",
              "day2": "陰性"}  # fmt: skip
    return exam_row(**{**values, **extra})


def cells(row: Mapping[str, str]) -> list[str]:
    return [row.get(c.key, "") for c in COLUMNS]


def lines(*rows: list[str], encoding: str = "utf-8") -> bytes:
    """CSV lines as given (no quoting): for files that are wrong on purpose."""
    return "".join(",".join(r) + "\r\n" for r in rows).encode(encoding)


def header_line(encoding: str = "utf-8") -> bytes:
    return lines(header_row(), encoding=encoding)


def row_line(row: Mapping[str, str], encoding: str = "utf-8") -> bytes:
    return lines(cells(row), encoding=encoding)


def zip_bytes(entries: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def workbook(rows: list[list[object]], far: tuple[int, int] | None = None) -> bytes:
    """A real .xlsx (xlsxwriter); ``far``: one more value at (row, column), 0-based."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    sheet = book.add_worksheet()
    for i, row in enumerate(rows):
        sheet.write_row(i, 0, row)
    if far is not None:
        sheet.write(*far, "x")
    book.close()
    return buf.getvalue()


def _replace_entry(data: bytes, name: str, new: Callable[[bytes], bytes]) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    return zip_bytes({i.filename: (new(src.read(i)) if i.filename == name else src.read(i))
                      for i in src.infolist()})  # fmt: skip


def _lie_about_size(data: bytes, name: str, size: int) -> bytes:
    """Patch the local and central headers of ``name`` to declare ``size`` bytes expanded."""
    raw = bytearray(data)
    target = name.encode()
    for sig, name_len_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, 22),
                                               (b"PK\x01\x02", 28, 46, 24)):  # fmt: skip
        i = raw.find(sig)
        while i >= 0:
            n = struct.unpack_from("<H", raw, i + name_len_at)[0]
            if raw[i + name_at : i + name_at + n] == target:
                struct.pack_into("<I", raw, i + size_at, size)
            i = raw.find(sig, i + 4)
    return bytes(raw)


ZEROS = b"0" * (8 * 1024 * 1024)  # compresses to about 8 KB


def zip_bomb() -> bytes:
    sheet = b'<worksheet><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>' + ZEROS
    return zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>",
                      "xl/worksheets/sheet1.xml": sheet})  # fmt: skip


def lying_zip_bomb() -> bytes:
    """A real workbook whose sheet expands to 8 MB but declares 1 KB: ratio checks pass."""
    book = workbook([header_row(), cells(fobt(KEN))])
    book = _replace_entry(book, "xl/worksheets/sheet1.xml",
                          lambda xml: xml.replace(b"</worksheet>", ZEROS + b"</worksheet>"))  # fmt: skip
    return _lie_about_size(book, "xl/worksheets/sheet1.xml", 1_024)


def billion_laughs() -> bytes:
    entities = b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1)) * 10)
                        for i in range(1, 10))  # fmt: skip
    dtd = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">' + entities + b"]>"
    book = workbook([header_row(), ["LOL"]])
    return _replace_entry(book, "xl/sharedStrings.xml",
                          lambda xml: dtd + xml.split(b"?>", 1)[1].replace(b">LOL<", b">&lol9;<"))  # fmt: skip


def kenshin_csv(*rows: dict[str, str], encoding: str = "utf-8-sig") -> bytes:
    return csv_bytes(list(rows), encoding=encoding)


def utf16(bom: bytes, codec: str) -> bytes:
    text = kenshin_csv(fobt(KEN), encoding="utf-8").decode("utf-8")
    return bom + text.encode(codec)


def shifted() -> bytes:
    more = cells(fobt(TARO))
    more.insert(5, "ずれた値")
    less = cells(fobt(TARO, exam_date="2025-11-11"))
    del less[5]
    return (header_line() + row_line(fobt(KEN)) + lines(more) + row_line(fobt(HANAKO))
            + lines(less))  # fmt: skip


def million_commas_row() -> bytes:
    return header_line() + row_line(fobt(KEN)) + b"," * 1_000_000 + b"\r\n" + row_line(fobt(TARO))


def unclosed_quote() -> bytes:
    return (header_line() + row_line(fobt(KEN)) + row_line(fobt(TARO, place='"第一会場'))
            + row_line(fobt(HANAKO)))  # fmt: skip


def stray_quote() -> bytes:
    return header_line() + row_line(fobt(KEN)) + row_line(fobt(TARO, place='"第一"会場'))


def mixed(first: str, second: str) -> bytes:
    return (header_line(first) + row_line(fobt(KEN), first) + row_line(fobt(TARO), second)
            + row_line(fobt(HANAKO), first))  # fmt: skip


def cp932_file() -> bytes:
    # Half-width kana (one byte each in CP932), 髙 and ① (CP932 only, not Shift_JIS).
    return kenshin_csv(fobt(KEN), fobt(TARO, name_kana="ｼｹﾝ ﾀﾛｳ", place="髙島屋①会場"),
                       encoding="cp932")  # fmt: skip


def without(header: str) -> bytes:
    head = header_row()
    at = head.index(header)
    return lines([h for h in head if h != header],
                 [c for i, c in enumerate(cells(fobt(KEN))) if i != at])  # fmt: skip


def formulas_free() -> tuple[dict[str, str], ...]:
    return (
        fobt(KEN, place='=HYPERLINK("http://evil.example/","会場")', complication="+1+2"),
        fobt(TARO, place="-2+3", complication="@SUM(A1:A9)"),
        fobt(HANAKO, place="=cmd|' /C calc'!A0"),
    )


def formulas_coded() -> tuple[tuple[dict[str, str], str], ...]:
    return (
        (fobt(KEN, day1="=1+1"), "便潜血1日目"),
        (fobt(TARO, sex="+1"), "性別"),
        (fobt(HANAKO, institution_code="@SUM(A1)"), "医療機関コード"),
        (fobt(KEN, exam_date="2025-11-11", voucher_no="-123456789"), "受診券番号"),
        (fobt(TARO, exam_date="2025-11-11", method="=cmd|' /C calc'!A0"), "検査方法"),
    )


# ------------------------------------------------------------------------------ extra checks


def staged_rows(batch: ImportBatch) -> dict[int, StagedRow]:
    return {r.row_no: r for r in pipeline.staged_rows(batch)}


def statuses(*expected: str) -> Callable[[ImportBatch], None]:
    def check(batch: ImportBatch) -> None:
        got = {n: r.status for n, r in staged_rows(batch).items()}
        assert got == dict(enumerate(expected, start=2)), got

    return check


def width_errors(*rows: int) -> Callable[[ImportBatch], None]:
    def check(batch: ImportBatch) -> None:
        for n, row in staged_rows(batch).items():
            if n in rows:
                assert row.status == RowStatus.ERROR and "列の数" in row.problems[0]["message"]
            else:
                assert row.status == RowStatus.NEW, (n, row.problems)
        big = staged_rows(batch)[rows[0]]
        assert len(big.raw) <= len(header_row()) + 1  # a million empty cells are not kept

    return check


def read_kana(encoding: str, *kana: str) -> Callable[[ImportBatch], None]:
    """The file read in its encoding, kana intact — and the register agreed (rows are new)."""

    def check(batch: ImportBatch) -> None:
        assert batch.encoding == encoding
        assert batch.counts["new"] == len(kana) and batch.counts["quarantined"] == 0
        source = readers.open_file(actions.file_path(batch))
        assert [r.cells["name_kana"] for r in source.rows] == list(kana)

    return check


def cp932_read(batch: ImportBatch) -> None:
    read_kana("cp932", KEN.kana, "ｼｹﾝ ﾀﾛｳ")(batch)
    assert "髙島屋①会場" in [r.place for r in staged_rows(batch).values()]


def stored_under_intake_dir(shown: str) -> Callable[[ImportBatch], None]:
    def check(batch: ImportBatch) -> None:
        assert batch.file_name == shown
        assert STORED.match(batch.stored_name)
        path = actions.file_path(batch)
        assert path.parent == Path(django_settings.INTAKE_DIR) and path.is_file()
        assert batch.counts["new"] == 1

    return check


def formulas_kept_and_flagged(batch: ImportBatch) -> None:
    rows = staged_rows(batch)
    assert batch.counts["flagged"] == 3 and batch.counts["new"] == 3
    for n, sent in enumerate(formulas_free(), start=2):
        row = rows[n]
        assert row.status == RowStatus.NEW
        assert row.place == sent["place"]  # verbatim: text, never evaluated
        assert row.complication == sent.get("complication", "")
        flagged = {f["column"] for f in row.flags}
        assert "検診場所" in flagged
        assert all("数式のように見える値" in f["message"] for f in row.flags)
        assert row.raw == cells(sent)  # kept for the preview


def formulas_in_codes_are_errors(batch: ImportBatch) -> None:
    rows = staged_rows(batch)
    for n, (_, column) in enumerate(formulas_coded(), start=2):
        assert rows[n].status == RowStatus.ERROR
        assert column in [p["column"] for p in rows[n].problems], rows[n].problems


# ------------------------------------------------------------------------------ the corpus


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[], bytes]
    outcome: str  # RECEIVE | REFUSED | STAGED
    phrase: str  # in the refusal, or (staged) in the rows' problems and flags
    file_name: str = "kekka.csv"
    limits: Mapping[str, int] = field(default_factory=dict)
    check: Callable[[ImportBatch], None] | None = None


CORPUS: tuple[Hostile, ...] = (
    Hostile("oversize", lambda: kenshin_csv(fobt(KEN, complication="あ" * 3_000)), RECEIVE,
            "分けて送ってください", limits={"INTAKE_MAX_BYTES": 4_096}),
    Hostile("too many rows",
            lambda: kenshin_csv(*(fobt(KEN, exam_date=f"2025-11-0{d}") for d in range(1, 6))),
            REFUSED, "ファイルを分けて送ってください", limits={"INTAKE_MAX_ROWS": 3}),
    Hostile("too many rows (.xlsx)",
            lambda: workbook([header_row()] + [cells(fobt(KEN))] * 5), REFUSED,
            "ファイルを分けて送ってください", "kekka.xlsx", {"INTAKE_MAX_ROWS": 3}),
    Hostile("zip bomb named .xlsx", zip_bomb, REFUSED, "圧縮爆弾の疑い）。CSV で送ってください",
            "kekka.xlsx", {"INTAKE_MAX_XLSX_EXPANDED": 1_000_000}),
    Hostile("zip bomb (ratio only)", zip_bomb, REFUSED, "圧縮爆弾", "kekka2.xlsx"),
    Hostile("zip bomb lying about its size", lying_zip_bomb, REFUSED,
            "壊れた ZIP です）。Excel で開いて保存し直してから送ってください", "kekka.xlsx"),
    Hostile("far cell (XFD-style) in a tiny workbook",
            lambda: workbook([header_row(), cells(fobt(KEN))], far=(1, 5_000)), REFUSED,
            "列が多すぎます（5,001 列目", "kekka.xlsx"),
    Hostile("far row in a tiny workbook",
            lambda: workbook([header_row(), cells(fobt(KEN))], far=(99_999, 0)), REFUSED,
            "行が多すぎます", "kekka.xlsx", {"INTAKE_MAX_ROWS": 1_000}),
    Hostile("billion laughs in a workbook", billion_laughs, REFUSED, "保存し直してください",
            "kekka.xlsx"),
    Hostile("ZIP that is not a workbook", lambda: zip_bytes({"readme.txt": b"hello"}), REFUSED,
            "ではない ZIP ファイルです。Excel のブック（.xlsx）か CSV で送ってください",
            "kekka.xlsx"),
    Hostile("broken ZIP", lambda: b"PK\x03\x04" + b"\x14\x00" * 40, REFUSED,
            "壊れた ZIP", "kekka.xlsx"),
    Hostile("old .xls (OLE)", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
            REFUSED, ".xlsx か CSV で保存し直してください", "kekka.xls"),
    Hostile("PDF", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n", REFUSED,
            "PDF ファイルです。CSV で送ってください", "kekka.pdf"),
    Hostile("UTF-16 LE with BOM", lambda: utf16(codecs.BOM_UTF16_LE, "utf-16-le"), REFUSED,
            "UTF-16 のファイルは読めません。UTF-8 または CP932（Shift_JIS）で保存し直してください"),
    Hostile("UTF-16 BE with BOM", lambda: utf16(codecs.BOM_UTF16_BE, "utf-16-be"), REFUSED,
            "UTF-16 のファイルは読めません"),
    Hostile("UTF-8 with BOM", lambda: kenshin_csv(fobt(KEN), fobt(HANAKO)), STAGED, "",
            check=read_kana("utf-8-sig", KEN.kana, HANAKO.kana)),
    Hostile("UTF-8 without BOM", lambda: kenshin_csv(fobt(KEN), encoding="utf-8"), STAGED, "",
            check=read_kana("utf-8", KEN.kana)),
    Hostile("CP932", cp932_file, STAGED, "", check=cp932_read),
    Hostile("UTF-8 then a CP932 line", lambda: mixed("utf-8", "cp932"), REFUSED,
            "3 行目の文字コードがほかの行と違います"),
    Hostile("CP932 then a UTF-8 line", lambda: mixed("cp932", "utf-8"), REFUSED,
            "3 行目の文字コードがほかの行と違います"),
    Hostile("UTF-8 BOM then a CP932 line", lambda: codecs.BOM_UTF8 + mixed("utf-8", "cp932"),
            REFUSED, "3 行目の文字コード"),
    Hostile("binary named .csv", lambda: bytes(range(256)) * 16, REFUSED,
            "バイナリ）が含まれています。CSV ファイルか確かめてください"),
    Hostile("high bytes without NUL", lambda: bytes(range(0x80, 0x100)) * 16, REFUSED,
            "ください"),
    Hostile("empty file", lambda: b"", REFUSED, "ファイルが空です"),
    Hostile("blank lines only", lambda: b"\r\n\r\n  \r\n", REFUSED,
            "見出しの行から始まるファイルにしてください"),
    Hostile("header only", lambda: kenshin_csv(), REFUSED,
            "データの行がありません（見出しの行だけです）。結果の行を入れたファイルを送ってください"),
    Hostile("missing required column", lambda: without("生年月日"), REFUSED,
            "必要な列の見出しがありません: 生年月日"),
    Hostile("duplicated header column",
            lambda: lines([*header_row(), "受診券番号"], [*cells(fobt(KEN)), "1"]), REFUSED,
            "二つにあります。どちらか一方にしてください"),
    Hostile("shifted columns (one more, one less)", shifted, STAGED, "列の数が見出しと違います",
            check=width_errors(3, 5)),
    Hostile("1,000,000 commas as a data row", million_commas_row, STAGED, "列の数",
            check=width_errors(3)),
    Hostile("1,000,000 commas after the header",
            lambda: header_line().rstrip() + b"," * 1_000_000 + b"\r\n" + row_line(fobt(KEN)),
            REFUSED, f"列が多すぎます（{len(COLUMNS) + 1_000_000:,} 列、上限 200 列）"),
    Hostile("1,000,000 commas as the header", lambda: b"," * 1_000_000 + b"\r\n" +
            row_line(fobt(KEN)), REFUSED, "1 行目（見出しの行）が空です"),
    Hostile("20,000-character cell", lambda: kenshin_csv(fobt(KEN, place="会" * 20_000)),
            REFUSED, "2 行目を CSV として読めません。10,000 文字を超える値があります。値を短く"),
    Hostile("5,000-character cell", lambda: kenshin_csv(fobt(KEN, place="会" * 5_000)), STAGED,
            "検診場所は 100 文字までです", check=statuses(RowStatus.ERROR)),
    Hostile("unclosed quote", unclosed_quote, REFUSED,
            '3 行目を CSV として読めません。引用符（"）が閉じられていません'),
    Hostile("text after a closing quote", stray_quote, REFUSED, "3 行目を CSV として読めません"),
    Hostile("NUL bytes in a cell", lambda: kenshin_csv(fobt(KEN, place="会\x00場")), REFUSED,
            "バイナリ"),
    Hostile("path traversal name", lambda: kenshin_csv(fobt(KEN, exam_date="2025-11-12")), STAGED,
            "", "../../etc/passwd.csv", check=stored_under_intake_dir("passwd.csv")),
    Hostile("Windows path and control characters",
            lambda: kenshin_csv(fobt(KEN, exam_date="2025-11-13")), STAGED, "",
            "..\\..\\Windows\\System32\\evil\x00\x07.csv", check=stored_under_intake_dir("evil.csv")),
    Hostile("absolute path name", lambda: kenshin_csv(fobt(KEN, exam_date="2025-11-14")), STAGED,
            "", "/etc/cron.d/kenshin.csv", check=stored_under_intake_dir("kenshin.csv")),
    Hostile("formulas in 検診場所 and 偶発症", lambda: kenshin_csv(*formulas_free()), STAGED,
            "数式のように見える値です", check=formulas_kept_and_flagged),
    Hostile("formulas in coded columns", lambda: kenshin_csv(*(r for r, _ in formulas_coded())),
            STAGED, "", check=formulas_in_codes_are_errors),
    Hostile("JSON nested 100,000 deep",
            lambda: b'{"resourceType":"Bundle","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            REFUSED, "入れ子が深すぎます。FHIR の Bundle か確かめてください", "kekka.json"),
    Hostile("broken JSON", lambda: b'{"resourceType": "Bundle", "entry": [', REFUSED,
            "JSON として読めません", "kekka.json"),
)  # fmt: skip


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def run_case(case: Hostile, settings, root: Path) -> str:
    """Upload and check one hostile file; assert it ended as the corpus says. Returns
    'refused' or 'contained'. Any exception but an AssertionError is a crash."""
    for name in LIMITS:
        setattr(settings, name, case.limits.get(name, DEFAULT_LIMITS[name]))
    data = case.build()
    exams, before = Exam.objects.count(), _files(root)
    intake_dir = Path(settings.INTAKE_DIR)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        try:
            batch = actions.receive_file("uketsuke", io.BytesIO(data), case.file_name,
                                         fiscal_year=2025)  # fmt: skip
        except actions.IntakeError as exc:
            assert case.outcome == RECEIVE, f"{case.name}: refused at receive: {exc}"
            message = str(exc)
            batch = None
        else:
            assert case.outcome != RECEIVE, f"{case.name}: received"
            batch = actions.stage_batch("uketsuke", batch.pk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    assert peak < MAX_PEAK, f"{case.name}: {peak:,} bytes"
    assert Exam.objects.count() == exams
    # Nothing outside INTAKE_DIR, and inside it only random names.
    added = _files(root) - before
    assert all(p.parent == intake_dir and STORED.match(p.name) for p in added), added
    if batch is None:
        assert not added
        outcome = "refused"
    elif batch.state == BatchState.REFUSED:
        assert case.outcome == REFUSED, f"{case.name}: refused: {batch.message}"
        assert not pipeline.staged_rows(batch)
        assert batch.counts == {}
        message = batch.message
        outcome = "refused"
    else:
        assert batch.state == BatchState.STAGED
        assert case.outcome == STAGED, f"{case.name}: staged {batch.counts}"
        said = [p["message"] for r in pipeline.staged_rows(batch)
                for p in (r.problems or []) + (r.flags or [])]  # fmt: skip
        assert all(JAPANESE.search(m) for m in said)
        assert case.phrase in "／".join(said), (case.name, said)
        outcome = "contained"
    if outcome == "refused":
        # One Japanese message that says what to do.
        assert case.phrase in message, (case.name, message)
        assert JAPANESE.search(message) and "ください" in message, message
    if case.check is not None and batch is not None:
        case.check(batch)
    return outcome


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_file(case, town, settings):
    run_case(case, settings, town)


def test_required_headers_are_named_when_missing(town, settings):
    """Every required header, left out, is named in the refusal."""
    for header in REQUIRED_HEADERS:
        case = Hostile(f"without {header}", lambda h=header: without(h), REFUSED,
                       f"必要な列の見出しがありません: {header}")  # fmt: skip
        run_case(case, settings, town)


def test_far_cell_is_refused_before_the_workbook_is_loaded(town, monkeypatch):
    """A 5 KB workbook with one value far away would make the workbook library set aside the
    whole rectangle (XFD1048576: hundreds of GB). The ZIP check refuses it first."""
    import python_calamine

    opened = []
    real = python_calamine.CalamineWorkbook.from_path
    monkeypatch.setattr(python_calamine.CalamineWorkbook, "from_path",
                        lambda path: opened.append(path) or real(path))  # fmt: skip
    data = workbook([header_row(), cells(fobt(KEN))], far=(2, 16_383))
    batch = actions.receive_file("uketsuke", io.BytesIO(data), "kekka.xlsx", fiscal_year=2025)
    batch = actions.stage_batch("uketsuke", batch.pk)
    assert batch.state == BatchState.REFUSED and "16,384 列目" in batch.message
    assert opened == []
    # The same workbook without the far value is read by the library as usual.
    good = workbook([header_row(), cells(fobt(KEN))])
    batch = actions.receive_file("uketsuke", io.BytesIO(good), "kekka.xlsx", fiscal_year=2025)
    assert actions.stage_batch("uketsuke", batch.pk).state == BatchState.STAGED
    assert len(opened) == 1


def test_unclosed_quote_loses_no_row_silently(town):
    """Before: csv's lenient mode read the rest of the file into one cell, and the rows after
    the quote vanished from the counts. Now the file is refused, naming the row."""
    batch = actions.receive_file("uketsuke", io.BytesIO(unclosed_quote()), "kekka.csv",
                                 fiscal_year=2025)  # fmt: skip
    batch = actions.stage_batch("uketsuke", batch.pk)
    assert batch.state == BatchState.REFUSED and batch.message.startswith("3 行目")


def test_quoted_cells_with_commas_and_quotes_still_read(town):
    """Strict CSV refuses broken quoting, not quoting: "a,b" and ""quoted"" are fine."""
    data = kenshin_csv(fobt(KEN, place='第一会場, "北" 入口', complication="なし\r\n（経過観察）"))
    batch = actions.stage_batch("uketsuke", actions.receive_file(
        "uketsuke", io.BytesIO(data), "kekka.csv", fiscal_year=2025).pk)  # fmt: skip
    assert batch.state == BatchState.STAGED and batch.counts["new"] == 1
    [row] = pipeline.staged_rows(batch)
    assert row.place == '第一会場, "北" 入口'
    assert row.complication == "なし\r\n（経過観察）"


def test_the_whole_corpus_is_refused_or_contained(town, settings):
    """IMP-01: N/N hostile files refused with a clear message or contained; 0 crashes."""
    outcomes: dict[str, str] = {}
    wrong: list[str] = []
    crashes: list[str] = []
    for case in CORPUS:
        try:
            outcomes[case.name] = run_case(case, settings, town)
        except AssertionError as exc:
            wrong.append(f"{case.name}: {exc}")
        except Exception as exc:
            crashes.append(f"{case.name}: {type(exc).__name__}: {exc}")
        # The next file may carry the same rows: this batch must not be the "running" one.
        for batch in ImportBatch.objects.filter(state=BatchState.STAGED):
            actions.discard("uketsuke", batch.pk)
    handled = sum(1 for o in outcomes.values() if o in ("refused", "contained"))
    summary = (f"{handled}/{len(CORPUS)} hostile files refused or contained "
               f"({sum(o == 'refused' for o in outcomes.values())} refused, "
               f"{sum(o == 'contained' for o in outcomes.values())} contained); "
               f"{len(crashes)} crashes")  # fmt: skip
    print(summary)
    assert crashes == [], crashes
    assert wrong == [], wrong
    assert handled == len(CORPUS) >= 40, summary


def test_csv_reader_error_messages_are_japanese():
    for text in ("field larger than field limit (10000)", "unexpected end of data",
                 "',' expected after '\"'", "something new"):  # fmt: skip
        message = readers._csv_problem(csv.Error(text))
        assert JAPANESE.search(message) and "ください" in message
