"""Staging a plain CSV file column by column: the fast path of ``pipeline.stage``.

Why: checked one row at a time, a 300,000-row file cost about 45 µs of Python per row across
reading, checking, matching and deciding (bench/README.md, result intake). Most rows of a
clinic's file have nothing wrong with them. Here polars reads the file as columns, checks them
as expressions, joins the vouchers and the register as frames, and decides which rows are
*clean*: rows the row-by-row path would stage as a new exam with no problem, flag or doubt.
Those are staged straight from the frame. Every other row — any doubt at all — goes through the
row-by-row path (``rules.check_row``, ``rules.match_row``, ``pipeline._decide``), the one place
that decides problems and words them. ``test_columnar.py`` holds the two paths to the same
staged rows, on the adversarial files and on randomly spoiled ones.

A row is clean when every cell is in the plain form the row path accepts without folding
(ASCII digits, an exact code or label, a date ``_parsed_date`` reads), no cell the method does
not have is filled, no 精検・クーポン・請求月・宛名番号 cell is filled, no free text looks like a
formula or is too long; its voucher was issued for its programme and year to a resident whose
birth date and sex agree, whose kana agrees (the same text, or the same once widths and spaces
are set aside — ``kana_fold``), who is in the method's sex and age band; no exam of that person,
method and day is on record and the voucher was never used; and the file has no other row with
the same exam or the same voucher and programme. The last point keeps the row path's cross-row
checks (``pipeline._Seen``) exact: the rows it sees share no key with a clean row.

The fast path is not taken for a file that is not plain: a workbook or FHIR, a profile that
rewrites values, quotes, a lone CR, separator control characters (which Python's ``str.strip``
removes and polars' does not), a line longer than a cell may be, more rows than the limit, or
bytes the encoding cannot decode. The row-by-row path reads those as before — and refuses the
ones it must, with its own messages.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
from django.conf import settings
from django.db import connection

from kenshin.intake import rules
from kenshin.intake.layout import RESULT_KEYS, SourceRow
from kenshin.intake.models import StagedFrame
from kenshin.intake.readers import MAX_CELL, Profile, Source, row_of
from kenshin.residents import services as residents
from kenshin.screening import services as screening

# Quotes, NUL and the separator controls. Looked for in the file's bytes: in UTF-8 and in CP932
# (whose second bytes are 0x40 and above) these bytes only ever stand for these characters,
# and ``bytes.__contains__`` finds them ten times faster than a regex reads the text.
_NOT_PLAIN = (b'"', b"\x00", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_TEN_DIGITS = r"^[0-9]{10}$"
_FORMULA = r"^[=+\-@\t\r\x00]"
# Cells that a clean row leaves blank: the row path folds, checks or keeps them in ways that
# are not worth a second implementation (they are rare in a clinic's monthly file).
_BLANK = ("atena_no", "coupon_no", "billing_month", "seiken_date", "seiken_institution",
          "seiken_method", "seiken_result")  # fmt: skip
# Kana compared by kana_fold only when both are in this alphabet: katakana, ー, half-width
# katakana, spaces. Outside it (hiragana, Latin, symbols) the row path decides.
_KANA_PLAIN = r"^[\u30a1-\u30fa\u30fc\uff66-\uff9f \u3000]*$"


@dataclass
class Plain:
    """A plain CSV file read as lines: its data lines with their row numbers."""

    lines: pl.DataFrame  # row_no (header = 1), line
    keys: list[str]  # our key per file column ('' = not read)
    width: int


def read_plain(source: Source, profile: Profile | None) -> Plain | None:
    """The file as lines, when it is plain enough that a line split at commas is exactly what
    ``csv`` would read (see the module docstring); None otherwise."""
    facts = source.facts
    if source.kind != "csv" or (profile is not None and profile.values):
        return None
    raw = facts.path.read_bytes()
    try:
        text = raw.decode(facts.encoding)
    except UnicodeDecodeError:
        return None
    if any(b in raw for b in _NOT_PLAIN) or raw.count(b"\r") != raw.count(b"\r\n"):
        return None
    del raw
    data = text.encode("utf-8")
    del text
    # One column per line (the separator cannot occur: _NOT_PLAIN), blank lines kept as
    # nulls, so that a line's position is its row number.
    lines = pl.read_csv(
        io.BytesIO(data), has_header=False, separator="\x1f", quote_char=None,
        schema={"line": pl.String},
    ).with_row_index("row_no", offset=1).slice(1)  # fmt: skip
    del data
    if lines.height and (lines["line"].str.len_chars().max() or 0) > MAX_CELL:
        return None
    # Blank lines are skipped (as RowStream does), their numbers kept.
    lines = lines.filter(pl.col("line").str.strip_chars() != "")
    if not 0 < lines.height <= settings.INTAKE_MAX_ROWS:
        return None
    lines = lines.with_columns(pl.col("row_no").cast(pl.Int64))
    return Plain(lines, source.columns, len(source.header))


# ------------------------------------------------------------------------------ cells


def _cells(plain: Plain) -> pl.DataFrame:
    """The lines of the header's width, split into our columns (stripped, as readers._row)."""
    width = plain.width
    framed = plain.lines.filter(
        pl.col("line").str.count_matches(",", literal=True) == width - 1
    ).with_columns(pl.col("line").str.split_exact(",", width - 1).alias("cells"))
    fields = [f"field_{i}" for i in range(width)]
    picked = [
        pl.col("cells").struct.field(fields[i]).str.strip_chars().alias(key)
        for i, key in enumerate(plain.keys)
        if key
    ]
    return framed.select("row_no", *picked)


def _col(frame: pl.DataFrame, key: str) -> pl.Expr:
    return pl.col(key) if key in frame.columns else pl.lit("")


_ISO_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _dates(values: pl.Series) -> pl.Series:
    """Dates as the row path reads them: ``YYYY-MM-DD`` as ``date.fromisoformat`` reads it
    (parse_date's own fast path; an impossible day stays null), every other distinct text
    (和暦, slashes, 8 digits…) once by the row path's reader."""
    iso = values.str.contains(_ISO_DAY)
    mapping = {}
    for text in values.filter(~iso).unique().drop_nulls().to_list():
        day = rules.read_date(text)
        if day is not None:
            mapping[text] = day
    others = values.replace_strict(mapping, default=None, return_dtype=pl.Date)
    return (
        pl.select(
            pl.when(pl.lit(iso)).then(pl.lit(values).str.to_date("%Y-%m-%d", strict=False))
            .otherwise(pl.lit(others))
        ).to_series().alias(values.name)
    )  # fmt: skip


def kana_fold(expr: pl.Expr) -> pl.Expr:
    """Kana with widths and spaces set aside (NFKC, no spaces): two names that fold alike are
    names the row path's ``rules.kana_matches`` also takes as one (test_columnar checks it)."""
    return expr.str.normalize("NFKC").str.replace_all(" ", "", literal=True)


_METHOD_COLUMNS = {"_method_ok": pl.Boolean, "_method": pl.String, "_programme": pl.String,
                   "_rule_sex": pl.Int64, "_min_age": pl.Int64, "_max_age": pl.Int64,
                   "_results": pl.String}  # fmt: skip  # what _rule_columns adds


def _method_checks(frame: pl.DataFrame, ctx: rules.Context) -> pl.DataFrame:
    """Per method: its code, programme, sex and age band, the result codes as JSON, and
    whether every method-specific check passes (a row of no known method: not ok).

    Each method's rows are checked apart (partition_by): as one expression over the whole
    frame, every method's checks and JSON were computed for every row."""
    if "method" not in frame.columns:
        frame = frame.with_columns(method=pl.lit(""))
    known = pl.col("method").is_in(list(ctx.methods))
    unknown = [pl.lit(None, t).alias(k) for k, t in list(_METHOD_COLUMNS.items())[1:]]
    # Rows of no known method (however many different texts) are one part, never checked.
    parts = [frame.filter(~known).with_columns(pl.lit(False).alias("_method_ok"), *unknown)]
    for (text,), part in frame.filter(known).partition_by("method", as_dict=True).items():
        parts.append(part.with_columns(*_rule_columns(part, ctx.methods[text], ctx)))
    return pl.concat(parts, how="vertical_relaxed").sort("row_no")


def _rule_columns(part: pl.DataFrame, rule: rules.MethodRule, ctx: rules.Context) -> list[pl.Expr]:
    programme = _col(part, "programme")
    follow_up = pl.col("_follow_up")
    conditions = [
        (programme == "")
        | (programme.replace_strict(dict(ctx.programmes), default=None) == rule.programme),
        pl.col("_setting").is_in(list(rule.settings)),
        follow_up.not_() | pl.lit(rule.triage),
    ]
    others = [k for k in rule.others or RESULT_KEYS if k not in rule.values]
    conditions += [_col(part, k) == "" for k in others]
    pieces = []
    codes = {}
    for item in rule.items:
        cell = _col(part, item)
        mapping = {a: json.dumps(c, ensure_ascii=False) for a, c in rule.values[item].items()}
        coded = cell.replace_strict(mapping, default=None, return_dtype=pl.String)
        codes[item] = coded
        conditions.append((cell == "") | coded.is_not_null())
        if item in rule.required:
            conditions.append(cell != "")
        pieces.append(pl.lit(json.dumps(item) + ": ") + coded)
    if rule.days is not None:
        # Only every day given and no 2日分 judgement is taken here; the other shapes (and
        # their messages) are the row path's.
        *days, whole = rule.items
        conditions += [_col(part, d) != "" for d in days] + [_col(part, whole) == ""]
    if rule.triage:
        positive = codes.get("hpv") == json.dumps("positive")
        missing = pl.any_horizontal([_col(part, i) == "" for i in rule.items[1:]])
        conditions.append(~(follow_up.not_() & positive & missing))
    joined = pl.concat_str(pieces, separator=", ", ignore_nulls=True)
    return [
        pl.all_horizontal(conditions).fill_null(False).alias("_method_ok"),
        pl.lit(rule.code).alias("_method"),
        pl.lit(rule.programme).alias("_programme"),
        pl.lit({"any": 0, "male": 1, "female": 2}[rule.sex], pl.Int64).alias("_rule_sex"),
        pl.lit(rule.min_age, pl.Int64).alias("_min_age"),
        pl.lit(rule.max_age if rule.max_age is not None else 999, pl.Int64).alias("_max_age"),
        (pl.lit("{") + joined.fill_null("") + pl.lit("}")).alias("_results"),
    ]


def _checked(cells: pl.DataFrame, ctx: rules.Context) -> pl.DataFrame:
    """Typed values and ``_ok``: every check of ``rules.check_row`` passes for the row."""
    c = lambda key: _col(cells, key)  # noqa: E731
    fy = ctx.fiscal_year
    frame = cells.with_columns(
        _dates(cells["birth_date"]).alias("_birth") if "birth_date" in cells.columns
        else pl.lit(None, pl.Date).alias("_birth"),
        _dates(cells["exam_date"]).alias("_exam") if "exam_date" in cells.columns
        else pl.lit(None, pl.Date).alias("_exam"),
        c("sex").replace_strict(rules.SEX, default=None, return_dtype=pl.Int64).alias("_sex"),
        c("setting").replace_strict(rules.SETTING, default=None).alias("_setting"),
        c("hpv_follow_up").replace_strict(rules.FLAG, default=None, return_dtype=pl.Boolean)
        .alias("_follow_up"),
    )  # fmt: skip
    frame = _method_checks(frame, ctx)
    limits = ctx.max_text
    text_ok = [
        c(key).str.contains(_FORMULA).not_() & (c(key).str.len_chars() <= limits[key])
        for key in ("name_kana", "place", "complication", "billing_category")
    ]
    smoking = c("smoking_index")
    checks = [
        pl.col("_method_ok"),
        c("voucher_no").str.contains(_TEN_DIGITS),
        c("institution_code").str.contains(_TEN_DIGITS),
        pl.col("_birth").is_not_null(),
        pl.col("_exam").is_not_null(),
        pl.col("_exam") <= ctx.today,
        pl.col("_exam").is_between(date(fy, 4, 1), date(fy + 1, 3, 31)),
        pl.col("_birth") <= pl.col("_exam"),
        pl.col("_sex").is_not_null(),
        pl.col("_setting").is_not_null(),
        pl.col("_follow_up").is_not_null(),
        (smoking == "") | smoking.str.contains(r"^[0-9]{1,4}$"),
        *text_ok,
        *[c(key) == "" for key in _BLANK],
    ]
    return frame.with_columns(
        pl.all_horizontal(checks).fill_null(False).alias("_ok"),
        pl.when(smoking == "").then(None).otherwise(smoking).cast(pl.Int64, strict=False)
        .alias("_smoking"),
    )  # fmt: skip


# What the later steps read of the checked cells (the rest is dropped chunk by chunk).
_KEPT = (
    "row_no", "voucher_no", "name_kana", "institution_code", "place", "complication",
    "billing_category", "_birth", "_exam", "_sex", "_setting", "_follow_up", "_method",
    "_programme", "_rule_sex", "_min_age", "_max_age", "_results", "_ok", "_smoking",
)  # fmt: skip
CHUNK = 100_000


def _prepared(plain: Plain, ctx: rules.Context) -> pl.DataFrame:
    """Split and check the lines a chunk at a time, keeping only the columns the later steps
    read: a 300,000-row file split into all its columns at once held 330 MiB more."""
    parts = []
    for start in range(0, plain.lines.height, CHUNK):
        chunk = Plain(plain.lines.slice(start, CHUNK), plain.keys, plain.width)
        checked = _checked(_cells(chunk), ctx)
        parts.append(checked.select(_col(checked, k).alias(k) for k in _KEPT))
    return pl.concat(parts, how="vertical_relaxed")


# ------------------------------------------------------------------------------ matching


def _month_day(day: pl.Expr) -> pl.Expr:
    """MMDD as one integer (polars gives the month as Int8, which 12 * 100 overflows)."""
    return day.dt.month().cast(pl.Int32) * 100 + day.dt.day().cast(pl.Int32)


def _frame(rows: Sequence[tuple[Any, ...]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def _holders(numbers: list[str], fiscal_year: int) -> pl.DataFrame:
    """The vouchers issued under these (distinct, sorted) numbers with their holders, in the
    columns the matching reads (a number issued twice is left out: the row path decides)."""
    return (
        screening.voucher_holders(numbers, fiscal_year,
                                  residents.current_identity_join("v.atena_no"))
        .rename({"atena_no": "_atena", "fiscal_year": "_v_fy", "programme": "_v_programme",
                 "used": "_used", "has_exams": "_has_exams", "birth_date": "_p_birth",
                 "sex": "_p_sex", "name_kana": "_p_kana", "status": "_p_status"})
        .unique("voucher_no", keep="none")
    )  # fmt: skip


def _file_vouchers(plain: Plain) -> list[str]:
    """Every well-formed voucher number in the file's voucher column (distinct, sorted): the
    numbers of the rows the checks will pass, and perhaps more — a cell read as ``_cells``
    reads it (the text between the column's commas, stripped)."""
    if "voucher_no" not in plain.keys:
        return []
    skip = plain.keys.index("voucher_no")
    cells = plain.lines["line"].str.extract(f"^(?:[^,]*,){{{skip}}}([^,]*)").str.strip_chars()
    return cells.filter(cells.str.contains(_TEN_DIGITS)).unique().sort().to_list()


def _on_own_connection(work: Callable[..., pl.DataFrame], *args: Any) -> pl.DataFrame:
    """Run in a worker thread, on that thread's own database connection, closed after."""
    try:
        return work(*args)
    finally:
        connection.close()


def _matched(
    frame: pl.DataFrame, fiscal_year: int, sender: str, found: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The clean-so-far rows joined to their voucher and its holder; ``_ok`` narrowed to rows
    the row path would match without a reason (``rules.match_row``, ``eligibility_reasons``),
    whose voucher was never used and whose exam is not on record (those rows the row path
    compares, updates or quarantines).

    ``found``: :func:`_holders` already asked for a superset of the numbers (while the cells
    were checked); only the clean-so-far rows' numbers are kept of it, as if asked here."""
    numbers = frame.filter("_ok")["voucher_no"].unique().sort()
    if found is None:
        found = _holders(numbers.to_list(), fiscal_year)
    else:
        found = found.join(numbers.to_frame(), on="voucher_no", how="semi")
    frame = frame.join(found, on="voucher_no", how="left")
    kana = _col(frame, "name_kana")
    registered = pl.col("_p_kana")
    kana_ok = (
        (kana == "")
        | (kana == registered)
        | (
            kana.str.contains(_KANA_PLAIN)
            & registered.str.contains(_KANA_PLAIN)
            & (kana_fold(kana) == kana_fold(registered))
        )
    )
    birth = pl.col("_p_birth")
    end_age = (fiscal_year + 1) - birth.dt.year() - (_month_day(birth) > 401).cast(pl.Int32)
    checks = [
        pl.col("_ok"),
        pl.col("_atena").is_not_null(),
        pl.col("_v_fy") == fiscal_year,
        (pl.col("_v_programme") == "") | (pl.col("_v_programme") == pl.col("_programme")),
        pl.col("_p_status").is_not_null(),  # the holder has a current record
        birth == pl.col("_birth"),
        pl.col("_p_sex") == pl.col("_sex"),
        kana_ok,
        (pl.col("_rule_sex") == 0) | (pl.col("_rule_sex") == pl.col("_p_sex")),
        end_age.is_between(pl.col("_min_age"), pl.col("_max_age")),
        pl.col("_p_status") == "resident",
        pl.col("_used").not_(),
    ]
    if sender:
        checks.append(_col(frame, "institution_code") == sender)
    frame = frame.with_columns(
        pl.all_horizontal(checks).fill_null(False).alias("_ok"), end_age.alias("_end_age")
    )
    return _not_on_record(frame, fiscal_year)


def _not_on_record(frame: pl.DataFrame, fiscal_year: int) -> pl.DataFrame:
    """``_ok`` narrowed to rows whose exam (person, method, day, 追跡検査) is not on record —
    asked only for holders with some exam of the year on record."""
    holders = frame.filter(pl.col("_ok") & pl.col("_has_exams"))["_atena"].unique().sort()
    if holders.is_empty():
        return frame
    keys = screening.exam_keys(holders.to_list(), fiscal_year)
    stored = _frame(
        [(a, m, date.fromisoformat(d), f) for a, m, d, f in keys],
        {"_atena": pl.String, "_method": pl.String, "_exam": pl.Date, "_follow_up": pl.Boolean},
    ).unique().with_columns(pl.lit(True).alias("_stored"))  # fmt: skip
    frame = frame.join(stored, on=["_atena", "_method", "_exam", "_follow_up"], how="left")
    return frame.with_columns((pl.col("_ok") & pl.col("_stored").is_null()).alias("_ok")).drop(
        "_stored"
    )


def _unique_in_file(frame: pl.DataFrame) -> pl.DataFrame:
    """``_ok`` narrowed to rows whose exam key and (voucher, programme) no other row shares."""
    key = ["_atena", "_method", "_exam", "_follow_up"]
    return frame.with_columns(
        (
            pl.col("_ok")
            & (pl.len().over(key) == 1)
            & (pl.len().over(["voucher_no", "_programme"]) == 1)
        ).alias("_ok")
    )


# ------------------------------------------------------------------------------ the split


@dataclass
class Split:
    """The file divided: clean rows as staged-row columns, the rest for the row path."""

    clean: pl.DataFrame  # in pipeline._ALL_FIELDS, what a StagedFrame holds
    rest: Iterator[rules.CheckedRow]  # in file order, checked one by one as they are read


def split(
    plain: Plain,
    ctx: rules.Context,
    batch_id: int,
    sender: str,
    fields: Sequence[str],
    *,
    look_up_apart: bool = False,
) -> Split:
    """Check and match the file as columns; the clean rows as staged rows, the others to be
    checked one by one (``rules.check_row``) by the row path.

    ``look_up_apart``: the vouchers and their holders (the largest query, about as long as the
    checks) are asked for on a second connection, in a thread, while the cells are checked —
    for every well-formed number in the file, the clean rows' among them. Only for a caller
    whose transaction has written nothing that query reads (the register, vouchers, exams):
    another connection sees only what is committed."""
    ahead: Future[pl.DataFrame] | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        if look_up_apart:
            ahead = pool.submit(_on_own_connection, _holders, _file_vouchers(plain),
                                ctx.fiscal_year)  # fmt: skip
        frame = _prepared(plain, ctx)
        found = ahead.result() if ahead is not None else None
    frame = _matched(frame, ctx.fiscal_year, sender, found)
    frame = _unique_in_file(frame)
    clean = frame.filter("_ok")
    others = plain.lines.join(clean.select("row_no"), on="row_no", how="anti")
    demoted = _colliding(clean, _row_path_keys(others, plain, ctx))
    if demoted:
        clean = clean.filter(~pl.col("row_no").is_in(sorted(demoted)))
        others = plain.lines.join(clean.select("row_no"), on="row_no", how="anti")
    others = others.sort("row_no")
    rest = (rules.check_row(_source_row(n, line, plain), ctx) for n, line in others.iter_rows())
    return Split(_staged(clean, batch_id, fields), rest)


def _row_path_keys(
    lines: pl.DataFrame, plain: Plain, ctx: rules.Context
) -> list[tuple[str, str, str, str, date, bool]]:
    """For each row the row path will check: (voucher, 宛名番号, method, programme, 受診日,
    追跡検査) as check_row reads them — only these small keys are kept (a chunk of checked
    rows at a time), so that a file whose rows mostly take the row path stays within memory."""
    out = []
    for start in range(0, lines.height, CHUNK):
        for row_no, line in lines.slice(start, CHUNK).iter_rows():
            r = rules.check_row(_source_row(row_no, line, plain), ctx)
            if r.method is not None and r.exam_date is not None:
                out.append((r.voucher_no, r.atena_no, r.method.code, r.method.programme,
                            r.exam_date, r.hpv_follow_up))  # fmt: skip
    return out


def _source_row(row_no: int, line: str, plain: Plain) -> SourceRow:
    """The row exactly as readers._open_csv reads it (a plain line split at commas is what csv
    reads; the width marker and the cut of very wide rows included)."""
    return row_of(row_no, plain.keys, line.split(","), None, plain.width)


def _colliding(clean: pl.DataFrame, rest: list[tuple[str, str, str, str, date, bool]]) -> set[int]:
    """Clean rows sharing an exam key or a (voucher, programme) with a row of the row path —
    by any person that row could turn out to be (its voucher's holder or its 宛名番号)."""
    numbers = [voucher for voucher, *_ in rest if voucher]
    holders = {v.voucher_no: v.atena_no for v in screening.vouchers_by_number(numbers).values()}
    keys: set[tuple[str, str, date, bool]] = set()
    vouchers: set[tuple[str, str]] = set()
    for voucher, atena_no, method, programme, day, follow_up in rest:
        for atena in {holders.get(voucher, ""), atena_no} - {""}:
            keys.add((atena, method, day, follow_up))
        if voucher:
            vouchers.add((voucher, programme))
    key_cols = {"_atena": pl.String, "_method": pl.String, "_exam": pl.Date,
                "_follow_up": pl.Boolean}  # fmt: skip
    by_key = clean.join(_frame(sorted(keys), key_cols), on=list(key_cols), how="semi")
    by_voucher = clean.join(
        _frame(sorted(vouchers), {"voucher_no": pl.String, "_programme": pl.String}),
        on=["voucher_no", "_programme"], how="semi",
    )  # fmt: skip
    return set(by_key["row_no"].to_list()) | set(by_voucher["row_no"].to_list())


def _outcomes(frame: pl.DataFrame) -> pl.DataFrame:
    """要精検 and the 追跡検査 date by screening's rule, once per distinct (method, day, results,
    追跡検査) — the same function every other way of recording an exam uses."""
    keys = ["_method", "_exam", "_results", "_follow_up"]
    distinct = frame.select(keys).unique()
    decided = []
    for method, day, results, follow_up in distinct.iter_rows():
        seiken, due = screening.exam_outcome(method, day, json.loads(results),
                                             follow_up=follow_up)  # fmt: skip
        decided.append((method, day, results, follow_up, seiken, due))
    outcomes = _frame(
        decided,
        {"_method": pl.String, "_exam": pl.Date, "_results": pl.String, "_follow_up": pl.Boolean,
         "_seiken": pl.Boolean, "_due": pl.Date},
    )  # fmt: skip
    return frame.join(outcomes, on=keys, how="left")


def _staged(frame: pl.DataFrame, batch_id: int, fields: Sequence[str]) -> pl.DataFrame:
    """The clean rows as staged rows (status new), the exam in the exam table's own columns,
    as ``pipeline.exam_values`` builds them from ``rules.fact_of``."""
    frame = _outcomes(frame)
    birth, exam = pl.col("_birth"), pl.col("_exam")
    after = exam + pl.duration(days=1)  # the legal age on a day is the ordinary age a day later
    age = after.dt.year() - birth.dt.year() - (_month_day(after) < _month_day(birth)).cast(pl.Int32)
    text = lambda key: _col(frame, key)  # noqa: E731
    none = pl.lit(None)
    columns = {
        "batch": pl.lit(batch_id, pl.Int64), "row_no": pl.col("row_no"), "status": pl.lit("new"),
        "atena_no": pl.col("_atena"), "method": pl.col("_method"), "exam_id": none.cast(pl.Int64),
        "fact": none.cast(pl.String), "diff": none.cast(pl.String), "raw": none.cast(pl.String),
        "problems": none.cast(pl.String), "flags": none.cast(pl.String),
        "candidates": none.cast(pl.String), "programme": pl.col("_programme"), "exam_date": exam,
        "setting": pl.col("_setting"), "institution_code": text("institution_code"),
        "results": pl.col("_results"), "smoking_index": pl.col("_smoking"),
        "follow_up_due": pl.col("_due"), "needs_seiken": pl.col("_seiken"),
        "hpv_follow_up": pl.col("_follow_up"), "voucher_no": text("voucher_no"),
        "coupon_no": pl.lit(""), "place": text("place"), "age_at_exam": age.cast(pl.Int64),
        "fy_end_age": pl.col("_end_age").cast(pl.Int64), "complication": text("complication"),
        "billing_category": text("billing_category"), "billing_month": none.cast(pl.Date),
        "seiken": none.cast(pl.String),
    }  # fmt: skip
    assert list(columns) == list(fields), "staged-row fields changed"  # nosec B101
    return frame.select(**columns)


# ------------------------------------------------------------------------------ storage


def to_parquet(frame: pl.DataFrame) -> bytes:
    """The clean staged rows as the bytes of a StagedFrame (Parquet, zstd: 4.4 MB for 300,000)."""
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd")
    return out.getvalue()


def staged_frame(batch: Any) -> pl.DataFrame | None:
    """The batch's clean rows staged together (StagedFrame), or None when it has none."""
    data = StagedFrame.objects.filter(batch=batch).values_list("data", flat=True).first()
    return None if data is None else pl.read_parquet(io.BytesIO(bytes(data)))


def in_frame(batch: Any, key: tuple[str, str, date, bool]) -> bool:
    """Is this exam (宛名番号, method, 受診日, 追跡検査) among the batch's clean staged rows?"""
    frame = staged_frame(batch)
    if frame is None:
        return False
    atena, method, day, follow_up = key
    return not frame.filter(
        (pl.col("atena_no") == atena) & (pl.col("method") == method)
        & (pl.col("exam_date") == day) & (pl.col("hpv_follow_up") == follow_up)
    ).is_empty()  # fmt: skip
