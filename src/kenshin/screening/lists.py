"""Reading the roster: the 対象者数 table, the list behind one of its cells, and its export.

The table (domain.md §11 B-6: programme × sex × 5-year age band, with the 40–69 / 50–69 / 20–69
totals) is stored (RosterCount): the build counts it in one GROUP BY over the roster — a
million-resident city has 4–5 million rows, so counting on every page view would take seconds —
and staff actions recount the cells they touch. The list behind a cell is a page of roster
entries in 宛名番号 order (the roster's key serves it), with names fetched from residents in one
batched call per page.

Nothing here records an audit event: the services that show or export people do
(:mod:`kenshin.screening.services`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet

from kenshin.core.csvfile import ENCODINGS, csv_cell  # noqa: F401 - the roster export's, re-exported
from kenshin.core.csvfile import csv_chunks as _csv_chunks
from kenshin.programs import services as programs
from kenshin.programs.catalogue import EXEMPTIONS
from kenshin.programs.rules import OUT_OF_POPULATION, REASONS
from kenshin.residents import services as residents
from kenshin.screening.models import ExclusionReason, RosterBuild, RosterCount, RosterEntry

SEXES = ((1, "男"), (2, "女"))
SEX_LABEL = dict(SEXES)
BAND_WIDTH = 5
FIRST_BAND = 20  # the youngest age any programme starts at (歯周・子宮頸 20歳)
TOP_BAND = 85  # 85歳以上 is one band
PAGE_SIZE = 50
EXCLUSION_LABELS = dict(ExclusionReason.choices)


@dataclass(frozen=True)
class Band:
    """An age range of the table: ``lo``–``hi`` (inclusive; hi None = and over)."""

    lo: int
    hi: int | None

    @property
    def code(self) -> str:
        """How the band travels in a URL: "40-44", "85-" (codes, never personal data)."""
        return f"{self.lo}-{'' if self.hi is None else self.hi}"

    @property
    def label(self) -> str:
        if self.lo == 0 and self.hi is not None:
            return f"{self.hi + 1}歳未満"
        if self.hi is None:
            return f"{self.lo}歳以上"
        return f"{self.lo}〜{self.hi}歳"

    def contains(self, age: int) -> bool:
        return age >= self.lo and (self.hi is None or age <= self.hi)

    def covers(self, other: Band) -> bool:
        """Every age of ``other`` is in this band."""
        return self.lo <= other.lo and (
            self.hi is None or (other.hi is not None and other.hi <= self.hi)
        )

    @classmethod
    def parse(cls, code: str) -> Band | None:
        """A band from its code, or None for anything malformed (the whole range is "")."""
        lo, sep, hi = (code or "").partition("-")
        if not sep or not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        band = cls(int(lo), int(hi) if hi else None)
        if band.lo > 150 or (band.hi is not None and not band.lo <= band.hi <= 150):
            return None
        return band


UNDER_FIRST = Band(0, FIRST_BAND - 1)
BANDS: tuple[Band, ...] = (
    *(Band(lo, lo + BAND_WIDTH - 1) for lo in range(FIRST_BAND, TOP_BAND, BAND_WIDTH)),
    Band(TOP_BAND, None),
)
# The report's summary ranges (事業報告 and the national targets: 40–69, 50–69; 子宮頸 20–69).
RANGES: tuple[Band, ...] = (Band(40, 69), Band(50, 69), Band(20, 69))


def band_of(start: int) -> Band:
    """The table's band that begins at ``start`` (as the GROUP BY gives it)."""
    if start < FIRST_BAND:
        return UNDER_FIRST
    if start >= TOP_BAND:
        return Band(TOP_BAND, None)
    return Band(start, start + BAND_WIDTH - 1)


@dataclass
class Counts:
    population: int = 0
    eligible: int = 0
    excluded: int = 0

    def add(self, other: Counts) -> None:
        self.population += other.population
        self.eligible += other.eligible
        self.excluded += other.excluded


@dataclass
class CountRow:
    """One line of the table: a method and a sex (0 = both)."""

    programme_name: str
    method: str
    method_name: str
    sex: int
    sex_label: str
    by_band: dict[int, Counts] = field(default_factory=dict)  # band start -> counts

    def band(self, band: Band) -> Counts:
        """The counts of the 5-year bands that lie within ``band``."""
        total = Counts()
        for start, counts in self.by_band.items():
            if band.covers(band_of(start)):
                total.add(counts)
        return total

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.by_band.values():
            total.add(counts)
        return total


@dataclass(frozen=True)
class CountTable:
    fiscal_year: int
    bands: tuple[Band, ...]
    ranges: tuple[Band, ...]
    rows: tuple[CountRow, ...]


def _method_rows(fiscal_year: int) -> list[tuple[str, str, str, int]]:
    """(programme name, method code, method name, sex code) of the year's rostered methods."""
    try:
        catalogue = programs.catalogue(fiscal_year)
    except programs.CatalogueMissing:
        return []
    return [
        (p.name, m.code, m.name, m.sex_code)
        for p in catalogue.programmes
        for m in p.methods
        if m.rostered
    ]


def _roster(fiscal_year: int) -> QuerySet:
    return RosterEntry.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
    )


def refresh_counts(
    fiscal_year: int,
    cells: Iterable[tuple[str, int, int]] | None = None,
    methods: Iterable[str] | None = None,
) -> list[RosterCount]:
    """Recount the stored 対象者数 table: every cell, only ``cells`` (method, sex, age), or
    every cell of ``methods`` (a rebuild recounts only the methods whose rows it changed).

    ``eligible`` counts the entries that count as eligible (staff overrides included);
    ``population`` the entries of people in the population (the target population the national
    checklist asks for; rows kept for people who left are not counted);
    ``excluded`` those of them marked 受診不要 (they stay in both other counts).
    Call inside the transaction that changed the roster.
    """
    mc = settings.MUNICIPALITY_CODE
    # Rows of people who have left the population (moved out, died, …) are kept in the roster
    # but are not part of its population any more.
    in_population = ~Q(computed_reason__in=OUT_OF_POPULATION)
    stored = RosterCount.objects.filter(municipality_code=mc, fiscal_year=fiscal_year)
    roster = _roster(fiscal_year)
    if methods is not None:
        wanted_methods = sorted(set(methods))
        if not wanted_methods:
            return []
        stored = stored.filter(method__in=wanted_methods)
        roster = roster.filter(method__in=wanted_methods)
    if cells is not None:
        wanted = {(method, sex, band_of(_start(age))) for method, sex, age in cells}
        if not wanted:
            return []
        cell_qs, roster_qs = [], []
        for method, sex, band in wanted:
            cell_qs.append(Q(method=method, sex=sex, band=band.lo))
            ages = Q(age__gte=band.lo) if band.lo else Q()
            if band.hi is not None:
                ages &= Q(age__lte=band.hi)
            roster_qs.append(Q(method=method, sex=sex) & ages)
        stored = stored.filter(reduce(operator.or_, cell_qs))
        roster = roster.filter(reduce(operator.or_, roster_qs))
    # Grouped by age, not band: bands are summed here (a CASE per row cost about a second at
    # 4.4 million rows), and a cell's counts are plain sums of its ages'.
    grouped = (
        roster.values("method", "sex", "age")
        .annotate(
            population=Count("atena_no", filter=in_population),
            eligible=Count("atena_no", filter=Q(eligible=True)),
            excluded=Count("atena_no", filter=in_population & ~Q(exclusion="")),
        )
        .order_by()
    )
    ages = (
        AgeCount(g["method"], g["sex"], g["age"], g["population"], g["eligible"], g["excluded"])
        for g in grouped
    )
    return _store(fiscal_year, stored, ages)


class AgeCount(NamedTuple):
    """The roster's counts for one method, sex and 年度末年齢 (a band sums its ages')."""

    method: str
    sex: int
    age: int
    population: int
    eligible: int
    excluded: int


def store_counts(fiscal_year: int, ages: Iterable[AgeCount]) -> list[RosterCount]:
    """Store the whole 対象者数 table of the year from counts by age that the caller made.

    Why: a first build counts its rows as it writes them (SQLite each method's just after its
    INSERT, PostgreSQL the new year partition in one hashed GROUP BY), which spares a sorted
    GROUP BY over every row of the year afterwards (3–4 s at a million residents);
    :func:`refresh_counts` is the recount from the stored rows, and a test
    checks the two agree. Call inside the transaction that wrote the roster.
    """
    stored = RosterCount.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
    )
    return _store(fiscal_year, stored, ages)


def _store(
    fiscal_year: int, stored: QuerySet[RosterCount], ages: Iterable[AgeCount]
) -> list[RosterCount]:
    """Replace the ``stored`` cells by the bands summed from ``ages``."""
    mc = settings.MUNICIPALITY_CODE
    cells_counted: dict[tuple[str, int, int], RosterCount] = {}
    for g in ages:
        key = (g.method, g.sex, _start(g.age))
        cell = cells_counted.get(key)
        if cell is None:
            cell = cells_counted[key] = RosterCount(
                municipality_code=mc, fiscal_year=fiscal_year, method=key[0], sex=key[1],
                band=key[2], population=0, eligible=0, excluded=0,
            )  # fmt: skip
        cell.population += g.population
        cell.eligible += g.eligible
        cell.excluded += g.excluded
    rows = list(cells_counted.values())
    with transaction.atomic():
        stored.delete()
        RosterCount.objects.bulk_create(rows)
    return rows


def adjust_count(
    fiscal_year: int, method: str, sex: int, age: int, *, eligible: int = 0, excluded: int = 0
) -> None:
    """Move one entry's contribution in the stored table (an override, a 受診不要): O(1).

    Why not recount the cell: the roster's only index starts with the method, so a recount
    reads every row of the method — about half a second per click at a million residents.
    A test checks that the adjusted table equals a fresh count.
    """
    cell = RosterCount.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE,
        fiscal_year=fiscal_year,
        method=method,
        sex=sex,
        band=_start(age),
    )
    # Every roster row's cell is stored by the build (a cell of rows kept for people who left
    # is stored with zeros), so the cell exists whenever the entry does.
    cell.update(eligible=F("eligible") + eligible, excluded=F("excluded") + excluded)


def _start(age: int) -> int:
    if age < FIRST_BAND:
        return 0
    if age >= TOP_BAND:
        return TOP_BAND
    return age // BAND_WIDTH * BAND_WIDTH


def stored_counts(fiscal_year: int) -> list[RosterCount]:
    """The stored 対象者数 cells of the year (as the last build or staff change left them)."""
    return list(
        RosterCount.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
        )
    )


def count_table(fiscal_year: int) -> CountTable:
    """The 対象者数 table from the stored counts (one small query; see refresh_counts)."""
    grouped = RosterCount.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
    ).values("method", "sex", "band", "population", "eligible", "excluded")
    data: dict[tuple[str, int], dict[int, Counts]] = {}
    for g in grouped:
        data.setdefault((g["method"], g["sex"]), {})[g["band"]] = Counts(
            g["population"], g["eligible"], g["excluded"]
        )
    rows: list[CountRow] = []
    young = False
    known = set()
    for programme_name, code, name, sex_code in _method_rows(fiscal_year):
        known.add(code)
        both = CountRow(programme_name, code, name, 0, "計")
        sexes = [s for s in SEXES if not sex_code or s[0] == sex_code]
        for sex, label in sexes:
            row = CountRow(programme_name, code, name, sex, label, dict(data.get((code, sex), {})))
            for start, counts in row.by_band.items():
                both.by_band.setdefault(start, Counts()).add(counts)
            young = young or 0 in row.by_band
            rows.append(row)
        if len(sexes) > 1:
            rows.append(both)
    bands = ((UNDER_FIRST,) if young else ()) + BANDS
    return CountTable(fiscal_year, bands, RANGES, tuple(rows))


# ------------------------------------------------------------------------------ lists


@dataclass(frozen=True)
class RosterQuery:
    """Which entries a list shows: a table cell (method, sex, band) and the list's filters."""

    fiscal_year: int
    method: str
    sex: int = 0  # 0 = both
    band: Band | None = None
    eligible: str = "yes"  # yes | no | all
    reason: str = ""  # a reason code, or "" for any
    exclusion: str = "any"  # any | none | excluded | one ExclusionReason code

    def queryset(self) -> QuerySet:
        qs = _roster(self.fiscal_year).filter(method=self.method)
        if self.sex:
            qs = qs.filter(sex=self.sex)
        if self.band is not None:
            qs = qs.filter(age__gte=self.band.lo)
            if self.band.hi is not None:
                qs = qs.filter(age__lte=self.band.hi)
        if self.eligible in ("yes", "no"):
            qs = qs.filter(eligible=self.eligible == "yes")
        if self.reason:
            qs = qs.filter(reason=self.reason)
        if self.exclusion == "none":
            qs = qs.filter(exclusion="")
        elif self.exclusion == "excluded":
            qs = qs.exclude(exclusion="")
        elif self.exclusion in EXCLUSION_LABELS:
            qs = qs.filter(exclusion=self.exclusion)
        return qs

    def criteria(self) -> dict[str, object]:
        """The query as codes, for the audit event (no personal data)."""
        return {
            "fiscal_year": self.fiscal_year,
            "method": self.method,
            "sex": self.sex,
            "band": self.band.code if self.band else "",
            "eligible": self.eligible,
            "reason": self.reason,
            "exclusion": self.exclusion,
        }


@dataclass(frozen=True)
class ListedEntry:
    """One row of a roster list: the entry and who it is (from residents)."""

    atena_no: str
    name: str
    name_kana: str
    sex_label: str
    birth_date: date | None
    status_label: str
    age: int
    eligible: bool
    reason: str
    reason_label: str
    computed_reason: str
    overridden: bool
    exclusion: str
    exclusion_label: str
    exemption_label: str
    exemption_early_label: str
    coupon_no: str


_LIST_FIELDS = (
    "atena_no", "age", "sex", "eligible", "reason", "computed_reason", "override_eligible",
    "exclusion", "exemption", "exemption_early", "coupon_no",
)  # fmt: skip


def _listed(rows: list[dict]) -> list[ListedEntry]:
    names = residents.names_of(r["atena_no"] for r in rows)
    out = []
    for r in rows:
        who = names.get(r["atena_no"])
        out.append(
            ListedEntry(
                atena_no=r["atena_no"],
                name=who.name if who else "",
                name_kana=who.name_kana if who else "",
                sex_label=SEX_LABEL.get(r["sex"], str(r["sex"])),
                birth_date=who.birth_date if who else None,
                status_label=who.status_label if who else "記録なし",
                age=r["age"],
                eligible=r["eligible"],
                reason=r["reason"],
                reason_label=REASONS.get(r["reason"], r["reason"]),
                computed_reason=r["computed_reason"],
                overridden=r["override_eligible"] is not None,
                exclusion=r["exclusion"],
                exclusion_label=EXCLUSION_LABELS.get(r["exclusion"], r["exclusion"]),
                exemption_label=EXEMPTIONS.get(r["exemption"], r["exemption"]),
                exemption_early_label=EXEMPTIONS.get(r["exemption_early"], r["exemption_early"]),
                coupon_no=r["coupon_no"],
            )
        )
    return out


@dataclass(frozen=True)
class RosterPage:
    query: RosterQuery
    number: int
    total: int
    page_size: int
    entries: tuple[ListedEntry, ...]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.page_size + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return min(self.number * self.page_size, self.total)


def roster_page(query: RosterQuery, number: int = 1, page_size: int = PAGE_SIZE) -> RosterPage:
    """One page of a list: a COUNT, one page of entries, one batched name look-up."""
    qs = query.queryset()
    total = qs.count()
    pages = max(1, -(-total // page_size))
    number = min(max(1, number), pages)
    start = (number - 1) * page_size
    rows = list(qs.order_by("atena_no").values(*_LIST_FIELDS)[start : start + page_size])
    return RosterPage(query, number, total, page_size, tuple(_listed(rows)))


def iter_entries(query: RosterQuery, chunk: int = 2_000) -> Iterator[ListedEntry]:
    """Every entry of a list in 宛名番号 order, fetched by key ranges (exports of any size)."""
    qs = query.queryset().order_by("atena_no")
    after = ""
    while True:
        rows = list(qs.filter(atena_no__gt=after).values(*_LIST_FIELDS)[:chunk])
        if not rows:
            return
        yield from _listed(rows)
        after = rows[-1]["atena_no"]


def last_build(fiscal_year: int) -> RosterBuild | None:
    return (
        RosterBuild.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
        )
        .order_by("-pk")
        .first()
    )


# ------------------------------------------------------------------------------ CSV

CSV_HEADER = (
    "年度", "検査方法", "宛名番号", "氏名", "氏名カナ", "性別", "生年月日", "年度末年齢",
    "対象", "理由コード", "理由", "職員の判断", "受診不要", "免除（7月以降）", "免除（4〜6月）",
    "クーポン番号", "住民状態",
)  # fmt: skip


def csv_chunks(query: RosterQuery, method_name: str, encoding: str) -> Iterator[bytes]:
    """The list as CSV bytes, a few hundred rows per chunk (for a streaming response)."""

    def row(e: ListedEntry) -> tuple[object, ...]:
        return (
            query.fiscal_year, method_name, e.atena_no, e.name, e.name_kana, e.sex_label,
            e.birth_date.isoformat() if e.birth_date else "", e.age,
            "対象" if e.eligible else "対象外", e.reason, e.reason_label,
            "あり" if e.overridden else "", e.exclusion_label, e.exemption_label,
            e.exemption_early_label, e.coupon_no, e.status_label,
        )  # fmt: skip

    rows = (row(e) for e in iter_entries(query))
    return _csv_chunks(CSV_HEADER, rows, encoding)
