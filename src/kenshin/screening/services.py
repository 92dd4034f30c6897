"""Public face of screening: the roster (対象者) and, later, exams and follow-up.

Other apps, the CLI and the UI call these functions, never the models.
"""

from __future__ import annotations

from django.conf import settings

from kenshin.screening.build import BuildReport, build_roster
from kenshin.screening.exam_history import (
    EXAM_COLUMNS,
    ExamFact,
    FollowUpFact,
    SeikenReportFact,
    exam_count,
    exam_outcome,
    insert_exams_from,
    record_exam_history,
)
from kenshin.screening.exam_lookup import (
    ExamForExport,
    RevisionRefused,
    StoredExam,
    VoucherRecord,
    VoucherUse,
    exam_keys,
    exams_for_export,
    exams_on_record,
    revise_exams,
    voucher_holders,
    voucher_uses,
    vouchers_by_number,
    vouchers_for,
)
from kenshin.screening.models import RosterEntry, Voucher
from kenshin.screening.vouchers import is_well_formed as voucher_is_well_formed
from kenshin.screening.vouchers import issue_vouchers

__all__ = [
    "EXAM_COLUMNS",
    "BuildReport",
    "ExamFact",
    "ExamForExport",
    "FollowUpFact",
    "RevisionRefused",
    "SeikenReportFact",
    "StoredExam",
    "VoucherRecord",
    "VoucherUse",
    "build_roster",
    "eligible_atena_nos",
    "exam_count",
    "exam_keys",
    "exam_outcome",
    "exams_for_export",
    "exams_on_record",
    "insert_exams_from",
    "issue_vouchers",
    "record_exam_history",
    "revise_exams",
    "voucher_count",
    "voucher_holders",
    "voucher_is_well_formed",
    "voucher_uses",
    "vouchers_by_number",
    "vouchers_for",
]


# ---------------------------------------------------------------------------------------------
# Reading the roster and the staff's changes to it (UI and CLI). Every read that shows people
# records who looked, at whom and why (LOG-01): a list records one summary event and one listing
# event per person shown (as residents' search does), a person's explanation one VIEW, an export
# one EXPORT with the row count and the criteria that reproduce it.

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import transaction

from kenshin.core import audit
from kenshin.programs import services as _programs
from kenshin.screening.actions import (
    ExclusionInfo,
    RosterActionError,
    clear_override,
    override,
    remove_exclusion,
    set_exclusion,
)
from kenshin.screening.explain import (
    Explanation,
    MethodExplanation,
    explain,
    explain_person,
)
from kenshin.screening.lists import (
    BANDS,
    ENCODINGS,
    PAGE_SIZE,
    RANGES,
    Band,
    CountTable,
    RosterPage,
    RosterQuery,
    count_table,
    csv_chunks,
    roster_page,
)
from kenshin.screening.lists import last_build as _last_build
from kenshin.screening.lists import refresh_counts as _refresh_counts
from kenshin.screening.lists import stored_counts as _stored_counts
from kenshin.screening.models import ExclusionReason
from kenshin.screening.permissions import EXPORT_ROSTER, VIEW_ROSTER

EXCLUSION_REASONS: dict[str, str] = dict(ExclusionReason.choices)

__all__ += [
    "BANDS", "ENCODINGS", "EXCLUSION_REASONS", "PAGE_SIZE", "RANGES", "Band", "BuildInfo",
    "CountTable", "ExclusionInfo", "Explanation", "MethodExplanation", "RosterActionError",
    "RosterExport", "RosterPage", "RosterQuery", "clear_override", "count_table", "explain",
    "explain_for", "explain_person", "export_csv", "last_build", "list_for", "methods_of",
    "override", "remove_exclusion", "roster_fiscal_years", "set_exclusion",
]  # fmt: skip


@dataclass(frozen=True)
class BuildInfo:
    """One roster build, as the pages show it."""

    build_id: int
    fiscal_year: int
    as_of: date
    catalogue_version: int
    started_at: datetime
    finished_at: datetime | None
    started_by: str
    counts: dict


def last_build(fiscal_year: int) -> BuildInfo | None:
    """The latest build of the year (finished or not), or None if the roster was never built."""
    b = _last_build(fiscal_year)
    if b is None:
        return None
    return BuildInfo(b.pk, b.fiscal_year, b.as_of, b.catalogue_version, b.started_at,
                     b.finished_at, b.started_by, dict(b.counts or {}))  # fmt: skip


@dataclass(frozen=True)
class Recount:
    cells: int
    changed: int  # cells whose stored counts were not what the roster says


def recount(fiscal_year: int, actor: Any) -> Recount:
    """Count the stored 対象者数 table again from the roster, every cell of the year.

    Why a command for it: staff changes keep the table exact cell by cell (adjust_count) and a
    rebuild recounts the methods it changed; this is the remedy should the table ever drift
    from the roster (a restore of one table, a change made outside Kenshin).
    """

    def cells(counts: Any) -> dict[tuple[Any, ...], tuple[int, int, int]]:
        return {(c.method, c.sex, c.band): (c.population, c.eligible, c.excluded) for c in counts}

    with transaction.atomic():
        before = cells(_stored_counts(fiscal_year))
        rows = _refresh_counts(fiscal_year)
        after = cells(rows)
        changed = sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        subject = audit.Subject("roster_count", str(fiscal_year))
        audit.record(audit.Event.UPDATE, actor, subject, function="screening.build_roster",
                     cells=len(rows), changed=changed)  # fmt: skip
    return Recount(len(rows), changed)


def roster_fiscal_years() -> list[int]:
    """Fiscal years a roster can be built for (those with a catalogue), newest first."""
    return _programs.fiscal_years()


def methods_of(fiscal_year: int) -> dict[str, tuple[str, str, bool]]:
    """method code -> (method name, programme name, rostered) in catalogue order ({} if none)."""
    try:
        catalogue = _programs.catalogue(fiscal_year)
    except _programs.CatalogueMissing:
        return {}
    return {m.code: (m.name, p.name, m.rostered) for p in catalogue.programmes for m in p.methods}


def explain_for(
    actor: Any,
    fiscal_year: int,
    atena_no: str,
    *,
    purpose: str,
    as_of: date | None = None,
    function: str = VIEW_ROSTER,
) -> Explanation:
    """:func:`explain_person`, with the read recorded (Event.VIEW of the person, the purpose)."""
    result = explain_person(fiscal_year, atena_no, as_of)
    audit.record(
        audit.Event.VIEW, actor, atena_no, purpose, function=function,
        fiscal_year=fiscal_year, as_of=result.as_of.isoformat(), found=result.found,
    )  # fmt: skip
    return result


def list_for(actor: Any, query: RosterQuery, *, purpose: str, page: int = 1) -> RosterPage:
    """One page of a roster list, recorded whole: a summary event with the criteria, and one
    listing event per person shown (the person appeared in a list; the record was not opened)."""
    result = roster_page(query, page)
    with transaction.atomic():
        audit.record(
            audit.Event.SEARCH, actor, None, purpose, function=VIEW_ROSTER,
            hits=len(result.entries), total=result.total, page=result.number, **query.criteria(),
        )  # fmt: skip
        for e in result.entries:
            audit.record(
                audit.Event.SEARCH, actor, audit.Subject.resident(e.atena_no), purpose,
                function=VIEW_ROSTER, listed=True,
            )  # fmt: skip
    return result


@dataclass(frozen=True)
class RosterExport:
    filename: str
    rows: int
    content_type: str
    chunks: Any  # Iterator[bytes]


def export_csv(actor: Any, query: RosterQuery, *, purpose: str, encoding: str) -> RosterExport:
    """A roster list as CSV (formula-safe cells; UTF-8 with BOM or CP932), recorded first.

    The EXPORT event carries the row count and the criteria (codes only): with the build and
    the changes recorded after it, they say which people left the system in this file.
    """
    if encoding not in ENCODINGS:
        raise RosterActionError("文字コードを選んでください")
    names = methods_of(query.fiscal_year)
    if query.method not in names:
        raise RosterActionError(f"検査方法 {query.method!r} は{query.fiscal_year}年度にありません")
    rows = query.queryset().count()
    build = _last_build(query.fiscal_year)
    audit.record(
        audit.Event.EXPORT, actor, None, purpose, function=EXPORT_ROSTER,
        rows=rows, encoding=encoding, build_id=build.pk if build else None, **query.criteria(),
    )  # fmt: skip
    band = f"_{query.band.code.rstrip('-')}" if query.band else ""
    sex = f"_{'mf'[query.sex - 1]}" if query.sex else ""
    filename = f"roster_{query.fiscal_year}_{query.method}{sex}{band}.csv"
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    return RosterExport(
        filename=filename,
        rows=rows,
        content_type=f"text/csv; charset={charset}",
        chunks=csv_chunks(query, names[query.method][0], encoding),
    )


# ---------------------------------------------------------------------------------------------
# 受診券 (vouchers): who gets one, and how many the year has.


def eligible_atena_nos(fiscal_year: int) -> list[str]:
    """Everyone eligible for at least one method this year and not 受診不要 for it, in 宛名番号
    order — who gets a 受診券 (the letters will read the same list)."""
    return list(
        RosterEntry.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year,
            eligible=True, exclusion="",
        ).values_list("atena_no", flat=True).distinct().order_by("atena_no")
    )  # fmt: skip


def voucher_count(fiscal_year: int) -> int:
    """How many 受診券 the year has."""
    return Voucher.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
    ).count()
