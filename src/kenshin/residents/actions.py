"""State changes of the resident register: importing feed files.

One import is one transaction: every row is validated, and if any row is wrong nothing is
written (all errors are reported, up to MAX_ERRORS). A file whose content hash was imported
before changes nothing. 異動 are applied in (異動日, 届出日, 行) order onto each person's
timeline of versions (see models.ResidentVersion).

Every imported resident is registered with the 番号連携サーバ, batch by batch before the
commit, and gets a ResidentLink (its 団体内統合宛名番号) in the same transaction (linking.py).
A resident file may carry 個人番号 in an optional last column: each is validated and handed
straight to the linkage server with its 宛名, and never stored, logged or echoed here.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from itertools import chain
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction

from kenshin.core import audit, clock
from kenshin.core.bulk import bulk_insert, copy_stream, copy_text_field, serialise
from kenshin.core.progress import ProgressLine
from kenshin.core.purposes import Purpose
from kenshin.core.text import normalize_digits
from kenshin.linkage import services as linkage
from kenshin.linkage.contract import AtenaIn, LinkageError, MergeView
from kenshin.residents import rules
from kenshin.residents.feed import FileFacts, RowStream, feed_kind_of, inspect_file
from kenshin.residents.linking import (
    LINK_FIELDS,
    Linker,
    atena_in,
    link_lines,
    linked_atena_nos,
    write_links,
)
from kenshin.residents.models import (
    FeedImport,
    FeedKind,
    FiscalCategory,
    ResidentLink,
    ResidentVersion,
)
from kenshin.residents.rules import ATENA, ATTRS, KIND, RECEIPT, VALID_FROM, FeedError

MAX_ERRORS = 1000
# A refused file changes nothing in the register. The linkage server may already hold 宛名 of
# the batches sent before the error (it commits in its own database): harmless, since
# registering again gives each the same 統合宛名番号 and the next import writes the links.
NOTHING_WRITTEN = (
    "住民記録には何も登録していません"
    "（番号連携サーバに登録済みの宛名は、取り込み直すと同じ番号に結び付きます）"
)
ENCODING_LABELS = {"utf-8-sig": "UTF-8（BOM付き）", "utf-8": "UTF-8", "cp932": "CP932"}
BATCH = 20_000
# Above this size a full load into an empty register drops the search indexes and builds
# them once at the end: building a btree from sorted input beats a million random inserts.
REBUILD_INDEXES_ABOVE_BYTES = 8 * 1024 * 1024

VERSION_FIELDS = (
    "municipality_code", "atena_no", "valid_from", "valid_to", "change_kind", "receipt_date",
    "name", "name_kana", "kana_key", "name_key", "sex", "birth_date", "postal_code", "address",
    "address_annex", "phone", "household_no", "relationship", "household_head_name", "status",
    "feed", "source_row",
)  # fmt: skip
ATTR_FIELDS = VERSION_FIELDS[6:20]
CATEGORY_FIELDS = (
    "municipality_code",
    "fiscal_year",
    "atena_no",
    "insurance_category",
    "tax_category",
    "feed",
)


@dataclass
class ImportReport:
    """What one file did, for the console, the UI and tests."""

    file_name: str
    encoding: str = ""
    kind: str = ""
    rows: int = 0
    inserted: int = 0
    changed: int = 0
    unchanged: int = 0
    missing_from_full: int = 0
    already_imported: bool = False
    empty: bool = False
    counts_after: dict[str, int] | None = None  # known without a query (first full load)
    linked: int = 0  # 宛名 registered with the 番号連携サーバ
    errors: list[FeedError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One Japanese line for the console."""
        if self.empty:
            return (
                f"{self.file_name}: データ行がありません"
                "（見出し行だけのファイルです。何も変更しません）"
            )
        if self.already_imported:
            return f"{self.file_name}: 取込済みのファイルです（内容が同じため何も変更しません）"
        if self.errors:
            more = "以上" if len(self.errors) >= MAX_ERRORS else ""
            return (
                f"{self.file_name}: 誤りが {len(self.errors):,} 件{more}あるため、"
                + NOTHING_WRITTEN
            )
        label = dict(FeedKind.choices).get(self.kind, self.kind)
        text = (
            f"{self.file_name}: {label} {self.rows:,}行 — 新規 {self.inserted:,}、"
            f"変更 {self.changed:,}、変更なし {self.unchanged:,}"
            f"（{ENCODING_LABELS.get(self.encoding, self.encoding)}、{self.seconds:.1f}秒）"
        )
        if self.missing_from_full:
            text += (
                f"。全件ファイルに載っていない人 {self.missing_from_full:,} 人"
                "（削除はしていません）"
            )
        return text


IMPORT_FUNCTION = "residents.import"


class _Rollback(Exception):
    """Raised inside the transaction when any row is wrong: nothing may be written."""


def import_feed_file(
    path: Path,
    *,
    actor: str,
    stdout: TextIO | None = None,
    municipality_code: str | None = None,
) -> ImportReport:
    """Validate and apply one feed file (resident full/diff or fiscal categories)."""
    started = time.monotonic()
    mc = municipality_code or settings.MUNICIPALITY_CODE
    facts = inspect_file(path)
    report = ImportReport(file_name=path.name, encoding=facts.encoding)
    if FeedImport.objects.filter(municipality_code=mc, sha256=facts.sha256).exists():
        report.already_imported = True
        return report
    if facts.bad_line is not None:
        report.errors.append(
            FeedError(
                facts.bad_line,
                "",
                "文字コードを判別できません（UTF-8 でも CP932 でも読めない文字があります）。"
                "UTF-8 または CP932 で保存し直してください",
            )
        )
        return report
    progress = ProgressLine(f"{path.name} を取り込んでいます", facts.size, stdout)
    with RowStream(facts) as stream:
        header = stream.header()
        kind = feed_kind_of(header)
        with_my_number = False
        if kind == "categories":
            err = rules.header_error(header, rules.CATEGORY_HEADER, "年度別区分ファイル")
        else:
            err, with_my_number = rules.resident_header_error(header)
        if err is not None:
            report.errors.append(err)
            return report
        try:
            with transaction.atomic():
                _serialise_imports(mc)
                feed = FeedImport.objects.create(
                    municipality_code=mc,
                    sha256=facts.sha256,
                    file_name=path.name[:255],
                    kind=FeedKind.FISCAL_CATEGORIES if kind == "categories" else "",
                    encoding=facts.encoding,
                    row_count=0,
                    imported_by=actor,
                    started_at=clock.now(),
                    finished_at=clock.now(),
                )
                if kind == "categories":
                    _import_categories(stream, feed, report, progress)
                else:
                    linker = Linker(mc, actor)
                    _import_residents(stream, facts, feed, report, progress, linker, with_my_number)
                    report.linked = linker.registered
                if report.errors:
                    raise _Rollback
                report.kind = feed.kind
                if report.rows == 0:
                    # Header only (a day without 異動): nothing to apply and nothing to record,
                    # so tomorrow's identical empty file is not mistaken for a re-sent one.
                    report.empty = True
                    raise _Rollback
                FeedImport.objects.filter(pk=feed.pk).update(
                    register_counts=(
                        {}
                        if feed.kind == FeedKind.FISCAL_CATEGORIES
                        else report.counts_after
                        if report.counts_after is not None
                        else _count_current(mc)
                    ),
                    kind=feed.kind,
                    row_count=report.rows,
                    inserted=report.inserted,
                    changed=report.changed,
                    unchanged=report.unchanged,
                    finished_at=clock.now(),
                )
                # In the same transaction: the register changes only together with its record.
                audit.record(
                    audit.Event.IMPORT,
                    audit.Actor.system(actor),
                    audit.Subject("feed_import", str(feed.pk)),
                    function=IMPORT_FUNCTION,
                    kind=feed.kind,
                    rows=report.rows,
                    inserted=report.inserted,
                    changed=report.changed,
                    unchanged=report.unchanged,
                )
        except _Rollback:
            pass
        except LinkageError as exc:
            # The contract's messages are Japanese and never carry a 個人番号.
            report.errors.append(
                FeedError(
                    0,
                    "",
                    f"番号連携サーバに登録できませんでした（{exc}）。" + NOTHING_WRITTEN,
                )
            )
        except UnicodeDecodeError:
            report.errors.append(
                FeedError(
                    stream.row + 1,
                    "",
                    f"文字コード（{facts.encoding}）として読めない文字があります。"
                    "UTF-8 または CP932 で保存し直してください",
                )
            )
        except csv.Error:
            report.errors.append(
                FeedError(
                    stream.row + 1,
                    "",
                    '項目が長すぎるか、引用符（"）の対応が取れていません。'
                    "区切りや引用符の誤りがないか確認してください",
                )
            )
        except DatabaseError as exc:
            if (
                isinstance(exc, IntegrityError)
                and FeedImport.objects.filter(municipality_code=mc, sha256=facts.sha256).exists()
            ):
                # Another process committed the same file between our check and our insert.
                report.already_imported = True
                return report
            # Validation bounds every value, so this is a last line of defence. The driver's
            # message quotes the offending value (personal data) and, for a COPY, names the
            # wrong row: report the kind of failure only. Nothing was written.
            report.errors.append(
                FeedError(
                    0,
                    "",
                    f"データベースに書き込めませんでした（{type(exc.__cause__ or exc).__name__}）。"
                    f"{NOTHING_WRITTEN}。システム管理者に連絡してください",
                )
            )
    progress.finish(report.rows)
    report.seconds = time.monotonic() - started
    if report.errors:
        # A refused file leaves a trace too (counts only: the messages may quote 宛名番号).
        audit.record(
            audit.Event.IMPORT,
            audit.Actor.system(actor),
            audit.Subject("feed_file", facts.sha256[:16]),
            function=IMPORT_FUNCTION,
            result=audit.Result.FAILURE,
            errors=len(report.errors),
        )
    return report


def _count_current(mc: str) -> dict[str, int]:
    """Current records per 住民状態 (one GROUP BY, inside the import's transaction)."""
    from django.db.models import Count

    rows = (
        ResidentVersion.objects.filter(municipality_code=mc, valid_to__isnull=True)
        .values("status")
        .annotate(n=Count("pk"))
    )
    return {r["status"]: r["n"] for r in rows}


def _serialise_imports(mc: str) -> None:
    """One import per municipality at a time: each reads timelines that the other writes."""
    serialise(f"kenshin.residents.import.{mc}")


def _add_error(report: ImportReport, error: FeedError) -> None:
    report.errors.append(error)
    if len(report.errors) >= MAX_ERRORS:
        raise _Rollback


def _check_cap(report: ImportReport) -> None:
    if len(report.errors) >= MAX_ERRORS:
        raise _Rollback


# ---------------------------------------------------------------------------------------------
# Resident files


def _parse_row(
    cells: list[str], row: int, today_iso: str, errors: list[FeedError], with_my_number: bool
) -> tuple[tuple, str] | None:
    """One resident row → (the parser's tuple, the 個人番号 or "") or None after errors.

    With the 個人番号 column, the register cells and the number are both checked, so a row
    reports every problem at once.
    """
    if not with_my_number:
        rec = rules.parse_resident_row(cells, row, today_iso, errors)
        return None if rec is None else (rec, "")
    split = rules.split_my_number(cells, row, errors)
    if split is None:
        return None
    cells, cell = split
    rec = rules.parse_resident_row(cells, row, today_iso, errors)
    my_number = rules.parse_my_number(cell, row, errors)
    if rec is None or my_number is None:
        return None
    return rec, my_number


def _import_residents(
    stream: RowStream,
    facts: FileFacts,
    feed: FeedImport,
    report: ImportReport,
    progress: ProgressLine,
    linker: Linker,
    with_my_number: bool,
) -> None:
    today_iso = clock.today().isoformat()
    rows = iter(stream)
    first = next(rows, None)
    if first is None:
        # A day without 異動 still produces a file: header only, nothing to apply.
        feed.kind = FeedKind.RESIDENT_DIFF
        return
    is_full = normalize_digits(first[0]) == "00"
    feed.kind = FeedKind.RESIDENT_FULL if is_full else FeedKind.RESIDENT_DIFF

    all_rows = chain([first], rows)  # the first row was read to tell full from diff
    if is_full:
        _import_full(stream, all_rows, facts, feed, report, progress, today_iso, linker,
                     with_my_number)  # fmt: skip
    else:
        _import_diff(stream, all_rows, feed, report, progress, today_iso, linker, with_my_number)


def _import_full(
    stream, rows, facts, feed, report, progress, today_iso, linker, with_my_number
) -> None:
    """A full load: straight append into an empty register, else a diff against it.

    Each batch is registered with the 番号連携サーバ as it is written. On PostgreSQL's first
    load the register's COPY stream holds the connection, so the links are kept as COPY lines
    (about 60 bytes a resident) and streamed in after it.
    """
    mc = feed.municipality_code
    empty = not ResidentVersion.objects.filter(municipality_code=mc).exists()
    rebuild = empty and facts.size > REBUILD_INDEXES_ABOVE_BYTES
    if rebuild:
        _drop_search_indexes()
    seen: dict[str, int] = {}
    statuses: list[str] = []
    # PostgreSQL, empty register: one COPY stream fed with text lines (see core.bulk).
    as_copy_lines = empty and connection.vendor == "postgresql"
    links = io.StringIO()
    with ExitStack() as stack:
        if as_copy_lines:
            write = stack.enter_context(copy_stream(ResidentVersion, VERSION_FIELDS))

            def flush(batch: list, atenas: list[AtenaIn], report: ImportReport) -> None:
                links.write(link_lines(mc, linker.register(atenas)))
                write("".join(batch))
                report.inserted += len(batch)

        elif empty:

            def flush(batch: list, atenas: list[AtenaIn], report: ImportReport) -> None:
                linker.link(atenas, fresh=True)
                _append_versions(batch, report)

        else:

            def flush(batch: list, atenas: list[AtenaIn], report: ImportReport) -> None:
                touched = _merge_full_batch(batch, report)
                if not report.errors:
                    linker.link(_needing_registration(mc, atenas, touched))

        _validate_full_rows(
            stream, rows, feed, report, progress, today_iso, seen, statuses, flush,
            as_copy_lines, with_my_number,
        )  # fmt: skip
    if report.errors:
        return
    if links.tell():
        links.seek(0)
        with copy_stream(ResidentLink, LINK_FIELDS) as write_links:
            while chunk := links.read(1 << 20):
                write_links(chunk)
    if rebuild:
        _create_search_indexes()
    if empty:
        # Every row went in as it was: the register's counts are the file's.
        report.counts_after = dict(Counter(statuses))
    else:
        current = ResidentVersion.objects.filter(
            municipality_code=mc, valid_to__isnull=True
        ).values_list("atena_no", flat=True)
        report.missing_from_full = sum(
            1 for a in current.iterator(chunk_size=10_000) if a not in seen
        )


def _needing_registration(mc: str, atenas: list[AtenaIn], touched: set[str]) -> list[AtenaIn]:
    """The rows of a re-sync batch the linkage server must hear about: new or changed 宛名,
    rows carrying a 個人番号, and residents without a link yet. An unchanged, linked 宛名
    without a 個人番号 would only be registered again to the same 統合宛名番号."""
    need = [a for a in atenas if a.atena_no in touched or a.my_number]
    rest = [a for a in atenas if not (a.atena_no in touched or a.my_number)]
    if not rest:
        return need
    linked = linked_atena_nos(mc, (a.atena_no for a in rest))  # one set, looked up per row
    return need + [a for a in rest if a.atena_no not in linked]


def _validate_full_rows(
    stream, rows, feed, report, progress, today_iso, seen, statuses, flush, as_copy_lines,
    with_my_number,
) -> None:  # fmt: skip
    """Validate every row of a full load and hand valid rows to `flush` in batches.

    After the first error nothing more is handed over, but validation goes on so that the
    report lists every error (up to MAX_ERRORS).
    """
    mc = feed.municipality_code
    feed_id = feed.pk
    errors = report.errors
    batch: list = []
    atenas: list[AtenaIn] = []
    for cells in rows:
        row = stream.row
        parsed = _parse_row(cells, row, today_iso, errors, with_my_number)
        if parsed is None:
            _check_cap(report)
            continue
        rec, my_number = parsed
        if rec[KIND] != "full_load":
            _add_error(
                report,
                FeedError(row, "異動区分", "全件ファイルに異動の行（00以外）は入れられません"),
            )
            continue
        atena = rec[ATENA]
        if atena in seen:
            _add_error(
                report,
                FeedError(
                    row,
                    "宛名番号",
                    f"「{atena}」がファイル内で重複しています（{seen[atena]}行目と同じ）",
                ),
            )
            continue
        seen[atena] = row
        report.rows += 1
        if errors:
            continue
        statuses.append(rec[rules.STATUS])
        if as_copy_lines:
            batch.append(_copy_line(mc, rec, feed_id, row))
        else:
            batch.append((mc, atena, rec[1], None, rec[0], rec[2], *rec[4:], feed_id, row))
        atenas.append(atena_in(atena, rec[ATTRS], my_number))
        if len(batch) >= BATCH:
            flush(batch, atenas, report)
            batch, atenas = [], []
            progress.update(stream.bytes_read, report.rows)
    if batch and not errors:
        flush(batch, atenas, report)


def _append_versions(batch: list[tuple], report: ImportReport) -> None:
    bulk_insert(ResidentVersion, VERSION_FIELDS, batch)
    report.inserted += len(batch)


def _copy_line(mc: str, rec: tuple, feed_id: int, row: int) -> str:
    """One ResidentVersion row in COPY text format, in VERSION_FIELDS order (valid_to NULL).

    Only the free-text fields can hold a backslash (normalisation already turned tabs and
    newlines into spaces), so the common line is one f-string.
    """
    text = "\t".join(
        (rec[4], rec[5], rec[6], rec[7], str(rec[8]), rec[9], rec[10], rec[11], rec[12],
         rec[13], rec[14], rec[15], rec[16], rec[17])
    )  # fmt: skip
    if "\\" in text:
        text = "\t".join(copy_text_field(str(v)) for v in rec[4:18])
    return f"{mc}\t{rec[3]}\t{rec[1]}\t\\N\t{rec[0]}\t{rec[2]}\t{text}\t{feed_id}\t{row}\n"


def _current_versions(mc: str, atenas: list[str]) -> dict[str, tuple]:
    """Current version of each 宛名番号: atena → (pk, valid_from ISO, attrs tuple)."""
    found: dict[str, tuple] = {}
    for i in range(0, len(atenas), 500):
        part = atenas[i : i + 500]
        qs = ResidentVersion.objects.filter(
            municipality_code=mc, atena_no__in=part, valid_to__isnull=True
        ).values_list("pk", "atena_no", "valid_from", *ATTR_FIELDS)
        for pk, atena, valid_from, *attrs in qs:
            attrs[5] = attrs[5].isoformat()  # birth_date, as the parser returns it
            found[atena] = (pk, valid_from.isoformat(), tuple(attrs))
    return found


def _merge_full_batch(batch: list[tuple], report: ImportReport) -> set[str]:
    """Compare a batch of full-load rows with the register; write only real differences.

    Returns the 宛名番号 of the rows written (new or changed).
    """
    mc = batch[0][0]
    current = _current_versions(mc, [r[1] for r in batch])
    new_rows: list[tuple] = []
    closes: list[tuple[int, str]] = []
    for r in batch:
        cur = current.get(r[1])
        attrs = tuple(r[6:20])
        if cur is None:
            new_rows.append(r)
            report.inserted += 1
        elif cur[2] == attrs:
            report.unchanged += 1
        elif r[2] < cur[1]:
            _add_error(
                report,
                FeedError(
                    r[-1],
                    "異動日",
                    f"全件ファイルの基準日（{r[2]}）が住民記録の最新の異動日（{cur[1]}）より前です",
                ),
            )
        else:
            closes.append((cur[0], r[2]))
            new_rows.append(r)
            report.changed += 1
    if report.errors:
        return set()
    _close_versions(closes)
    bulk_insert(ResidentVersion, VERSION_FIELDS, new_rows)
    return {r[1] for r in new_rows}


def _close_versions(closes: list[tuple[int, str]]) -> None:
    """Set valid_to on superseded versions (before inserting their successors)."""
    if not closes:
        return
    objs = [ResidentVersion(pk=pk, valid_to=date.fromisoformat(d)) for pk, d in closes]
    ResidentVersion.objects.bulk_update(objs, ["valid_to"], batch_size=500)


@dataclass
class _Version:
    """A version on a person's timeline while a diff file is applied."""

    pk: int | None
    valid_from: str
    valid_to: str | None
    kind: str
    status: str
    attrs: tuple
    dirty: bool = False
    row: tuple | None = None  # insert tuple for versions created by this file


def _load_timelines(mc: str, atenas: list[str]) -> dict[str, list[_Version]]:
    timelines: dict[str, list[_Version]] = {}
    for i in range(0, len(atenas), 500):
        part = atenas[i : i + 500]
        qs = (
            ResidentVersion.objects.filter(municipality_code=mc, atena_no__in=part)
            .order_by("atena_no", "valid_from", "pk")
            .values_list("pk", "atena_no", "valid_from", "valid_to", "change_kind", *ATTR_FIELDS)
        )
        for pk, atena, vf, vt, kind, *attrs in qs:
            attrs[5] = attrs[5].isoformat()
            timelines.setdefault(atena, []).append(
                _Version(
                    pk,
                    vf.isoformat(),
                    vt.isoformat() if vt else None,
                    kind,
                    attrs[-1],
                    tuple(attrs),
                )
            )
    return timelines


def _import_diff(stream, rows, feed, report, progress, today_iso, linker, with_my_number) -> None:
    """A differential file: validate all rows, then apply them in effective-date order.

    Then every person the file changed (and every person given a 個人番号) is registered with
    the 番号連携サーバ with their latest five items, in one batch.
    """
    mc = feed.municipality_code
    parsed: list[tuple[int, tuple]] = []
    my_numbers: dict[str, str] = {}
    for cells in rows:
        row = stream.row
        result = _parse_row(cells, row, today_iso, report.errors, with_my_number)
        if result is None:
            _check_cap(report)
            continue
        rec, my_number = result
        if my_number:
            my_numbers[rec[ATENA]] = my_number
        if rec[KIND] == "full_load":
            _add_error(
                report, FeedError(row, "異動区分", "異動ファイルに全件（00）の行は書けません")
            )
            continue
        parsed.append((row, rec))
        report.rows += 1
        progress.update(stream.bytes_read, report.rows)
    if report.errors:
        return
    parsed.sort(key=lambda p: (p[1][VALID_FROM], p[1][RECEIPT], p[0]))
    timelines = _load_timelines(mc, sorted({rec[ATENA] for _, rec in parsed}))
    for row, rec in parsed:
        atena = rec[ATENA]
        timeline = timelines.setdefault(atena, [])
        eff = rec[VALID_FROM]
        attrs = tuple(rec[ATTRS])
        if any(v.valid_from == eff and v.kind == rec[KIND] and v.attrs == attrs for v in timeline):
            report.unchanged += 1  # the same 異動 arrived before (e.g. re-sent in another file)
            continue
        # Rows are applied in date order, so the person's latest version is the state just
        # before this 異動. A row dated before it would rewrite history under later versions
        # that do not know of it (a late 転出 under a later 住所変更 would leave the person
        # 住民): such rows are refused, and the register office sends a 職権修正 instead.
        prior = timeline[-1] if timeline else None
        if prior is not None and eff < prior.valid_from:
            _add_error(
                report,
                FeedError(
                    row,
                    "異動日",
                    f"この方には{prior.valid_from}付けの異動が既に登録されています。"
                    "それより前の日付の異動は取り込めません"
                    f"（住基から、{prior.valid_from}以降の日付の職権修正として送ってください）",
                ),
            )
            continue
        err = rules.check_transition(
            rec[KIND], prior.status if prior else None, rec[rules.STATUS], row, atena
        )
        if err is not None:
            _add_error(report, err)
            continue
        if prior is not None:
            prior.valid_to = eff
            prior.dirty = True
        version = _Version(
            None, eff, None, rec[KIND], rec[rules.STATUS], attrs,
            row=(mc, atena, eff, None, rec[KIND], rec[RECEIPT], *rec[4:], feed.pk, row),
        )  # fmt: skip
        timeline.append(version)
        if prior is None:
            report.inserted += 1
        else:
            report.changed += 1
    if report.errors:
        return
    closes = []
    new_rows = []
    for timeline in timelines.values():
        for v in timeline:
            if v.pk is None:
                row = list(v.row)
                row[3] = v.valid_to
                new_rows.append(tuple(row))
            elif v.dirty:
                closes.append((v.pk, v.valid_to))
    to_register = {row[1] for row in new_rows} | set(my_numbers)
    linker.link(
        [atena_in(a, timelines[a][-1].attrs, my_numbers.get(a, "")) for a in sorted(to_register)]
    )
    _close_versions(closes)
    if new_rows:
        bulk_insert(ResidentVersion, VERSION_FIELDS, new_rows)


# ---------------------------------------------------------------------------------------------
# Fiscal-year categories


def _import_categories(stream, feed, report, progress) -> None:
    mc = feed.municipality_code
    known = set(
        ResidentVersion.objects.filter(municipality_code=mc, valid_to__isnull=True)
        .values_list("atena_no", flat=True)
        .iterator(chunk_size=20_000)
    )
    seen: dict[tuple[int, str], int] = {}
    parsed: list[tuple[int, str, str, str]] = []
    for cells in stream:
        row = stream.row
        rec = rules.parse_category_row(cells, row, report.errors)
        if rec is None:
            _check_cap(report)
            continue
        key = (rec[0], rec[1])
        if rec[1] not in known:
            _add_error(report, FeedError(row, "宛名番号", f"「{rec[1]}」は住民記録にありません"))
            continue
        if key in seen:
            _add_error(
                report,
                FeedError(
                    row,
                    "宛名番号",
                    f"「{rec[1]}」の{rec[0]}年度の行がファイル内で重複しています（{seen[key]}行目と同じ）",
                ),
            )
            continue
        seen[key] = row
        parsed.append(rec)
        report.rows += 1
        if report.rows % BATCH == 0:
            progress.update(stream.bytes_read, report.rows)
    if report.errors:
        return
    years = sorted({r[0] for r in parsed})
    existing: dict[tuple[int, str], tuple[int, str, str]] = {}
    for fy in years:
        for pk, atena, ins, tax in (
            FiscalCategory.objects.filter(municipality_code=mc, fiscal_year=fy)
            .values_list("pk", "atena_no", "insurance_category", "tax_category")
            .iterator(chunk_size=20_000)
        ):
            existing[(fy, atena)] = (pk, ins, tax)
    inserts = []
    updates = []
    for fy, atena, ins, tax in parsed:
        cur = existing.get((fy, atena))
        if cur is None:
            inserts.append((mc, fy, atena, ins, tax, feed.pk))
            report.inserted += 1
        elif cur[1:] == (ins, tax):
            report.unchanged += 1
        else:
            updates.append(
                FiscalCategory(pk=cur[0], insurance_category=ins, tax_category=tax, feed_id=feed.pk)
            )
            report.changed += 1
    if updates:
        FiscalCategory.objects.bulk_update(
            updates, ["insurance_category", "tax_category", "feed"], batch_size=500
        )
    if inserts:
        bulk_insert(FiscalCategory, CATEGORY_FIELDS, inserts)


# ---------------------------------------------------------------------------------------------
# Index maintenance for the bulk path


def _index_statements(create: bool) -> list[str]:
    """SQL to drop or create the search indexes, usable inside the import's transaction.

    Why not schema_editor(): on SQLite it refuses to run inside a transaction with foreign
    keys on; the statements themselves are plain DDL, transactional on both databases.
    """
    editor = connection.SchemaEditorClass(connection, collect_sql=False)
    editor.deferred_sql = []  # normally set by __enter__, which we cannot use here
    statements = []
    for index in ResidentVersion._meta.indexes:
        sql = (
            index.create_sql(ResidentVersion, editor)
            if create
            else index.remove_sql(ResidentVersion, editor)
        )
        statements.append(str(sql))
    return statements


def _drop_search_indexes() -> None:
    with connection.cursor() as cursor:
        for statement in _index_statements(create=False):
            cursor.execute(statement)


def _create_search_indexes() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED; PostgreSQL will not build
            # an index on a table with pending checks, so run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # Sorting a million keys in memory instead of on disk; LOCAL lasts until the
            # outermost transaction (the import's) ends.
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in _index_statements(create=True):
            cursor.execute(statement)


# ---------------------------------------------------------------------------------------------
# 統合宛名番号 merges: staff request and decide them here, the linkage server applies them


MERGE_FUNCTION = "linkage.merge"
MERGE_PURPOSE = Purpose.DATA_CORRECTION


def _merge_subject(merge_id: int) -> audit.Subject:
    return audit.Subject("unified_merge", str(merge_id))


def _username(request: Any) -> str:
    return request.user.get_username()


def request_merge(
    request: Any, survivor: str, absorbed: str, *, reason: str, candidate_id: int
) -> MergeView:
    """Ask the linkage server to merge ``absorbed`` into ``survivor`` (a second person decides).

    The linkage server logs the request in its own log; this system's audit log records it too,
    with the candidate it came from. A refusal (LinkageError) is raised unrecorded here: nothing
    was requested.
    """
    m = linkage.client().request_merge(survivor, absorbed, actor=_username(request), reason=reason)
    audit.record(
        audit.Event.CREATE, request, _merge_subject(m.id), MERGE_PURPOSE,
        function=MERGE_FUNCTION, kind="merge", candidate=candidate_id,
    )  # fmt: skip
    return m


def request_unmerge(request: Any, merge_id: int, *, reason: str) -> MergeView:
    """Ask the linkage server to undo an applied merge (a second person decides); audited."""
    u = linkage.client().request_unmerge(merge_id, actor=_username(request), reason=reason)
    audit.record(
        audit.Event.CREATE, request, _merge_subject(u.id), MERGE_PURPOSE,
        function=MERGE_FUNCTION, kind="unmerge", merge=merge_id,
    )  # fmt: skip
    return u


def decide_merge(request: Any, merge_id: int, *, approve: bool) -> MergeView:
    """Approve or reject a pending request. The caller has checked a fresh second factor.

    A refusal by the linkage server (e.g. the requester deciding their own request) is recorded
    as denied and raised. Once a request is applied, the 宛名 of both numbers may belong to
    another 統合宛名番号: this system's links are refreshed (refresh_links).
    """
    decision = "approve" if approve else "reject"
    try:
        decided = linkage.client().decide_merge(merge_id, actor=_username(request), approve=approve)
    except LinkageError as exc:
        audit.record(
            audit.Event.UPDATE, request, _merge_subject(merge_id), MERGE_PURPOSE,
            function=MERGE_FUNCTION, result=audit.Result.DENIED, decision=decision,
            code=exc.code,
        )  # fmt: skip
        raise
    audit.record(
        audit.Event.UPDATE, request, _merge_subject(merge_id), MERGE_PURPOSE,
        function=MERGE_FUNCTION, decision=decision, status=decided.status,
    )  # fmt: skip
    if decided.status == "applied":
        refresh_links(request, [decided.survivor, decided.absorbed], merge_id=merge_id)
    return decided


def refresh_links(
    request: Any,
    unified_atena_nos: Iterable[str],
    *,
    merge_id: int | None = None,
    municipality_code: str | None = None,
) -> int:
    """Copy the linkage server's current links of these numbers into ResidentLink; audited in
    the same transaction.

    One person() call per number: the 宛名 it holds belong to the number in force — itself, or
    the survivor it was merged into — which is what find_by_atena would answer for each of them,
    without a call per 宛名. The linkage server is asked before the transaction opens.
    """
    mc = municipality_code or settings.MUNICIPALITY_CODE
    client = linkage.client()
    actor = _username(request)
    found: dict[str, str] = {}
    for unified in dict.fromkeys(unified_atena_nos):
        view = client.person(unified, actor=actor)
        current = view.merged_into or view.unified_atena_no
        for ref in view.atenas:
            if ref.system_code == settings.LINKAGE_SYSTEM_CODE:
                found[ref.atena_no] = current
    with transaction.atomic():
        write_links(mc, found)
        audit.record(
            audit.Event.UPDATE, request, audit.Subject("resident_link", mc), MERGE_PURPOSE,
            function=MERGE_FUNCTION, linked=len(found), merge=merge_id,
        )  # fmt: skip
    return len(found)
