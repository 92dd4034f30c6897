"""Roster build (対象者抽出): the year's eligibility of every resident, in a few SQL statements.

Why SQL compiled from the catalogue rather than a Python loop: a city of a million residents
has 4–5 million roster rows; one INSERT … SELECT per method does the work in the database in
seconds, where per-person Python would take minutes. The rules are stated once in
:mod:`kenshin.programs.rules` (the reference, used by ``explain``); :func:`reason_sql` mirrors
them step by step, and a test builds a roster and checks every row against ``rules.decide``.

Steps, in one transaction (a failure leaves the previous roster as it was):

1. ``kb_person``: the register on the base date (any 住民状態), 年度末年齢, latest 転入, this and
   last FY's 課税区分 and this FY's 保険区分 — from residents' set-based reads.
2. ``kb_hist`` (joined into kb_person): past exams per person (fiscal years before this one),
   one column per programme and per five-yearly method, and the latest 喫煙指数 up to the
   base date.
3. per rostered method, one INSERT … SELECT (… ON CONFLICT DO UPDATE on a rebuild): rows for
   the method's population (the reason is not one of the population-defining refusals),
   keeping staff overrides and coupon numbers; rows of people who have left the population
   are kept and marked not eligible with the reason (moved out, died, …). A first build on
   PostgreSQL writes into a new partition of the year and keys it afterwards
   (_new_partition, _attach); a first build counts its rows for the 対象者数 table as it goes.
4. once every method is written: coupon numbers for new members of a coupon cohort, in
   宛名番号 order, and the 対象者数 table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from kenshin.core import audit, clock
from kenshin.core.bulk import whole_table_scan
from kenshin.core.fiscal import fiscal_year_bounds, fy_age_reference
from kenshin.programs import services as programs
from kenshin.programs.catalogue import Catalogue, Method
from kenshin.programs.rules import ELIGIBLE_REASONS, LEFT_THE_CITY, OUT_OF_POPULATION
from kenshin.residents import services as residents
from kenshin.screening import lists
from kenshin.screening.models import Exam, Exclusion, RosterBuild, RosterEntry

Progress = Callable[[str, int, int], None]

_SAFE = re.compile(r"^[a-z0-9_]+$")

ROSTER = RosterEntry._meta.db_table
EXAM = Exam._meta.db_table
EXCLUSION = Exclusion._meta.db_table


class RosterBuildError(ValueError):
    """The build cannot run as asked (the message is Japanese and names what to change)."""


def check_base_date(fiscal_year: int, base: date) -> None:
    """A base date must lie in the fiscal year or the one before it (an early build in
    February for April's invitations is normal; a date two years off is a typo)."""
    first = fiscal_year_bounds(fiscal_year - 1)[0]
    last = fiscal_year_bounds(fiscal_year)[1]
    if not first <= base <= last:
        raise RosterBuildError(
            f"基準日 {base.isoformat()} は{fiscal_year}年度の対象者抽出に使えません"
            f"（{first.isoformat()}〜{last.isoformat()} の日付にしてください）"
        )


@dataclass(frozen=True)
class BuildReport:
    build_id: int
    fiscal_year: int
    as_of: date
    catalogue_version: int
    inserted: int
    changed: int
    unchanged: int
    left: int  # rows whose person left the population since the last build
    per_method: dict[str, dict[str, int]]  # method → {"rows": n, "eligible": n}
    seconds: float


def _lit(code: str) -> str:
    """A catalogue code as an SQL literal (codes are validated to [a-z0-9_] — checked again)."""
    if not _SAFE.match(code):
        raise ValueError(f"unexpected code {code!r}")
    return f"'{code}'"


def _ints(values: tuple[int, ...]) -> str:
    return ", ".join(str(int(v)) for v in values)


def _date(d: date) -> str:
    return f"'{d.isoformat()}'" if connection.vendor == "sqlite" else f"DATE '{d.isoformat()}'"


def _hist_columns(catalogue: Catalogue) -> tuple[dict[str, int], dict[str, int]]:
    """Column numbers in kb_hist: one per programme, one per five-yearly method."""
    programmes = {p.code: i for i, p in enumerate(catalogue.programmes)}
    five = [m.code for m in catalogue.methods if m.interval == "five_yearly"]
    return programmes, {code: i for i, code in enumerate(five)}


def reason_sql(catalogue: Catalogue, method: Method, base: date) -> str:
    """The CASE expression giving a person's reason code for ``method`` — rules.decide in SQL.

    Reads kb_person p (see _prepare).
    """
    fy = catalogue.fiscal_year
    programmes, fives = _hist_columns(catalogue)
    prog = programmes[method.programme]
    steps = [
        "WHEN p.status = 'deceased' THEN 'deceased'",
        "WHEN p.status = 'moved_out' THEN 'moved_out'",
        "WHEN p.status IS NULL OR p.status <> 'resident' THEN 'not_resident'",
    ]
    if method.sex_code:
        steps.append(f"WHEN p.sex <> {method.sex_code} THEN 'sex'")
    steps.append(f"WHEN p.age < {int(method.min_age)} THEN 'under_age'")
    if method.max_age is not None:
        steps.append(f"WHEN p.age > {int(method.max_age)} THEN 'over_age'")
    if method.smoking_index_min is not None:
        steps.append(
            f"WHEN p.smoking_index IS NULL OR p.smoking_index < {int(method.smoking_index_min)} "
            "THEN 'smoking_index'"
        )
    if method.coupon is not None:
        # fy_end_age of the previous FY is always this FY's minus one.
        steps.append(f"WHEN p.age - 1 = {int(method.coupon.turned_age)} THEN 'coupon'")
    prev = f"COALESCE(p.p{prog}_prev, 0) = 0"
    if method.interval == "annual":
        steps.append("ELSE 'annual'")
    elif method.interval == "biennial":
        steps.append(f"WHEN NOT ({prev}) THEN 'screened_last_year'")
        if method.cohort:
            # (age / 2) * 2 = age ⇔ even; no % operator (a placeholder character in DB-API).
            compare = "=" if method.cohort == "even_age" else "<>"
            steps.append(f"WHEN (p.age / 2) * 2 {compare} p.age THEN 'cohort'")
        steps.append("ELSE 'catch_up'")
    elif method.interval == "milestone":
        steps.append(f"WHEN p.age IN ({_ints(method.milestones)}) THEN 'milestone'")
        steps.append("ELSE 'not_milestone'")
    elif method.interval == "once":
        steps.append(f"WHEN p.age IN ({_ints(method.milestones)}) THEN 'milestone'")
        steps.append(f"WHEN COALESCE(p.p{prog}_ever, 0) = 0 THEN 'never_tested'")
        steps.append("ELSE 'tested_before'")
    else:  # five_yearly
        m = fives[method.code]
        last = fiscal_year_bounds(fy)[1]
        # A 追跡検査 due by the end of this FY with no HPV test since the FY it fell due in
        # (overdue ones stay due: rules.decide).
        steps += [
            f"WHEN p.m{m}_due <= {_date(last)} AND NOT (p.m{m}_tested > p.m{m}_from) "
            "THEN 'follow_up'",
            f"WHEN p.age IN ({_ints(method.milestones)}) THEN 'milestone'",
            f"WHEN p.m{m}_last IS NOT NULL AND {fy} - p.m{m}_last < 5 THEN 'within_interval'",
            f"WHEN p.moved_in IS NOT NULL AND p.moved_in >= {_date(fiscal_year_bounds(fy - 1)[0])}"
            f" AND p.moved_in <= {_date(base)} THEN 'move_in'",
            f"WHEN p.m{m}_last IS NOT NULL THEN 'interval_due'",
            f"WHEN {prev} THEN 'first_hpv'",
            "ELSE 'screened_last_year'",
        ]
    return "CASE " + " ".join(steps) + " END"


def population_sql(method: Method) -> str:
    """The method's population as a plain predicate on kb_person p: exactly the people for
    whom :func:`reason_sql` gives a reason outside ``OUT_OF_POPULATION``.

    Why separately: the reason CASE is the costly part of a method's INSERT; filtering first on
    a few indexed-free comparisons evaluates it only for the people who get a row (the
    40-and-over methods see about 60% of a city, the women's milestone methods under 5%).
    The parity test of the build checks every row against ``rules.decide``.
    """
    terms = ["p.status = 'resident'", f"p.age >= {int(method.min_age)}"]
    if method.sex_code:
        terms.append(f"p.sex = {method.sex_code}")
    if method.max_age is not None:
        terms.append(f"p.age <= {int(method.max_age)}")
    if method.smoking_index_min is not None:
        terms.append(f"p.smoking_index >= {int(method.smoking_index_min)}")
    if method.interval == "milestone":  # a coupon cohort comes before the milestone rule
        milestone = f"p.age IN ({_ints(method.milestones)})"
        if method.coupon is not None:
            milestone = f"({milestone} OR p.age - 1 = {int(method.coupon.turned_age)})"
        terms.append(milestone)
    return " AND ".join(terms)


def _fy_of_sql(expr: str) -> str:
    """The fiscal year of a date column (fiscal.fiscal_year_of) in SQL."""
    if connection.vendor == "sqlite":
        year, month = (
            f"CAST(substr({expr}, 1, 4) AS INTEGER)",
            f"CAST(substr({expr}, 6, 2) AS INTEGER)",
        )
    else:
        year, month = (
            f"CAST(EXTRACT(YEAR FROM {expr}) AS INTEGER)",
            f"CAST(EXTRACT(MONTH FROM {expr}) AS INTEGER)",
        )
    return f"({year} - CASE WHEN {month} < 4 THEN 1 ELSE 0 END)"


def exemption_sql(catalogue: Catalogue, method: Method | None, *, early: bool) -> str:
    """rules.exemption in SQL (first match in the catalogue's order; '' when none).

    ``method`` None: for a method without a coupon cohort — the same for all of them, so
    kb_person holds it once per person (see _exemption_of).
    """
    tax = "p.tax_prev" if early else "p.tax"
    steps = []
    for kind in catalogue.fees.exemptions:
        if kind == "public_assistance":  # current status (rules.exemption)
            assistance = "COALESCE(p.tax, p.tax_prev)" if early else "p.tax"
            steps.append(f"WHEN {assistance} = 'public_assistance' THEN 'public_assistance'")
        elif kind == "tax_exempt":
            steps.append(f"WHEN {tax} = 'exempt' THEN 'tax_exempt'")
        elif kind == "coupon" and method is not None and method.coupon is not None:
            cohort = f"p.age - 1 = {int(method.coupon.turned_age)}"
            if method.sex_code:
                cohort += f" AND p.sex = {method.sex_code}"
            steps.append(f"WHEN {cohort} THEN 'coupon'")
        elif kind == "age70":
            steps.append("WHEN p.age >= 70 THEN 'age70'")
        elif kind == "late_elderly":
            steps.append("WHEN p.ins = 'late_elderly' THEN 'late_elderly'")
    return ("CASE " + " ".join(steps) + " ELSE '' END") if steps else "''"


def _exemption_of(catalogue: Catalogue, method: Method, *, early: bool) -> str:
    """The method's exemption: its own CASE if it has a coupon cohort, else kb_person's.

    Why: the exemption depends on the method only through its coupon cohort; computed once
    per person in kb_person instead of twice per roster row, it spares 8 million CASE
    evaluations at a million residents.
    """
    if method.coupon is not None:
        return exemption_sql(catalogue, method, early=early)
    return "p.exemption_early" if early else "p.exemption"


def _age_sql(fiscal_year: int) -> str:
    ref = fy_age_reference(fiscal_year)
    ref_key = ref.year * 10000 + ref.month * 100 + ref.day
    if connection.vendor == "sqlite":
        key = "CAST(REPLACE(r.birth_date, '-', '') AS INTEGER)"
    else:
        key = "CAST(to_char(r.birth_date, 'YYYYMMDD') AS INTEGER)"
    return f"({ref_key} - {key}) / 10000"


def _person_table(
    cursor: Any, name: str, columns: list[str], select: str, params: list[Any]
) -> None:
    """A temp table of one row per 宛名番号: ``select`` gives atena_no, then ``columns``.

    Why keyed this way: SQLite stores it as a WITHOUT ROWID table in 宛名番号 order, so a
    join on 宛名番号 is one B-tree descent and a scan needs no sort (the same joins over
    ordinary temp tables with an index took 3–4× longer: 8–10 s against 2.8 s at a million
    residents). PostgreSQL takes CREATE TABLE AS and fresh statistics, and joins by hashing
    (an index on each temp table cost 1.2 s in all and was not used).
    """
    cols = ", ".join(columns)
    if connection.vendor == "sqlite":
        cursor.execute(f"CREATE TEMP TABLE {name} (atena_no PRIMARY KEY, {cols}) WITHOUT ROWID")
        cursor.execute(f"INSERT INTO {name} (atena_no, {cols}) {select}", params)
    else:
        cursor.execute(f"CREATE TEMP TABLE {name} (atena_no, {cols}) AS {select}", params)
        cursor.execute(f"ANALYZE {name}")


_PARTS = ("kb_reg", "kb_moved", "kb_cat", "kb_cat_prev", "kb_hist", "kb_excl")


def _source(
    cursor: Any, name: str, columns: list[str], select: str, params: list[Any]
) -> tuple[str, list[Any]]:
    """One source of kb_person, as what its join reads: on SQLite a keyed temp table made now
    (see _person_table), on PostgreSQL the SELECT itself, hashed in the join.

    Why they differ: SQLite joins by descending a B-tree per row, and keyed tables in 宛名番号
    order make that cheap; PostgreSQL hashes each source once, and writing a million-row temp
    table first (then analysing it) only added 0.4–0.6 s per source.
    """
    if connection.vendor == "sqlite":
        _person_table(cursor, name, columns, select, params)
        return name, []
    return f"({select})", params


def _prepare(cursor: Any, catalogue: Catalogue, base: date) -> None:
    """Make kb_person: one row per person with every fact a method's rule reads.

    Why one wide table: each method's INSERT then reads a single table in 宛名番号 order with
    no join; joining the history, smoking and 受診不要 tables per method cost a b-tree probe
    per person per join, about half of the whole build at a million residents. Each source
    is read once (see _source).
    """
    fy = catalogue.fiscal_year
    mc = settings.MUNICIPALITY_CODE
    for name in (*_TEMP_TABLES, *_PARTS):
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
    if connection.vendor == "postgresql":  # plans over fresh statistics (see the residents side)
        residents.refresh_statistics()
        cursor.execute(f"ANALYZE {EXAM}")
        cursor.execute(f"ANALYZE {EXCLUSION}")
    # Every source below is a fixed or generated statement (codes checked by _lit); no user
    # text reaches the SQL.
    reg_sql, reg_params = residents.register_on_sql(base)
    reg = f"SELECT atena_no, sex, birth_date, status FROM ({reg_sql}) r"  # noqa: S608  # nosec B608
    sources = [_source(cursor, "kb_reg", ["sex", "birth_date", "status"], reg, reg_params)]
    mv_sql, mv_params = residents.move_ins_sql(base)
    moved = f"SELECT atena_no, moved_in FROM ({mv_sql}) m"  # noqa: S608  # nosec B608
    sources.append(_source(cursor, "kb_moved", ["moved_in"], moved, mv_params))
    for name, year in (("kb_cat", fy), ("kb_cat_prev", fy - 1)):
        cat_sql, cat_params = residents.categories_sql(year)
        cat = f"SELECT atena_no, tax_category AS tax, insurance_category AS ins FROM ({cat_sql}) c"  # noqa: S608  # nosec B608
        sources.append(_source(cursor, name, ["tax", "ins"], cat, cat_params))
    programmes, fives = _hist_columns(catalogue)
    hist_cols, hist, hist_params = _hist_select(catalogue, programmes, fives, base)
    sources.append(_source(cursor, "kb_hist", hist_cols, hist, hist_params))
    excl = [f"x{i}" for i in programmes.values()]
    per_programme = ", ".join(
        f"MAX(CASE WHEN programme = {_lit(code)} THEN reason END) AS x{i}"
        for code, i in programmes.items()
    )
    declared = (
        f"SELECT atena_no, {per_programme} FROM {EXCLUSION} "  # noqa: S608  # nosec B608
        "WHERE municipality_code = %s AND fiscal_year = %s GROUP BY atena_no"
    )
    sources.append(_source(cursor, "kb_excl", excl, declared, [mc, fy]))
    (r, p_reg), (m, p_mv), (c, p_cat), (cp, p_prev), (h, p_hist), (x, p_excl) = sources
    facts = ["sex", "age", "status", "moved_in", "tax", "ins", "tax_prev", *hist_cols, *excl]
    joined = (
        f"SELECT r.atena_no AS atena_no, r.sex AS sex, {_age_sql(fy)} AS age, "  # noqa: S608  # nosec B608 - generated, no user text
        "r.status AS status, m.moved_in AS moved_in, c.tax AS tax, c.ins AS ins, "
        "cp.tax AS tax_prev, "
        + ", ".join([f"h.{col} AS {col}" for col in hist_cols]
                    + [f"x.{col} AS {col}" for col in excl])
        + f" FROM {r} r LEFT JOIN {m} m ON m.atena_no = r.atena_no "
        f"LEFT JOIN {c} c ON c.atena_no = r.atena_no "
        f"LEFT JOIN {cp} cp ON cp.atena_no = r.atena_no "
        f"LEFT JOIN {h} h ON h.atena_no = r.atena_no "
        f"LEFT JOIN {x} x ON x.atena_no = r.atena_no"
    )  # fmt: skip
    _person_table(
        cursor, "kb_person", [*facts, "exemption", "exemption_early"],
        f"SELECT p.atena_no, {', '.join(f'p.{col}' for col in facts)}, "  # noqa: S608  # nosec B608
        f"{exemption_sql(catalogue, None, early=False)}, "
        f"{exemption_sql(catalogue, None, early=True)} FROM ({joined}) p"
        # 宛名番号 order (PostgreSQL; SQLite's table is keyed by it): each method's insert then
        # walks the roster's key in order.
        + (" ORDER BY p.atena_no" if connection.vendor == "postgresql" else ""),
        [*p_reg, *p_mv, *p_cat, *p_prev, *p_hist, *p_excl],
    )  # fmt: skip
    for name in _PARTS:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


def _hist_select(
    catalogue: Catalogue,
    programmes: dict[str, int],
    fives: dict[str, int],
    base: date,
) -> tuple[list[str], str, list[Any]]:
    """kb_hist: per person with any exam, what the rules read from the history.

    Screened by each programme last FY / ever (FYs before this one), per five-yearly method
    the last FY tested and the 追跡検査 due date, and the latest 喫煙指数 asked up to the base
    date. One grouping over three kinds of exam rows: 0, every exam of an earlier FY; 1, per
    five-yearly method the test that set the latest due date; 2, the latest exam that asked
    the 喫煙指数. Why so: a separate table per fact cost a join per person each, and numbering
    every exam row (a window over all of them, twice, carrying the whole wide row) cost more
    than the grouping itself (SQLite, 377,000 exams: 3.9 → 2.1 s); kinds 1 and 2 number only
    the few rows that can be picked. Returns its fact columns, the SELECT and its parameters.
    """
    fy = catalogue.fiscal_year
    mc = settings.MUNICIPALITY_CODE
    cols, names, params = [], [], []
    # A city's add-on method does not count as screening by its programme (rules.History).
    counting = "kind = 0 AND programme = %s"
    if catalogue.not_counting_methods:
        add_ons = ", ".join(_lit(c) for c in sorted(catalogue.not_counting_methods))
        counting += f" AND method NOT IN ({add_ons})"
    for code, i in programmes.items():
        cols.append(
            f"MAX(CASE WHEN {counting} AND fiscal_year = %s THEN 1 ELSE 0 END) AS p{i}_prev"
        )
        cols.append(f"MAX(CASE WHEN {counting} THEN 1 ELSE 0 END) AS p{i}_ever")
        names += [f"p{i}_prev", f"p{i}_ever"]
        params += [code, fy - 1, code]
    for code, i in fives.items():
        cols.append(f"MAX(CASE WHEN kind = 0 AND method = %s THEN fiscal_year END) AS m{i}_last")
        cols.append(f"MAX(CASE WHEN kind = 0 AND method = %s THEN follow_up_due END) AS m{i}_due")
        cols.append(f"MAX(CASE WHEN kind = 0 AND method = %s THEN exam_date END) AS m{i}_tested")
        cols.append(f"MAX(CASE WHEN kind = 1 AND method = %s THEN exam_date END) AS m{i}_from")
        names += [f"m{i}_last", f"m{i}_due", f"m{i}_tested", f"m{i}_from"]
        params += [code] * 4
    cols.append("MAX(CASE WHEN kind = 2 THEN smoking_index END) AS smoking_index")
    names.append("smoking_index")
    columns = "atena_no, fiscal_year, programme, method, exam_date, follow_up_due, smoking_index"
    exams = f"{EXAM} e{whole_table_scan()}"
    kinds = [
        f"SELECT {columns}, 0 AS kind FROM {exams} "  # noqa: S608  # nosec B608
        "WHERE municipality_code = %s AND fiscal_year < %s",
        # The latest 喫煙指数 asked by the base date (the newest exam, then the newest row).
        f"SELECT {columns}, 2 FROM (SELECT {columns}, ROW_NUMBER() OVER ("  # noqa: S608  # nosec B608
        "PARTITION BY atena_no ORDER BY exam_date DESC, id DESC) AS rn "
        f"FROM {EXAM} WHERE municipality_code = %s AND smoking_index IS NOT NULL "
        "AND exam_date <= %s) s WHERE rn = 1",
    ]
    kind_params: list[Any] = [mc, fy, mc, base]
    if fives:
        # The test that set the latest due date: the latest due, then the latest exam.
        methods_in = ", ".join(_lit(c) for c in fives)
        kinds.append(
            f"SELECT {columns}, 1 FROM (SELECT {columns}, ROW_NUMBER() OVER ("  # noqa: S608  # nosec B608
            "PARTITION BY atena_no, method ORDER BY follow_up_due DESC, exam_date DESC) AS rn "
            f"FROM {EXAM} WHERE municipality_code = %s AND fiscal_year < %s "
            f"AND follow_up_due IS NOT NULL AND method IN ({methods_in})) d WHERE rn = 1"
        )
        kind_params += [mc, fy]
    select = (
        f"SELECT atena_no, {', '.join(cols)} FROM ("  # noqa: S608  # nosec B608
        + " UNION ALL ".join(kinds) + ") t GROUP BY atena_no"
    )  # fmt: skip
    return names, select, [*params, *kind_params]


_TEMP_TABLES = ("kb_person", "kb_left", "kb_coupon")


def _eligible_sql(reason: str) -> str:
    codes = ", ".join(_lit(c) for c in ELIGIBLE_REASONS)
    return f"({reason} IN ({codes}))"


def _no_flatten() -> str:
    """Keeps the reason subquery a subquery: flattened into the INSERT, its CASE would be
    evaluated once for every reference to it (four per row; measured 15 → 13 s at 1M)."""
    return " LIMIT -1" if connection.vendor == "sqlite" else " OFFSET 0"


def _upsert_method(
    cursor: Any,
    catalogue: Catalogue,
    method: Method,
    base: date,
    build: int,
    *,
    fresh: bool,
    table: str = ROSTER,
) -> int:
    """Write the method's population; ``fresh`` (no rows yet for the FY): a plain INSERT
    (into ``table``: the year's new partition on PostgreSQL, see _new_partition).

    Why two forms: on PostgreSQL an upsert pays a speculative insertion per row even when
    nothing conflicts; the first build of a year needs none of it.
    """
    fy, mc = catalogue.fiscal_year, settings.MUNICIPALITY_CODE
    prog = _hist_columns(catalogue)[0][method.programme]
    changed = " OR ".join(
        f"{ROSTER}.{c} <> excluded.{c}"
        for c in (
            "sex",
            "age",
            "computed_eligible",
            "computed_reason",
            "exclusion",
            "exemption",
            "exemption_early",
        )
    )
    into = table if fresh else ROSTER
    insert = (
        f"INSERT INTO {into} (municipality_code, fiscal_year, programme, method, atena_no, "  # noqa: S608  # nosec B608
        "sex, age, computed_eligible, computed_reason, eligible, reason, override_eligible, "
        "override_note, override_by, override_at, exclusion, exemption, exemption_early, "
        "coupon_no, build_id, changed_build) "
        "SELECT %s, %s, %s, %s, t.atena_no, t.sex, t.age, "
        f"{_eligible_sql('t.reason')}, t.reason, {_eligible_sql('t.reason')}, t.reason, "
        "NULL, '', '', NULL, t.exclusion, t.exemption, t.exemption_early, '', %s, %s "
        f"FROM (SELECT p.atena_no AS atena_no, p.sex AS sex, p.age AS age, "
        f"{reason_sql(catalogue, method, base)} AS reason, "
        f"COALESCE(p.x{prog}, '') AS exclusion, "
        f"{_exemption_of(catalogue, method, early=False)} AS exemption, "
        f"{_exemption_of(catalogue, method, early=True)} AS exemption_early "
        f"FROM kb_person p WHERE {population_sql(method)}{_no_flatten()}) t "
        # (SQLite needs a WHERE before ON CONFLICT to parse the upsert.)
        + ("WHERE 1 = 1 " if fresh else f"{_CHANGED_ONLY} {_on_conflict(changed)}")
    )
    params = [mc, fy, method.programme, method.code, build, build]
    cursor.execute(insert, params if fresh else [*params, mc, fy, method.code])
    return max(cursor.rowcount, 0)  # rows inserted or updated (unchanged rows are skipped)


# What a first build counts for the 対象者数 table, by age (lists.store_counts sums the bands):
# population, eligible, 受診不要. A first build writes only rows of the population
# (population_sql), so each of its rows counts in it; lists.refresh_counts states the same counts
# for any state of the roster, and a test holds the two to each other.
_FRESH_COUNTS = (
    "COUNT(*) AS population, SUM(CASE WHEN eligible THEN 1 ELSE 0 END) AS eligible, "
    "SUM(CASE WHEN exclusion <> '' THEN 1 ELSE 0 END) AS excluded"
)


def _count_method(cursor: Any, catalogue: Catalogue, method: Method) -> list[lists.AgeCount]:
    """SQLite, first build: count the method's rows just written (still in the page cache).

    Why so: one GROUP BY over the year's rows afterwards sorted all 4.4 million by text
    (3.3 s at a million residents) and read them back from disk; a method's rows grouped by
    one integer, sex × 1000 + age, just after they were written take 0.4–0.6 s for the
    largest (695,000 rows; 1.1 s by (sex, age)).
    """
    cursor.execute(
        f"SELECT sex * 1000 + age AS k, {_FRESH_COUNTS} FROM {ROSTER} "  # noqa: S608  # nosec B608
        f"WHERE {_ROW_OF_METHOD} GROUP BY k",
        [settings.MUNICIPALITY_CODE, catalogue.fiscal_year, method.code],
    )
    return [
        lists.AgeCount(method.code, k // 1000, k % 1000, n, e, x)
        for k, n, e, x in cursor.fetchall()
    ]


def _count_year(cursor: Any, table: str, fiscal_year: int) -> list[lists.AgeCount]:
    """PostgreSQL, first build: count the year's rows in one hashed GROUP BY (0.7–0.8 s at
    a million residents; counting through each INSERT's RETURNING cost 0.6 s per method).

    Statistics first: a new partition has none, and on a wrong row estimate the count was
    planned as a sort (2.7 s).
    """
    if table != ROSTER:
        cursor.execute(f"ANALYZE {table}")
    cursor.execute(
        f"SELECT method, sex, age, {_FRESH_COUNTS} FROM {table} "  # noqa: S608  # nosec B608
        "WHERE municipality_code = %s AND fiscal_year = %s GROUP BY method, sex, age",
        [settings.MUNICIPALITY_CODE, fiscal_year],
    )
    return [lists.AgeCount(*row) for row in cursor.fetchall()]


# A rebuild first drops the rows that are stored unchanged (a join over the method's rows),
# so only new and changed rows reach the upsert: its per-row conflict check cost about 5 s per
# 600,000-row method on PostgreSQL even when nothing changed.
_CHANGED_ONLY = (
    f"LEFT JOIN {ROSTER} e ON e.municipality_code = %s AND e.fiscal_year = %s "
    "AND e.method = %s AND e.atena_no = t.atena_no "
    "WHERE e.atena_no IS NULL OR e.sex <> t.sex OR e.age <> t.age "
    "OR e.computed_reason <> t.reason OR e.exclusion <> t.exclusion "
    "OR e.exemption <> t.exemption OR e.exemption_early <> t.exemption_early"
)


def _on_conflict(changed: str) -> str:
    return (
        "ON CONFLICT (municipality_code, fiscal_year, method, atena_no) DO UPDATE SET "  # nosec B608
        "sex = excluded.sex, age = excluded.age, "
        "computed_eligible = excluded.computed_eligible, "
        "computed_reason = excluded.computed_reason, "
        f"eligible = CASE WHEN {ROSTER}.override_eligible IS NULL "
        f"THEN excluded.computed_eligible ELSE {ROSTER}.override_eligible END, "
        f"reason = CASE WHEN {ROSTER}.override_eligible IS NULL "
        "THEN excluded.computed_reason ELSE 'override' END, "
        "exclusion = excluded.exclusion, exemption = excluded.exemption, "
        "exemption_early = excluded.exemption_early, changed_build = excluded.changed_build "
        # Unchanged rows are not rewritten: a rebuild of an unchanged year reads, never writes.
        f"WHERE {changed}"
    )


# A row of one method's roster, by its key (the temp tables hold the 宛名番号 part).
_ROW_OF_METHOD = (
    f"{ROSTER}.municipality_code = %s AND {ROSTER}.fiscal_year = %s AND {ROSTER}.method = %s"
)


def _mark_left(cursor: Any, catalogue: Catalogue, method: Method, base: date, build: int) -> int:
    """Rows of people who have left the method's population: not eligible, with the reason.

    Only rows whose stored decision differs are written (a rebuild changes nothing twice).
    Returns the number of rows marked.
    """
    fy, mc = catalogue.fiscal_year, settings.MUNICIPALITY_CODE
    reason = reason_sql(catalogue, method, base) if method.rostered else "'disabled'"
    out = ", ".join(_lit(c) for c in (*OUT_OF_POPULATION, "disabled"))
    gone = ", ".join(_lit(c) for c in LEFT_THE_CITY)
    cursor.execute("DROP TABLE IF EXISTS kb_left")
    cursor.execute(
        "CREATE TEMP TABLE kb_left AS SELECT atena_no, reason FROM ("  # noqa: S608  # nosec B608
        "SELECT e.atena_no AS atena_no, e.computed_eligible AS was_eligible, "
        "e.computed_reason AS was, "
        f"CASE WHEN p.atena_no IS NULL THEN 'not_resident' ELSE {reason} END AS reason "
        f"FROM {ROSTER} e LEFT JOIN kb_person p ON p.atena_no = e.atena_no "
        "WHERE e.municipality_code = %s AND e.fiscal_year = %s AND e.method = %s"
        # Only people outside the population can have left it: the plain comparisons first,
        # so the reason CASE runs for the few (a rebuild computed it for every row, ~1 s each
        # for the large methods).
        + (
            f" AND (p.atena_no IS NULL OR NOT COALESCE({population_sql(method)}, FALSE))"
            if method.rostered
            else ""
        )
        + ") t "
        f"WHERE t.reason IN ({out}) AND (t.was_eligible OR t.was <> t.reason)",
        [mc, fy, method.code],
    )
    # Indexed, so the UPDATE below looks each roster row up (a scan of it per row took minutes).
    cursor.execute("CREATE UNIQUE INDEX kb_left_atena ON kb_left (atena_no)")
    cursor.execute("SELECT COUNT(*) FROM kb_left")
    if not cursor.fetchone()[0]:  # nobody left (the usual case): no pass over the rows
        return 0
    cursor.execute(
        f"UPDATE {ROSTER} SET changed_build = %s, "  # noqa: S608  # nosec B608
        "computed_eligible = FALSE, computed_reason = l.reason, "
        # A staff decision does not outlive the person's leaving: the dead and those who
        # moved away are never invited, whatever was decided for them before.
        f"eligible = CASE WHEN {ROSTER}.override_eligible IS NULL OR l.reason IN ({gone}) "
        f"THEN FALSE ELSE {ROSTER}.override_eligible END, "
        f"reason = CASE WHEN {ROSTER}.override_eligible IS NULL OR l.reason IN ({gone}) "
        "THEN l.reason ELSE 'override' END "
        f"FROM kb_left l WHERE {_ROW_OF_METHOD} AND {ROSTER}.atena_no = l.atena_no",
        [build, mc, fy, method.code],
    )
    return max(cursor.rowcount, 0)


def _number_coupons(cursor: Any, catalogue: Catalogue, method: Method) -> int:
    """Give the next serial numbers to cohort members without one, in 宛名番号 order."""
    assert method.coupon is not None  # nosec B101 - called for coupon methods only
    fy, mc = catalogue.fiscal_year, settings.MUNICIPALITY_CODE
    prefix = f"{fy}{method.coupon.prefix}"
    cohort = f"age - 1 = {int(method.coupon.turned_age)}"
    if method.sex_code:
        cohort += f" AND sex = {method.sex_code}"
    where = "municipality_code = %s AND fiscal_year = %s AND method = %s"
    cursor.execute(
        f"SELECT MAX(coupon_no) FROM {ROSTER} WHERE {where} AND coupon_no <> ''",  # noqa: S608  # nosec B608
        [mc, fy, method.code],
    )
    last = cursor.fetchone()[0]
    offset = int(last[len(prefix) :]) if last else 0
    cursor.execute("DROP TABLE IF EXISTS kb_coupon")
    cursor.execute(
        "CREATE TEMP TABLE kb_coupon AS SELECT atena_no, "  # noqa: S608  # nosec B608
        f"ROW_NUMBER() OVER (ORDER BY atena_no) AS rn FROM {ROSTER} "
        f"WHERE {where} AND coupon_no = '' AND {cohort} AND computed_reason <> 'not_resident' "
        "AND computed_reason NOT IN ('deceased', 'moved_out')",
        [mc, fy, method.code],
    )
    cursor.execute("CREATE UNIQUE INDEX kb_coupon_atena ON kb_coupon (atena_no)")
    serial = (
        "printf('%%06d', %s + c.rn)"
        if connection.vendor == "sqlite"
        else "lpad(CAST(%s + c.rn AS text), 6, '0')"
    )
    cursor.execute(
        f"UPDATE {ROSTER} SET coupon_no = %s || {serial} "  # noqa: S608  # nosec B608
        f"FROM kb_coupon c WHERE {_ROW_OF_METHOD} AND {ROSTER}.atena_no = c.atena_no",
        [prefix, offset, mc, fy, method.code],
    )
    return max(cursor.rowcount, 0)


@contextmanager
def _memory_kept_small():
    """SQLite: read the database through its page cache, not a memory map, during a build.

    Why: the build reads and writes most of a multi-gigabyte file; mapped pages count in the
    process's resident memory (1.2 GiB at a million residents, against a 1 GiB budget), while
    the page cache is capped by cache_size (0.7 GiB in all). Measured cost: within noise.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA mmap_size")
        row = cursor.fetchone()  # None for an in-memory database (the test suite's)
    if row is None:
        yield
        return
    mapped = int(row[0])
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA mmap_size=0")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA mmap_size={mapped}")


def _new_partition(cursor: Any, fiscal_year: int) -> str | None:
    """PostgreSQL, first build: a new table for the year's rows, without its key yet.

    The roster is partitioned by 年度 (migration 0009). Filled first and keyed afterwards in
    one sort, a year's rows cost a third less to write than inserted into a keyed table one
    B-tree insertion at a time (:func:`_attach` adds the key and attaches it). None when the
    year has its partition already (another municipality's rows, or a year emptied since):
    the build then writes through the partitioned table. All of it is in the build's
    transaction, so a failed build leaves no partition behind.
    """
    if connection.vendor != "postgresql":
        return None
    name = f"{ROSTER}_fy{int(fiscal_year)}"
    # Making and attaching a table needs the roster's owner (docs/security.md: the app may run
    # as a role that only reads and writes rows); without it the build writes through the
    # partitioned table, into the DEFAULT partition, as one table would.
    cursor.execute(
        "SELECT to_regclass(%s) IS NOT NULL, pg_has_role(current_user, c.relowner, 'USAGE') "
        "AND has_schema_privilege(current_user, c.relnamespace, 'CREATE') "
        "FROM pg_class c WHERE c.oid = %s::regclass",
        [name, ROSTER],
    )
    exists, may_create = cursor.fetchone()
    if exists or not may_create:
        return None
    cursor.execute(f"CREATE TABLE {name} (LIKE {ROSTER} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    # Lets the attach skip scanning the new rows for their year.
    cursor.execute(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_year CHECK (fiscal_year = {int(fiscal_year)})"
    )
    return name


def _attach(cursor: Any, name: str, fiscal_year: int) -> None:
    """Key the filled partition (one sort; memory for it asked for this transaction only)
    and attach it to the roster, whose key takes the partition's as its own part."""
    cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    cursor.execute(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_pkey "
        "PRIMARY KEY (fiscal_year, method, atena_no, municipality_code)"  # the roster's (0009)
    )
    cursor.execute(
        f"ALTER TABLE {ROSTER} ATTACH PARTITION {name} FOR VALUES IN ({int(fiscal_year)})"
    )


def _lock_first_builds() -> None:
    """PostgreSQL: builds wait for each other, whatever their year or municipality.

    Why: a first build attaches its year's partition, which locks the DEFAULT partition that
    another year's build may be reading; two first builds at once could deadlock, and two
    municipalities' first builds of one year would both make its partition. Builds are rare
    (a first build a year, a top-up a day); staff changes take only ``lock_year``.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7_302, 0])


def lock_year(fiscal_year: int) -> None:
    """PostgreSQL: builds of one municipality's year, and staff changes to its roster, wait
    for each other inside their transactions (SQLite's IMMEDIATE transactions already
    serialise writers). Two interleaved upserts could deadlock, and a change made during a
    build would recount its cell from rows the build is about to replace."""
    if connection.vendor == "postgresql":
        key = int(settings.MUNICIPALITY_CODE) * 10_000 + fiscal_year
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7_301, key % 2**31])


def build_roster(
    fiscal_year: int,
    *,
    as_of: date | None = None,
    actor: Any = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Build (or rebuild, or top up) the fiscal year's roster as of ``as_of`` (default 1 April).

    Idempotent: the same register, history and catalogue give the same rows, and a rebuild
    reports them unchanged. Overrides, 受診不要 and coupon numbers survive rebuilds.
    """
    started = time.monotonic()
    version, catalogue = programs.catalogue_version(fiscal_year)
    latest = (
        RosterBuild.objects.filter(municipality_code=settings.MUNICIPALITY_CODE,
                                   fiscal_year=fiscal_year, finished_at__isnull=False)
        .order_by("-as_of").values_list("as_of", flat=True).first()
    )  # fmt: skip
    # Without a date, a rebuild keeps the latest base date (a plain rebuild after daily
    # top-ups must not bring back the dead nor drop the newcomers); the first build is 1 April.
    base = as_of or latest or fiscal_year_bounds(fiscal_year)[0]
    check_base_date(fiscal_year, base)
    if latest is not None and base < latest:
        raise RosterBuildError(
            f"基準日 {base.isoformat()} は前回の対象者抽出の基準日 {latest.isoformat()} より前です"
            "（名簿を過去に戻すことはできません。同じ日か後の日にしてください）"
        )
    mc = settings.MUNICIPALITY_CODE
    # In code order: a first build of the latest year then appends every row at the end of the
    # roster's key (each method's rows go in 宛名番号 order), where both databases' B-trees
    # fill pages fully and skip the descent (PostgreSQL's rightmost-leaf fast path).
    methods = sorted(catalogue.methods, key=lambda m: m.code)
    total = len(methods) + 2
    report = progress or (lambda _stage, _done, _total: None)
    # The build's own record commits first: a build that fails or is killed leaves it
    # unfinished (the roster page shows 未完了) while the roster stays as it was.
    build = RosterBuild.objects.create(
        municipality_code=mc,
        fiscal_year=fiscal_year,
        as_of=base,
        catalogue_version=version,
        started_at=clock.now(),
        started_by=audit.actor_of(actor).username,
    )
    with _memory_kept_small(), transaction.atomic():
        lock_year(fiscal_year)
        _lock_first_builds()
        mine = RosterEntry.objects.filter(municipality_code=mc, fiscal_year=fiscal_year)
        # A first build (the usual case at a million residents) needs no count: every row it
        # writes is new. Counting 4–5 million rows costs about a second each time.
        fresh = not mine.exists()
        before = 0 if fresh else mine.count()
        left = written = 0
        with connection.cursor() as cursor:
            report("住民記録と受診歴の準備", 0, total)
            _prepare(cursor, catalogue, base)
            partition = _new_partition(cursor, fiscal_year) if fresh else None
            touched = []  # methods whose rows this build wrote (their counts change)
            counted: list[lists.AgeCount] = []  # a first build's counts, by age
            for i, method in enumerate(methods, start=1):
                report(method.name, i, total)
                wrote = gone = 0
                if method.rostered:
                    wrote = _upsert_method(
                        cursor, catalogue, method, base, build.pk, fresh=fresh,
                        table=partition or ROSTER,
                    )  # fmt: skip
                    if fresh and connection.vendor == "sqlite":
                        counted += _count_method(cursor, catalogue, method)
                if not fresh:  # a first build has nobody who left
                    gone = _mark_left(cursor, catalogue, method, base, build.pk)
                written, left = written + wrote, left + gone
                if wrote or gone:
                    touched.append(method.code)
            report("集計", total - 1, total)
            if fresh and connection.vendor == "postgresql":
                counted = _count_year(cursor, partition or ROSTER, fiscal_year)
            if partition:
                _attach(cursor, partition, fiscal_year)
            # Coupon numbers once every row is written (and, on a new partition, keyed).
            for method in methods:
                if method.rostered and method.coupon is not None:
                    _number_coupons(cursor, catalogue, method)
            # The 対象者数 table is stored: after a first build from the counts made as its
            # rows were written, after a rebuild recounted (lists.refresh_counts) only for the
            # methods whose rows changed (a rebuild that changes nothing recounts nothing). The
            # report's per-method figures come from it; what changed is known from row counts.
            if fresh:
                lists.store_counts(fiscal_year, counted)
            else:
                lists.refresh_counts(fiscal_year, methods=touched)
            for name in _TEMP_TABLES:
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
        per_method: dict[str, dict[str, int]] = {}
        for cell in sorted(lists.stored_counts(fiscal_year), key=lambda c: c.method):
            entry = per_method.setdefault(cell.method, {"rows": 0, "eligible": 0})
            entry["rows"] += cell.population
            entry["eligible"] += cell.eligible
        after = written if fresh else mine.count()  # every row, those who left included
        inserted = after - before
        changed_rows = written + left
        counts = {
            "inserted": inserted,
            "changed": changed_rows - inserted,
            "unchanged": after - changed_rows,
            "left": left,
            "per_method": per_method,
        }
        build.finished_at = clock.now()
        build.counts = counts
        build.save(update_fields=["finished_at", "counts"])
        audit.record(
            audit.Event.CREATE,  # the year's roster entries (Subject "roster")
            actor,
            audit.Subject("roster", f"{fiscal_year}:{build.pk}"),
            function="screening.build_roster",
            fiscal_year=fiscal_year,
            as_of=base.isoformat(),
            catalogue_version=version,
            **{k: v for k, v in counts.items() if k != "per_method"},
        )
    report("完了", total, total)
    return BuildReport(
        build_id=build.pk,
        fiscal_year=fiscal_year,
        as_of=base,
        catalogue_version=version,
        inserted=inserted,
        changed=changed_rows - inserted,
        unchanged=after - changed_rows,
        left=left,
        per_method=per_method,
        seconds=time.monotonic() - started,
    )
