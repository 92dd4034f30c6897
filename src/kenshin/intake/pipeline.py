"""The staged pipeline: a stored file → checked, matched, staged rows → committed exams.

Why this shape (security.md IMP-03/04/05; ScreenIT's staged result sets): reading, checking and
matching a clinic's file is separated from writing results. ``stage`` reads the file in chunks
of rows, checks each row (``rules.check_row``), looks up in one query per chunk the vouchers,
the register and the exams on record, decides each row's person (``rules.match_row``) and
whether it is new, a correction (updated), already there (unchanged), wrong (error) or waiting
for staff (quarantined), and writes the staged rows. ``commit`` then writes the new and
corrected exams through screening's bulk path in one transaction with the batch's change of
state: killed at any moment, the database is as it was before the commit, and a batch
committed once cannot be committed again.

Memory stays flat: only a chunk of rows is held at a time, plus one small key per valid row
for the duplicate-in-file check. A plain CSV file is first read as columns (intake/columnar.py):
then the file's frames are held, and the rows left to this path are still checked a chunk at
a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from kenshin.core import audit, clock
from kenshin.core.bulk import bulk_insert, insert_frame_into
from kenshin.intake import columnar, rules
from kenshin.intake.layout import BY_KEY, RESULT_KEYS
from kenshin.intake.models import (
    BatchState,
    CommitMode,
    ImportBatch,
    RowStatus,
    StagedFrame,
    StagedRow,
)
from kenshin.intake.readers import FileRefused, Profile, Source, open_file
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import services as screening

CHUNK = 10_000
# Messages about a result's items name the columns the file has (便潜血1日目 …).
HEADERS = {k: c.header for k, c in BY_KEY.items()}
Progress = Callable[[str, int, int], None]  # stage text, done, total
_ROW_FIELDS = ("batch", "row_no", "status", "atena_no", "method", "exam_id", "fact", "diff", "raw",
               "problems", "flags", "candidates")  # fmt: skip
# The exam's own columns on a staged row (new and updated rows), as the commit copies them.
EXAM_FIELDS = ("programme", "exam_date", "setting", "institution_code", "results",
               "smoking_index", "follow_up_due", "needs_seiken", "hpv_follow_up", "voucher_no",
               "coupon_no", "place", "age_at_exam", "fy_end_age", "complication",
               "billing_category", "billing_month", "seiken")  # fmt: skip
_NO_EXAM = ("", None, "", "", None, None, None, False, False, "", "", "", None, None, "", "", None,
            None)  # fmt: skip
_JSON_FIELDS = frozenset({"fact", "diff", "raw", "problems", "flags", "candidates", "results",
                          "seiken"})  # fmt: skip
_ALL_FIELDS = _ROW_FIELDS + EXAM_FIELDS


class IntakeError(ValueError):
    """The step was refused; the message (Japanese) says why and what to do."""


# ------------------------------------------------------------------------------ context


def _short(name: str) -> str:
    return name.removesuffix("検診")


def build_context(fiscal_year: int) -> rules.Context:
    """The year's methods as the row checks need them (codes and names both accepted)."""
    try:
        catalogue = programs.catalogue(fiscal_year)
    except programs.CatalogueMissing as exc:
        raise IntakeError(f"{fiscal_year}年度の検診事業の定義がありません") from exc
    methods: dict[str, rules.MethodRule] = {}
    programmes: dict[str, str] = {}
    for programme in catalogue.programmes:
        for alias in (programme.code, programme.name, _short(programme.name)):
            programmes[alias] = programme.code
        seiken = programs.seiken_of(programme.code)
        for method in programme.methods:
            spec = programs.results_of(method.code)
            if spec is None:
                continue
            values = {
                item.code: {
                    alias: v.code for v in item.vocabulary.values for alias in (v.code, v.label)
                }
                for item in spec.items
            }
            rule = rules.MethodRule(
                code=method.code, name=method.name, programme=programme.code,
                programme_name=programme.name, sex=method.sex, min_age=method.min_age,
                max_age=method.max_age,
                settings=tuple(method.settings), items=tuple(i.code for i in spec.items),
                required=frozenset(i.code for i in spec.items if i.required), values=values,
                triage=spec.rule == "triage",
                days=partial(programs.days_problems, method.code, names=HEADERS)
                if spec.rule == "days" else None,
                seiken_methods=frozenset(m.code for m in seiken.methods) if seiken else frozenset(),
                seiken_results=frozenset(seiken.results) if seiken else frozenset(),
                others=tuple(k for k in RESULT_KEYS if k not in values),
            )  # fmt: skip
            methods[method.code] = methods[method.name] = rule
    max_text = {"place": 100, "complication": 200, "billing_category": 20,
                "seiken_institution": 200, "name_kana": 100}  # fmt: skip
    return rules.Context(fiscal_year, clock.today(), methods, programmes, max_text)


# ------------------------------------------------------------------------------ staging


@dataclass
class StageCounts:
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    error: int = 0
    quarantined: int = 0
    flagged: int = 0

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Seen:
    """What earlier chunks of the file left for the cross-row checks."""

    exams: dict[tuple[str, str, date | None, bool], int] = field(default_factory=dict)
    vouchers: dict[tuple[str, str], tuple[str, str, int]] = field(default_factory=dict)


def _reports_seiken(fact: dict[str, Any]) -> bool:
    """The row brings a 精検 report: a result or a day (the other 精検 columns alone are not)."""
    report = fact["seiken"]
    return bool(report and (report.get("result") or report.get("exam_date")))


def exam_values(fact: dict[str, Any]) -> tuple[Any, ...]:
    """A fact (rules.fact_of) as the staged row's exam columns, 要精検 decided by screening's
    rule for the exam (the same function every other way of recording an exam uses)."""
    day = date.fromisoformat(fact["exam_date"])
    seiken, due = screening.exam_outcome(fact["method"], day, fact["results"],
                                         follow_up=fact["hpv_follow_up"])  # fmt: skip
    month = fact["billing_month"]
    report = fact["seiken"]
    return (
        fact["programme"], day, fact["setting"], fact["institution_code"], fact["results"],
        fact["smoking_index"], due, seiken, fact["hpv_follow_up"], fact["voucher_no"],
        fact["coupon_no"], fact["place"], fact["age_at_exam"], fact["fy_end_age"],
        fact["complication"], fact["billing_category"],
        date.fromisoformat(month) if month else None,
        report if _reports_seiken(fact) else None,
    )  # fmt: skip


def _problems(items: Sequence[rules.Problem]) -> list[dict[str, str]] | None:
    return [p.as_dict() for p in items] or None


def _stage_chunk(
    batch: ImportBatch,
    chunk: list[rules.CheckedRow],
    seen: _Seen,
    counts: StageCounts,
) -> list[tuple[Any, ...]]:
    """Match a chunk of checked rows and decide each one's status; return staged-row tuples."""
    vouchers = screening.vouchers_by_number(r.voucher_no for r in chunk if r.voucher_no)
    for r in chunk:
        if r.voucher_no and r.voucher_no not in vouchers and not r.problems:
            if not screening.voucher_is_well_formed(r.voucher_no):
                rules.refuse_mistyped_voucher(r)
    wanted = {r.atena_no for r in chunk if r.atena_no} | {v.atena_no for v in vouchers.values()}
    people = residents.identities_of(wanted)  # fields as rules.PersonInfo
    matches = {
        id(r): rules.match_row(
            r,
            vouchers.get(r.voucher_no),  # the same fields as rules.VoucherInfo
            people,
            sender_institution=batch.sender_institution,
        )
        for r in chunk
        if not r.problems
    }
    matched = {m.atena_no for m in matches.values() if m.atena_no}
    stored = {
        (e.atena_no, e.method, e.exam_date, e.hpv_follow_up): e
        for e in screening.exams_on_record(matched, batch.fiscal_year)
    }
    uses: dict[str, list[screening.VoucherUse]] = {}
    for use in screening.voucher_uses(r.voucher_no for r in chunk if r.voucher_no):
        uses.setdefault(use.voucher_no, []).append(use)
    out = []
    for row in chunk:
        match = matches.get(id(row))
        status, atena, exam_id, fact, diff, reasons = _decide(row, match, people, stored, uses,
                                                              seen)  # fmt: skip
        counts.add(status)
        counts.rows += 1
        if row.flags:
            counts.flagged += 1
        keep_raw = status in (RowStatus.ERROR, RowStatus.QUARANTINED) or bool(row.flags)
        exam = _NO_EXAM
        if fact is not None:
            exam = exam_values(fact)
        stored_fact = fact if status == RowStatus.UPDATED else None
        if status == RowStatus.QUARANTINED:
            stored_fact = {"cells": row.source.cells}
        out.append((
            batch.pk, row.source.row_no, status, atena or "", row.method.code if row.method else "",
            exam_id, stored_fact, diff, row.source.raw if keep_raw else None,
            _problems(reasons), _problems(row.flags),
            list(match.candidates) if match and status == RowStatus.QUARANTINED else None,
            *exam,
        ))  # fmt: skip
    return out


def _decide(
    row: rules.CheckedRow,
    match: rules.Match | None,
    people: dict[str, rules.PersonInfo],
    stored: dict[tuple[str, str, date | None, bool], screening.StoredExam],
    uses: dict[str, list[screening.VoucherUse]],
    seen: _Seen,
) -> tuple[str, str, int | None, Any, Any, list[rules.Problem]]:
    if row.problems:
        return RowStatus.ERROR, "", None, None, None, row.problems
    assert match is not None and row.method is not None  # nosec B101 - checked rows are matched
    if match.atena_no is None:
        return RowStatus.QUARANTINED, "", None, None, None, list(match.reasons)
    atena = match.atena_no
    key = row.key(atena)
    earlier = seen.exams.get(key)
    if earlier is not None:
        problem = rules.Problem(
            "exam_date",
            row.source.cells.get("exam_date", ""),
            f"同じ受診（同じ人・検査方法・受診日）が {earlier} 行目にもあります",
        )
        return RowStatus.ERROR, "", None, None, None, [problem]  # fmt: skip
    reasons = _voucher_reasons(row, atena, key, uses, seen)
    if reasons:
        return RowStatus.QUARANTINED, "", None, None, None, reasons
    if (row.seiken or row.seiken_untaken) and not _needs_seiken(row):
        problem = rules.Problem("seiken_result", row.source.cells.get("seiken_result", ""),
                                "要精検でない受診に精密検査の記録があります")  # fmt: skip
        return RowStatus.ERROR, "", None, None, None, [problem]
    seen.exams[key] = row.source.row_no
    if row.voucher_no:
        seen.vouchers[(row.voucher_no, row.method.programme)] = (
            atena,
            row.institution_code,
            row.source.row_no,
        )
    fact = rules.fact_of(row, atena, people[atena].birth_date)
    on_record = stored.get(key)
    if on_record is None:
        return RowStatus.NEW, atena, None, fact, None, []
    if on_record.values["institution_code"] != row.institution_code:
        # Only the clinic that did the exam corrects it: another clinic's row for the same
        # person, method and day is a mix-up until staff have looked (a wrong voucher, a
        # duplicate visit), never a silent overwrite.
        problem = rules.Problem("institution_code", row.institution_code,
                                f"この受診は別の医療機関（{on_record.values['institution_code']}）"
                                "の記録として登録済みです")  # fmt: skip
        return RowStatus.QUARANTINED, "", None, None, None, [problem]
    if _reports_seiken(fact):
        # The file brings a 精検 result for an exam already on record: the case is kept on
        # the ledger, where each report is recorded with its source; not guessed here.
        problem = rules.Problem("seiken_result", row.source.cells.get("seiken_result", ""),
                                "登録済みの受診の精密検査の結果です。受診台帳の精密検査の記録に"
                                "登録してください")  # fmt: skip
        return RowStatus.ERROR, "", None, None, None, [problem]
    if programs.days_agree(row.method.code, on_record.values.get("results") or {},
                           fact["results"]):  # fmt: skip
        # A 2日分 judgement (the national format's) of an exam on record with its days, and
        # the same judgement: the file says less, it corrects nothing — the days are kept.
        fact = {**fact, "results": on_record.values["results"]}
    diff = rules.diff_of(fact, on_record.values)
    if not diff:
        return RowStatus.UNCHANGED, atena, on_record.exam_id, None, None, []
    if on_record.has_case and not _needs_seiken(row):
        problem = rules.Problem("", "", "精密検査を追跡中の受診を要精検でなくする訂正です。"
                                        "受診台帳から訂正してください")  # fmt: skip
        return RowStatus.ERROR, "", None, None, None, [problem]
    return RowStatus.UPDATED, atena, on_record.exam_id, fact, diff, []


def _needs_seiken(row: rules.CheckedRow) -> bool:
    """要精検 by the rule every recorded exam goes through (screening.exam_outcome)."""
    assert row.method is not None and row.exam_date is not None  # nosec B101 - checked rows
    return screening.exam_outcome(row.method.code, row.exam_date, row.results,
                                  follow_up=row.hpv_follow_up)[0]  # fmt: skip


def _voucher_reasons(
    row: rules.CheckedRow,
    atena: str,
    key: tuple[str, str, date | None, bool],
    uses: dict[str, list[screening.VoucherUse]],
    seen: _Seen,
) -> list[rules.Problem]:
    """A voucher is one person's, for one exam of its programme in its year: a voucher used by
    someone else, or at another clinic on another day, is a sign of a mix-up."""
    if not row.voucher_no or row.method is None:
        return []
    out = []
    for use in uses.get(row.voucher_no, []):
        same_exam = (use.atena_no, use.exam_date) == (atena, row.exam_date)
        if use.atena_no != atena:
            out.append(rules.Problem("voucher_no", row.voucher_no,
                                     "この受診券番号は別の人の受診で使われています"))  # fmt: skip
        elif (
            use.programme == row.method.programme
            and not same_exam
            and (use.institution_code != row.institution_code)
        ):
            out.append(rules.Problem("voucher_no", row.voucher_no,
                                     f"この受診券は別の医療機関の受診（{use.exam_date}）で"
                                     "使われています"))  # fmt: skip
    earlier = seen.vouchers.get((row.voucher_no, row.method.programme))
    if earlier is not None and earlier[1] != row.institution_code:
        out.append(rules.Problem("voucher_no", row.voucher_no,
                                 f"同じ受診券が {earlier[2]} 行目の別の医療機関の受診にも"
                                 "使われています"))  # fmt: skip
    return out[:1] if out else []


def _checked(source: Source, ctx: rules.Context) -> Iterator[rules.CheckedRow]:
    for src in source.rows:
        yield rules.check_row(src, ctx)


def stage(batch: ImportBatch, path: Any, profile: Profile | None,
          progress: Progress | None = None,
          on_staged: Callable[[ImportBatch], None] | None = None) -> StageCounts:  # fmt: skip
    """Read, check and match the batch's file into staged rows (replacing earlier ones).

    Raises :class:`FileRefused` for a file that cannot be read as a whole; nothing is staged.
    """
    ctx = build_context(batch.fiscal_year)
    counts = StageCounts()
    seen = _Seen()
    # Outside any transaction of the caller's, everything the look-ups read is committed (this
    # transaction only replaces the batch's staged rows): a second connection sees it too.
    apart = not connection.in_atomic_block and settings.INTAKE_LOOK_UP_APART
    with transaction.atomic():
        StagedRow.objects.filter(batch=batch).delete()
        StagedFrame.objects.filter(batch=batch).delete()
        source = open_file(path, profile)
        batch.kind, batch.encoding = source.kind, source.facts.encoding
        batch.header, batch.columns = source.header, source.columns
        label = "ファイルを読み、確認・照合しています"
        plain = columnar.read_plain(source, profile) if settings.INTAKE_COLUMNAR else None
        if plain is not None:
            source.close()
            total = plain.lines.height
            if progress is not None:
                progress(label, 0, total)
            split = columnar.split(plain, ctx, batch.pk, batch.sender_institution, _ALL_FIELDS,
                                   look_up_apart=apart)  # fmt: skip
            if split.clean.height:
                StagedFrame.objects.create(
                    batch=batch, rows=split.clean.height, data=columnar.to_parquet(split.clean)
                )
            counts.rows = counts.new = split.clean.height
            if progress is not None:
                progress(label, split.clean.height, total)
            rows: Iterator[rules.CheckedRow] = split.rest
        else:
            rows = _checked(source, ctx)
        while chunk := list(islice(rows, CHUNK)):
            bulk_insert(StagedRow, _ALL_FIELDS, _jsonable(_stage_chunk(batch, chunk, seen, counts)))
            if progress is not None:
                if plain is not None:
                    progress(label, counts.rows, plain.lines.height)
                else:
                    progress(label, source.position(), source.total)
        if counts.rows == 0:
            raise FileRefused("データの行がありません（見出しの行だけです）")
        notes = []
        if source.ignored:
            notes.append("読まなかった列: " + "、".join(source.ignored[:20]))
        batch.counts = counts.as_dict()
        batch.state = BatchState.STAGED
        batch.staged_at = clock.now()
        batch.message = "。".join(notes)
        batch.save()
        if on_staged is not None:
            on_staged(batch)
    return counts


def _jsonable(rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """JSON columns as text for the bulk writer (COPY and executemany take no dicts)."""
    json_at = [i for i, name in enumerate(_ALL_FIELDS) if name in _JSON_FIELDS]
    for row in rows:
        values = list(row)
        for i in json_at:
            if values[i] is not None:
                values[i] = json.dumps(values[i], ensure_ascii=False, default=str)
        yield tuple(values)


def staged_rows(batch: ImportBatch, status: str | None = None) -> list[StagedRow]:
    """Every staged row of the batch in row order — StagedRows and the clean rows staged
    together (StagedFrame, as unsaved StagedRows) — optionally of one status."""
    qs = StagedRow.objects.filter(batch=batch)
    rows = list(qs.filter(status=status) if status else qs)
    clean = columnar.staged_frame(batch) if status in (None, RowStatus.NEW) else None
    if clean is not None:
        rows += frame_rows(clean)
    return sorted(rows, key=lambda r: (r.row_no, r.method))


def frame_rows(frame: Any) -> list[StagedRow]:
    """Rows of a StagedFrame as (unsaved) StagedRows, JSON columns decoded."""
    out = []
    for record in frame.iter_rows(named=True):
        batch_id = record.pop("batch")
        for name in _JSON_FIELDS:
            if isinstance(record.get(name), str):
                record[name] = json.loads(record[name])
        out.append(StagedRow(batch_id=batch_id, **record))
    return out


# ------------------------------------------------------------------------------ commit


def _exam_fact(row: StagedRow, by: str) -> screening.ExamFact:
    """A new row that brings its 精検 report: through the bulk path that records reports."""
    seiken = row.seiken or {}
    report = screening.SeikenReportFact(
        from_institution=True,
        exam_date=date.fromisoformat(seiken["exam_date"]) if seiken.get("exam_date") else None,
        institution=seiken.get("institution", ""),
        method=seiken.get("method", ""),
        result=seiken.get("result", ""),
    )
    assert row.exam_date is not None  # nosec B101 - new rows carry their exam
    return screening.ExamFact(
        atena_no=row.atena_no, programme=row.programme, method=row.method,
        exam_date=row.exam_date, setting=row.setting, institution_code=row.institution_code,
        smoking_index=row.smoking_index, results=row.results, hpv_follow_up=row.hpv_follow_up,
        voucher_no=row.voucher_no, coupon_no=row.coupon_no, place=row.place,
        age_at_exam=row.age_at_exam, fy_end_age=row.fy_end_age, complication=row.complication,
        billing_category=row.billing_category, billing_month=row.billing_month, recorded_by=by,
        recorded_at=clock.now(), follow_up=screening.FollowUpFact(reports=(report,)),
    )  # fmt: skip


def _new_rows_sql(batch: ImportBatch) -> tuple[str, list[Any]]:
    """SELECT of the batch's new StagedRows (without a 精検 report) in the exam table's columns."""
    table = StagedRow._meta.db_table
    given = {"fiscal_year": "%s"}
    columns = ", ".join(f"{given.get(c, c)} AS {c}" for c in screening.EXAM_COLUMNS)
    return (
        f"SELECT {columns} FROM {table} WHERE batch_id = %s AND status = %s "  # noqa: S608  # nosec B608 - names from code
        "AND seiken IS NULL",
        [batch.fiscal_year, batch.pk, RowStatus.NEW.value],
    )


_NEW_ROWS = "intake_commit_new"  # the commit's temporary table of new rows


@contextmanager
def _new_rows(batch: ImportBatch, clean: Any) -> Iterator[tuple[str, list[Any]]]:
    """The SELECT of every new row of the batch without a 精検 report — the StagedRows and the
    clean rows staged together (StagedFrame) — for ``screening.insert_exams_from``.

    The frame's rows go into a temporary table (COPY / executemany), only the columns that
    vary: a column with one value in every clean row (the year, the blank クーポン番号 and
    請求月, often 偶発症 and 請求区分) is given once, in the SELECT. They go in sorted by
    宛名番号 (the few StagedRows after them): the exam table's person index then grows in
    order. PostgreSQL, told the table's size (ANALYZE), hashes the look-ups for 初回 and for
    exams already on record instead of probing the index 300,000 times; JIT is off for it
    (compiling the plan cost 0.4 s of a 3 s statement) and its hashes get 64 MB (for this
    transaction only).
    """
    staged_select, staged_params = _new_rows_sql(batch)
    if clean is None:
        yield staged_select, staged_params
        return
    columns = list(screening.EXAM_COLUMNS)
    frame = clean.with_columns(fiscal_year=batch.fiscal_year).select(columns)
    keys = ("atena_no", "method", "exam_date", "hpv_follow_up")  # what an exam is: always read
    constant = {
        c: frame[c][0]
        for c in columns
        if c == "fiscal_year" or (c not in keys and frame[c].n_unique() == 1)
    }
    varying = [c for c in columns if c not in constant]
    table = StagedRow._meta.db_table
    shape = f"SELECT {', '.join(varying)} FROM {table} WHERE 1 = 0"  # noqa: S608  # nosec B608 - names from code
    postgres = connection.vendor == "postgresql"
    own = f"{'pg_temp' if postgres else 'temp'}.{_NEW_ROWS}"  # this session's, never a table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TABLE IF EXISTS {own}"
        )  # left by an earlier commit in this transaction
        cursor.execute(f"CREATE TEMP TABLE {_NEW_ROWS} AS {shape}")
        insert_frame_into(_NEW_ROWS, varying, frame.select(varying).sort("atena_no"))
        if postgres:
            cursor.execute(f"ANALYZE {_NEW_ROWS}")
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
    picked = ", ".join(c if c in varying else f"%s AS {c}" for c in columns)
    try:
        yield (
            f"SELECT {picked} FROM {_NEW_ROWS} UNION ALL {staged_select}",  # noqa: S608  # nosec B608 - names from code
            [constant[c] for c in columns if c in constant] + staged_params,
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {own}")


@dataclass
class CommitCounts:
    written: int = 0
    revised: int = 0
    already: int = 0  # new at staging, on record by the commit (another batch took them in)
    left: int = 0  # rows not committed (errors, quarantine, rejected)


def needs_approval(batch: ImportBatch) -> bool:
    """A batch above the configured size needs a second person's approval before commit."""
    counts = batch.counts or {}
    return counts.get("new", 0) + counts.get("updated", 0) > settings.INTAKE_APPROVAL_ROWS


def commit(
    batch_id: int,
    actor: Any,
    mode: str,
    progress: Progress | None = None,
    on_committed: Callable[[ImportBatch, CommitCounts], None] | None = None,
) -> CommitCounts:
    """Write the batch's new and corrected exams — all of it or nothing — and mark it committed.

    ``mode`` ALL refuses while any row is in error or waits in quarantine; VALID_ONLY commits
    the rest and leaves those rows for the error file.
    """
    by = audit.actor_of(actor).username
    counts = CommitCounts()
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(
            pk=batch_id, municipality_code=settings.MUNICIPALITY_CODE
        )
        if batch.state == BatchState.COMMITTED:
            raise IntakeError("この取込はすでに確定しています（何も変わりません）")
        if batch.state != BatchState.STAGED:
            raise IntakeError(
                f"確認が済んでいない取込は確定できません（状態: {batch.get_state_display()}）"
            )
        if needs_approval(batch) and not batch.approved_by:
            raise IntakeError(
                f"{settings.INTAKE_APPROVAL_ROWS:,} 件を超える取込は、"
                "確定の前に別の職員の承認が必要です"
            )
        pending = StagedRow.objects.filter(
            batch=batch, status__in=[RowStatus.ERROR, RowStatus.QUARANTINED]
        ).count()
        if mode == CommitMode.ALL and pending:
            raise IntakeError(
                f"エラーまたは照合保留の行が {pending:,} 行あります。直して送り直すか、"
                "照合保留を解決するか、「正しい行だけ」を選んでください"
            )
        clean = columnar.staged_frame(batch)
        new_total = StagedRow.objects.filter(batch=batch, status=RowStatus.NEW).count() + (
            clean.height if clean is not None else 0
        )
        if progress is not None:
            progress("受診記録を書き込んでいます", 0, max(new_total, 1))
        with _new_rows(batch, clean) as (select, params):
            counts.written = screening.insert_exams_from(
                select, params, fiscal_year=batch.fiscal_year, actor=actor, recorded_by=by,
                source=f"intake:{batch.pk}",
            )  # fmt: skip
        with_reports = [
            _exam_fact(r, by)
            for r in StagedRow.objects.filter(
                batch=batch, status=RowStatus.NEW, seiken__isnull=False
            )
        ]
        if with_reports:
            on_record = {
                (e.atena_no, e.method, e.exam_date, e.hpv_follow_up)
                for e in screening.exams_on_record(
                    {f.atena_no for f in with_reports}, batch.fiscal_year
                )
            }
            fresh = [
                f for f in with_reports
                if (f.atena_no, f.method, f.exam_date, f.hpv_follow_up) not in on_record
            ]  # fmt: skip
            try:
                counts.written += screening.record_exam_history(
                    fresh, actor=actor, source=f"intake:{batch.pk}"
                )
            except ValueError as exc:  # a rule changed since staging: nothing is written
                raise IntakeError(
                    f"確定できませんでした（{exc}）。もう一度確認してください"
                ) from None
        counts.already = new_total - counts.written
        if progress is not None:
            progress("受診記録を書き込んでいます", new_total, max(new_total, 1))
        updated = list(StagedRow.objects.filter(batch=batch, status=RowStatus.UPDATED))
        revisions = [(r.exam_id, {k: r.fact.get(k) for k in r.diff}) for r in updated]
        expected = [{k: old for k, (old, _new) in r.diff.items()} for r in updated]
        try:
            counts.revised = screening.revise_exams(
                actor, revisions, source=f"intake:{batch.pk}", expected=expected
            )
        except screening.RevisionRefused as exc:
            raise IntakeError(str(exc)) from None
        counts.left = (
            pending + StagedRow.objects.filter(batch=batch, status=RowStatus.REJECTED).count()
        )
        batch.state = BatchState.COMMITTED
        batch.commit_mode = mode
        batch.committed_by = by
        batch.committed_at = clock.now()
        batch.counts = {**batch.counts, "written": counts.written, "revised": counts.revised,
                        "already": counts.already, "left": counts.left}  # fmt: skip
        batch.save()
        if on_committed is not None:
            on_committed(batch, counts)
    return counts


__all__ = ["CHUNK", "IntakeError", "build_context", "commit", "stage", "staged_rows"]
