"""Public face of the resident register: what other apps, the CLI and the UI may call.

Everything returned is plain data (dataclasses, dicts), never model instances, so that other
apps cannot reach into this app's tables (DESIGN.md: cross-app calls go through services.py).
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from kenshin.core import audit, clock
from kenshin.core.bulk import in_list, whole_table_scan
from kenshin.core.text import kana_search_key, name_search_key, normalize_digits
from kenshin.core.wareki import parse_date
from kenshin.linkage import services as linkage
from kenshin.linkage.contract import MergeView
from kenshin.residents import actions, rules
from kenshin.residents.actions import ImportReport, import_feed_file
from kenshin.residents.linking import LinkReport, link_unlinked
from kenshin.residents.models import (
    ChangeKind,
    FeedImport,
    FeedKind,
    FiscalCategory,
    FlagKind,
    InsuranceCategory,
    ResidentFlag,
    ResidentLink,
    ResidentStatus,
    ResidentVersion,
    Sex,
    TaxCategory,
)

# The feed format's header lines, for whoever writes feed files (the demo city, tests).
RESIDENT_FEED_HEADER: tuple[str, ...] = rules.RESIDENT_HEADER
# … with the optional last column 個人番号 (handed to the 番号連携サーバ, never stored here).
RESIDENT_FEED_HEADER_WITH_MY_NUMBER: tuple[str, ...] = rules.RESIDENT_HEADER_WITH_MY_NUMBER
CATEGORY_FEED_HEADER: tuple[str, ...] = rules.CATEGORY_HEADER

SEARCH_LIMIT = 50
MAX_ERRORS_SHOWN = 50
# Upper bound of a prefix range: above every character, astral kanji (𠀋, 𡈽 …) included.
_KEY_END = "\U0010ffff"


class SearchRejected(ValueError):
    """The search does not identify people narrowly enough (no browsing the whole city)."""


@dataclass(frozen=True)
class ResidentRecord:
    """One version of a person's register record, as other apps and templates see it."""

    atena_no: str
    name: str
    name_kana: str
    sex: int
    sex_label: str
    birth_date: date
    postal_code: str
    address: str
    address_annex: str
    phone: str
    household_no: str
    relationship: str
    household_head_name: str
    status: str
    status_label: str
    valid_from: date
    valid_to: date | None
    change_kind: str
    change_label: str
    receipt_date: date


_RECORD_FIELDS = (
    "atena_no", "name", "name_kana", "sex", "birth_date", "postal_code", "address",
    "address_annex", "phone", "household_no", "relationship", "household_head_name", "status",
    "valid_from", "valid_to", "change_kind", "receipt_date",
)  # fmt: skip


def _record(v: dict) -> ResidentRecord:
    return ResidentRecord(
        sex_label=_SEX[v["sex"]],
        status_label=_STATUS[v["status"]],
        change_label=_CHANGE[v["change_kind"]],
        **v,
    )


_SEX = dict(Sex.choices)
_STATUS = dict(ResidentStatus.choices)
_CHANGE = dict(ChangeKind.choices)


def _current(mc: str | None = None):
    return ResidentVersion.objects.filter(
        municipality_code=mc or settings.MUNICIPALITY_CODE, valid_to__isnull=True
    )


def import_feed_files(
    paths: list[Path], *, stdout: TextIO | None, actor: str = "system"
) -> list[ImportReport]:
    """Import files in the order given; stop at the first file with errors.

    Why stop: later 異動 files depend on earlier ones, so applying them past a rejected file
    would report a cascade of unknown-person errors instead of the real cause.
    """
    reports = []
    for path in paths:
        report = import_feed_file(Path(path), actor=actor, stdout=stdout)
        reports.append(report)
        if stdout is not None:
            stdout.write(report.summary() + "\n")
            for error in report.errors[:MAX_ERRORS_SHOWN]:
                stdout.write(f"  {error}\n")
            if len(report.errors) > MAX_ERRORS_SHOWN:
                stdout.write(f"  …ほか {len(report.errors) - MAX_ERRORS_SHOWN:,} 件\n")
        if report.errors:
            break
    return reports


def write_errors_csv(reports: list[ImportReport], path: Path) -> int:
    """Write every error as CSV (UTF-8 with BOM so that Excel opens it cleanly).

    Only row, column and message: never a copy of the row, so a 個人番号 (or any other cell)
    of the feed cannot travel with the error list. The 個人番号 messages do not quote it.
    """
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ファイル", "行", "列", "内容"])
        for report in reports:
            for error in report.errors:
                writer.writerow([report.file_name, error.row, error.column, error.message])
                count += 1
    return count


def search_residents(
    *,
    kana: str = "",
    name: str = "",
    birth_date: str | date | None = None,
    atena_no: str = "",
    household_no: str = "",
    limit: int = SEARCH_LIMIT,
) -> list[ResidentRecord]:
    """Find current register records.

    Allowed: an exact 宛名番号 or 世帯番号, or a name prefix (kana or kanji) together with the
    生年月日. Kana matches its search key by range (an index range scan on both databases,
    reference/perf-limits.md §F); kanji matches the variant-folded key, so 髙橋 finds 高橋.
    """
    atena_no = normalize_digits(atena_no or "")
    household_no = normalize_digits(household_no or "")
    qs = _current()
    if atena_no:
        qs = qs.filter(atena_no=atena_no)
    elif household_no:
        qs = qs.filter(household_no=household_no).order_by("birth_date")
        return [_record(v) for v in qs.values(*_RECORD_FIELDS)[:limit]]
    else:
        if isinstance(birth_date, str):
            birth_date = parse_date(birth_date) if birth_date.strip() else None
        kana_key = kana_search_key(kana) if kana else ""
        name_key = name_search_key(name) if name else ""
        if not (kana_key or name_key) or birth_date is None:
            raise SearchRejected(
                "検索には、宛名番号・世帯番号のいずれか、または氏名（カナか漢字）と生年月日の"
                "両方が必要です"
            )
        qs = qs.filter(birth_date=birth_date)
        if kana_key:
            qs = qs.filter(kana_key__gte=kana_key, kana_key__lt=kana_key + _KEY_END)
        if name_key:
            qs = qs.filter(name_key__gte=name_key, name_key__lt=name_key + _KEY_END)
    return [_record(v) for v in qs.order_by("kana_key", "atena_no").values(*_RECORD_FIELDS)[:limit]]


def get_resident(atena_no: str) -> ResidentRecord | None:
    """The current record of one person (any status), or None."""
    v = _current().filter(atena_no=atena_no).values(*_RECORD_FIELDS).first()
    return _record(v) if v else None


def household_members(household_no: str) -> list[ResidentRecord]:
    """Current residents of one household, the head first, then by birth date."""
    qs = _current().filter(household_no=household_no, status="resident")
    members = [_record(v) for v in qs.order_by("birth_date").values(*_RECORD_FIELDS)]
    members.sort(key=lambda r: (r.relationship != "世帯主", r.birth_date))
    return members


def history(atena_no: str) -> list[ResidentRecord]:
    """Every version of one person, newest first (the 異動 history)."""
    qs = ResidentVersion.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, atena_no=atena_no
    ).order_by("-valid_from", "-pk")
    return [_record(v) for v in qs.values(*_RECORD_FIELDS)]


def fiscal_categories(atena_no: str) -> list[dict]:
    """保険区分 and 課税区分 per fiscal year for one person, newest year first."""
    ins, tax = dict(InsuranceCategory.choices), dict(TaxCategory.choices)
    rows = FiscalCategory.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, atena_no=atena_no
    ).order_by("-fiscal_year")
    return [
        {
            "fiscal_year": r.fiscal_year,
            "insurance_category": ins[r.insurance_category],
            "tax_category": tax[r.tax_category],
        }
        for r in rows
    ]


def register_as_of(day: date, *, residents_only: bool = True) -> Iterator[dict]:
    """The register as it stood on `day` — one indexed query (valid_from ≤ day < valid_to).

    Used by roster extraction (対象者抽出) for the base date of a fiscal year.
    """
    qs = ResidentVersion.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gt=day),
        municipality_code=settings.MUNICIPALITY_CODE,
        valid_from__lte=day,
    )
    if residents_only:
        qs = qs.filter(status="resident")
    return qs.values("atena_no", "name", "name_kana", "sex", "birth_date", "household_no",
                     "status").iterator(chunk_size=10_000)  # fmt: skip


def count_current() -> dict[str, int]:
    """Number of current records per 住民状態 label, as of the last resident import.

    Read from the import record (actions._count_current) rather than counted here: the
    register changes only through imports, and counting a million rows per page costs ~1 s.
    """
    counts = (
        FeedImport.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)
        .exclude(kind=FeedKind.FISCAL_CATEGORIES)
        .order_by("-pk")
        .values_list("register_counts", flat=True)
        .first()
    ) or {}
    return {label: counts[value] for value, label in ResidentStatus.choices if value in counts}


# ---------------------------------------------------------------------------------------------
# 閲覧注意の住民 (ResidentFlag): DV等支援措置 and VIP. Every view of such a person is reported to
# the access review (LOG-07); the person page shows a notice so staff think twice before reading.


# kind -> label, for other apps (the access review) that must not import the model.
FLAG_KINDS: dict[str, str] = dict(FlagKind.choices)


@dataclass(frozen=True)
class FlagInfo:
    """One flag period of a person, as templates and the audit review see it."""

    flag_id: int
    atena_no: str
    kind: str
    kind_label: str
    valid_from: date
    valid_to: date | None
    note: str


def _flag_info(f: ResidentFlag) -> FlagInfo:
    return FlagInfo(
        flag_id=f.pk,
        atena_no=f.atena_no,
        kind=f.kind,
        kind_label=f.get_kind_display(),
        valid_from=f.valid_from,
        valid_to=f.valid_to,
        note=f.note,
    )


def _flags():
    return ResidentFlag.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)


def _active_on(day: date) -> Q:
    # valid_to is the last day of the measure (inclusive): a 支援措置 ending on 3/31 covers 3/31.
    return Q(valid_from__lte=day) & (Q(valid_to__isnull=True) | Q(valid_to__gte=day))


def flags_of(atena_no: str, on_date: date | None = None) -> list[FlagInfo]:
    """Flags in force for one person on a day (default: today in Japan)."""
    day = on_date or clock.today()
    qs = _flags().filter(_active_on(day), atena_no=atena_no).order_by("kind", "valid_from")
    return [_flag_info(f) for f in qs]


def flagged_atena_nos(kinds: Iterable[str] | None = None, on_date: date | None = None) -> set[str]:
    """宛名番号 of everyone with a flag of one of ``kinds`` (default: all) in force on a day."""
    qs = _flags().filter(_active_on(on_date or clock.today()))
    if kinds is not None:
        qs = qs.filter(kind__in=list(kinds))
    return set(qs.values_list("atena_no", flat=True))


def flag_periods(
    kinds: Iterable[str] | None = None, start: date | None = None, end: date | None = None
) -> list[FlagInfo]:
    """Every flag period overlapping [start, end] (either bound open), for the access review.

    Why periods and not a set: a view counts as a view of a flagged record only if the flag
    was in force on the day of the view; the review compares each view's date with these.
    """
    qs = _flags()
    if kinds is not None:
        qs = qs.filter(kind__in=list(kinds))
    if end is not None:
        qs = qs.filter(valid_from__lte=end)
    if start is not None:
        qs = qs.filter(Q(valid_to__isnull=True) | Q(valid_to__gte=start))
    return [_flag_info(f) for f in qs.order_by("atena_no", "valid_from")]


def set_flag(
    actor: Any,
    atena_no: str,
    kind: str,
    valid_from: date,
    note: str = "",
    *,
    valid_to: date | None = None,
) -> FlagInfo:
    """Flag a person (課長, function residents.flag); the audit event is written in the same
    transaction. The event names the person (宛名番号, as every event does) and the flag's id,
    never the kind: DV is itself sensitive and the log must not become a list of DV cases.
    """
    atena_no = normalize_digits(atena_no or "").strip()
    if not atena_no:
        raise ValueError("宛名番号を入力してください")
    if kind not in FlagKind.values:
        raise ValueError("閲覧注意の種類が正しくありません")
    if valid_to is not None and valid_to < valid_from:
        raise ValueError("終了日は開始日より後にしてください")
    with transaction.atomic():
        flag, _created = ResidentFlag.objects.update_or_create(
            municipality_code=settings.MUNICIPALITY_CODE,
            atena_no=atena_no,
            kind=kind,
            valid_from=valid_from,
            defaults={"valid_to": valid_to, "note": note[:200]},
        )
        audit.record(
            audit.Event.CREATE if _created else audit.Event.UPDATE,
            actor,
            atena_no,
            function="residents.flag",
            flag_id=flag.pk,
        )
    return _flag_info(flag)


def household_of(atena_no: str) -> set[str]:
    """宛名番号 of everyone currently in the same household as this person (the person included)."""
    return households_of([atena_no]).get(atena_no, set())


def households_of(atena_nos: Iterable[str]) -> dict[str, set[str]]:
    """For each given 宛名番号, the current household's members (two queries for any number).

    Used by the access review for "staff viewing their own household" (LOG-07).
    """
    wanted = {a for a in atena_nos if a}
    if not wanted:
        return {}
    own = dict(_current().filter(atena_no__in=wanted).values_list("atena_no", "household_no"))
    members: dict[str, set[str]] = {}
    for a, h in (
        _current()
        .filter(household_no__in=set(own.values()))
        .values_list("atena_no", "household_no")
    ):
        members.setdefault(h, set()).add(a)
    return {a: members.get(h, {a}) | {a} for a, h in own.items()}


# ---------------------------------------------------------------------------------------------
# 団体内統合宛名番号 and 個人番号 (through the 番号連携サーバ's client; nothing stored here but
# the link)


def link_residents(
    *, actor: str, batch_size: int = 5_000, stop_after: int | None = None, stdout: TextIO | None
) -> LinkReport:
    """Register every current resident without a 統合宛名番号 (resumable; see linking)."""
    return link_unlinked(actor=actor, batch_size=batch_size, stop_after=stop_after, stdout=stdout)


def unified_atena_no_of(atena_no: str) -> str | None:
    """The person's 団体内統合宛名番号 as last linked, or None (not linked yet)."""
    return (
        ResidentLink.objects.filter(municipality_code=settings.MUNICIPALITY_CODE, atena_no=atena_no)
        .values_list("unified_atena_no", flat=True)
        .first()
    )


def masked_my_number(unified_atena_no: str, *, actor: str) -> str | None:
    """``**** **** 3214`` from the linkage server (which logs the call), or None if none held.

    The caller records the read in the main audit log (core.audit) with its purpose.
    """
    return linkage.client().masked_my_number(unified_atena_no, actor=actor)


def reveal_my_number(unified_atena_no: str, *, actor: str, purpose: str) -> str | None:
    """The full 個人番号. Only for a caller that has checked linkage.reveal_mynumber and a fresh
    second factor (the linkage server records the purpose; the caller audits the reveal)."""
    return linkage.client().reveal_my_number(unified_atena_no, actor=actor, purpose=purpose)


def linked_residents(unified_atena_no: str, *, actor: str) -> list[ResidentRecord]:
    """This system's residents linked to a 統合宛名番号 (reverse look-up at the linkage server).

    Other systems' 宛名 are not shown: this system knows only its own residents.
    """
    refs = linkage.client().atenas_of(unified_atena_no, actor=actor)
    own = sorted(r.atena_no for r in refs if r.system_code == settings.LINKAGE_SYSTEM_CODE)
    if not own:
        return []
    qs = _current().filter(atena_no__in=own).order_by("atena_no")
    return [_record(v) for v in qs.values(*_RECORD_FIELDS)]


def request_merge(
    request: Any, survivor: str, absorbed: str, *, reason: str, candidate_id: int
) -> MergeView:
    """Request a merge of two 統合宛名番号 at the linkage server (audited; see actions)."""
    return actions.request_merge(
        request, survivor, absorbed, reason=reason, candidate_id=candidate_id
    )


def request_unmerge(request: Any, merge_id: int, *, reason: str) -> MergeView:
    """Request that an applied merge be undone (audited; see actions)."""
    return actions.request_unmerge(request, merge_id, reason=reason)


def decide_merge(request: Any, merge_id: int, *, approve: bool) -> MergeView:
    """Approve or reject a request; on approval this system's links follow (see actions)."""
    return actions.decide_merge(request, merge_id, approve=approve)


# ---------------------------------------------------------------------------------------------
# Person references: a random per-session token that stands for one person (and the purpose the
# record was opened for) in URLs, so that no 宛名番号 ever appears in a link, a browser history
# or an access log. Other apps' lists (the roster) use the same references, so a person opened
# from any list reaches the same pages with the purpose chosen for that list.

PERSON_REFS_SESSION_KEY = "residents_refs"  # session: ref -> [atena_no, purpose]
MAX_PERSON_REFS = 500


def _unpack_ref(value: object) -> tuple[str, str]:
    # A session from before purposes were stored holds the bare 宛名番号: no purpose yet.
    if isinstance(value, str):
        return value, ""
    atena_no, purpose = [*list(value), "", ""][:2]  # type: ignore[call-overload]
    return str(atena_no), str(purpose)


def person_ref(session: Any, atena_no: str, purpose: str) -> str:
    """A random token standing for one person (and the purpose) within this staff session.

    The same person keeps one token; a later list under another purpose updates it, so the
    link always opens the record for the purpose last chosen. ``session`` is request.session.
    """
    refs = session.get(PERSON_REFS_SESSION_KEY, {})
    found = next((ref for ref, v in refs.items() if _unpack_ref(v)[0] == atena_no), None)
    if found is None:
        if len(refs) >= MAX_PERSON_REFS:
            refs.pop(next(iter(refs)))
        found = secrets.token_urlsafe(9)
    refs[found] = [atena_no, purpose]
    session[PERSON_REFS_SESSION_KEY] = refs
    return found


def person_refs(
    session: Any, atena_nos: Iterable[str], purpose: str, *, keep_purpose: bool = False
) -> dict[str, str]:
    """:func:`person_ref` for a whole list at once (one pass over the session's references).

    ``keep_purpose``: a person who already has a reference keeps its purpose (a side list —
    the forms a member of staff keyed — must not switch the purpose of a record they have open).
    """
    refs = session.get(PERSON_REFS_SESSION_KEY, {})
    by_person = {_unpack_ref(v)[0]: ref for ref, v in refs.items()}
    out: dict[str, str] = {}
    for atena_no in atena_nos:
        ref = by_person.get(atena_no)
        if ref is None:
            if len(refs) >= MAX_PERSON_REFS:
                dropped = next(iter(refs))
                by_person.pop(_unpack_ref(refs.pop(dropped))[0], None)
            ref = secrets.token_urlsafe(9)
            by_person[atena_no] = ref
        if not (keep_purpose and ref in refs):
            refs[ref] = [atena_no, purpose]
        out[atena_no] = ref
    session[PERSON_REFS_SESSION_KEY] = refs
    return out


def person_of_ref(session: Any, ref: str) -> tuple[str, str] | None:
    """(宛名番号, purpose) behind a reference of this session, or None (unknown or expired)."""
    value = session.get(PERSON_REFS_SESSION_KEY, {}).get(ref)
    return _unpack_ref(value) if value else None


@dataclass(frozen=True)
class PersonName:
    """Who a 宛名番号 is, for lists in other apps (current record, any status)."""

    atena_no: str
    name: str
    name_kana: str
    sex: int
    birth_date: date
    status: str
    status_label: str


_NAME_BATCH = 5_000  # far under SQLite's 32,766 bound variables; 60 queries for 300,000


def names_of(atena_nos: Iterable[str]) -> dict[str, PersonName]:
    """Current name, kana, sex, birth date and status of many people — one query per 5,000.

    For lists and exports in other apps (the roster): never one query per row.
    """
    wanted = list(dict.fromkeys(a for a in atena_nos if a))
    out: dict[str, PersonName] = {}
    for i in range(0, len(wanted), _NAME_BATCH):
        rows = _current().filter(atena_no__in=wanted[i : i + _NAME_BATCH])
        for v in rows.values("atena_no", "name", "name_kana", "sex", "birth_date", "status"):
            out[v["atena_no"]] = PersonName(status_label=_STATUS[v["status"]], **v)
    return out


class Identity(NamedTuple):
    """What result matching confirms a person by: birth date, sex, kana — and whether they
    were a resident on the exam day (current record)."""

    atena_no: str
    birth_date: date
    sex: int
    name_kana: str
    status: str  # resident | moved_out | deceased | non_resident
    status_since: date  # the day the current record began (the 死亡・転出 day when it is one)


_IDENTITY_CHUNK = 20_000


def identity_rows(atena_nos: Sequence[str]) -> list[tuple[str, str, int, str, str, str | None]]:
    """(宛名番号, 生年月日, 性別, 氏名カナ, 住民状態, since) of these (distinct, sorted)
    people's current records, dates as ISO text, in one query (the list as one parameter,
    core.bulk.in_list).

    Dates as text: date.fromisoformat is ten times the speed of the driver's converters, and
    a large file asks for 300,000 people.
    """
    table = ResidentVersion._meta.db_table
    clause, params = in_list("atena_no", atena_nos)
    sql = (
        "SELECT atena_no, CAST(birth_date AS TEXT), sex, name_kana, status, "  # noqa: S608
        f"CAST(valid_from AS TEXT) FROM {table} "  # nosec B608 - fixed names
        f"WHERE municipality_code = %s AND valid_to IS NULL AND {clause}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [settings.MUNICIPALITY_CODE, *params])
        return cursor.fetchall()


def identities_of(atena_nos: Iterable[str]) -> dict[str, Identity]:
    """Current birth date, sex and kana of many people — one query per 20,000 (identity_rows):
    the result intake asks this for every 10,000 rows it checks one by one.
    """
    wanted = sorted({a for a in atena_nos if a})
    out: dict[str, Identity] = {}
    for i in range(0, len(wanted), _IDENTITY_CHUNK):
        for atena, birth, sex, kana, status, since in identity_rows(
            wanted[i : i + _IDENTITY_CHUNK]
        ):
            out[atena] = Identity(
                atena, date.fromisoformat(birth), int(sex), kana, status,
                date.fromisoformat(since) if since else None,
            )  # fmt: skip
    return out


# ---------------------------------------------------------------- set-based reads (roster build)
# The roster build (screening) joins the register in SQL for a million people at once; these
# return the SELECTs it may embed, so the register's tables stay this app's business.


def current_identity_join(atena_column: str) -> tuple[str, list[Any]]:
    """A LEFT JOIN that adds, as ``r``, the current record (birth_date, sex, name_kana,
    status) of the person named in ``atena_column``: for another app's SELECT that looks up
    many people at once (the result intake's vouchers and their holders in one query).

    PostgreSQL: a LATERAL look-up kept apart by its LIMIT, one descent of an index per row
    whatever the statistics say (right after a bulk load they say the register is empty; a
    plain join, or a LATERAL without the LIMIT, which is flattened into one, was then
    planned as a scan of the register per voucher: minutes). SQLite: a plain join on the
    partial unique index.
    """
    table = ResidentVersion._meta.db_table
    columns = "birth_date, sex, name_kana, status"
    if connection.vendor == "postgresql":
        return (
            f"LEFT JOIN LATERAL (SELECT {columns} FROM {table} "  # noqa: S608  # nosec B608 - fixed names
            f"WHERE municipality_code = %s AND atena_no = {atena_column} AND valid_to IS NULL "
            "LIMIT 1) r ON TRUE",  # LIMIT: not flattened into a join the planner may misjudge
            [settings.MUNICIPALITY_CODE],
        )
    return (
        f"LEFT JOIN {table} r ON r.municipality_code = %s AND r.atena_no = {atena_column} "
        "AND r.valid_to IS NULL",
        [settings.MUNICIPALITY_CODE],
    )


def register_on_sql(day: date) -> tuple[str, list[Any]]:
    """SELECT atena_no, sex, birth_date, status — every person's record as it stood on `day`."""
    table = ResidentVersion._meta.db_table
    return (
        f"SELECT atena_no, sex, birth_date, status FROM {table}{whole_table_scan()} "  # noqa: S608  # nosec B608 - fixed names
        "WHERE municipality_code = %s AND valid_from <= %s "
        "AND (valid_to IS NULL OR valid_to > %s)",
        [settings.MUNICIPALITY_CODE, day, day],
    )


def move_ins_sql(day: date) -> tuple[str, list[Any]]:
    """SELECT atena_no, moved_in — each person's latest 転入 on or before `day`."""
    table = ResidentVersion._meta.db_table
    return (
        f"SELECT atena_no, MAX(valid_from) AS moved_in FROM {table}{whole_table_scan()} "  # noqa: S608  # nosec B608
        "WHERE municipality_code = %s AND change_kind = %s AND valid_from <= %s "
        "GROUP BY atena_no",
        [settings.MUNICIPALITY_CODE, ChangeKind.MOVE_IN.value, day],
    )


def categories_sql(fiscal_year: int) -> tuple[str, list[Any]]:
    """SELECT atena_no, tax_category, insurance_category — codes for one fiscal year."""
    table = FiscalCategory._meta.db_table
    return (
        f"SELECT atena_no, tax_category, insurance_category FROM {table} "  # noqa: S608  # nosec B608
        "WHERE municipality_code = %s AND fiscal_year = %s",
        [settings.MUNICIPALITY_CODE, fiscal_year],
    )


@dataclass(frozen=True)
class RegisterFacts:
    """One person on a day, with the codes (not labels) the eligibility rules read."""

    atena_no: str
    sex: int
    birth_date: date
    status: str | None  # None: no record valid on that day
    moved_in: date | None
    tax_category: str | None
    tax_category_previous: str | None
    insurance_category: str | None


def register_facts(atena_no: str, day: date, fiscal_year: int) -> RegisterFacts | None:
    """What :func:`register_on_sql` and friends say about one person (None if never registered).

    The same predicates as the set-based SQL, for explaining one person's decisions.
    """
    mc = settings.MUNICIPALITY_CODE
    versions = ResidentVersion.objects.filter(municipality_code=mc, atena_no=atena_no)
    on_day = (
        versions.filter(valid_from__lte=day)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=day))
        .values("sex", "birth_date", "status")
        .first()
    )
    if on_day is None:
        any_version = versions.order_by("valid_from").values("sex", "birth_date").first()
        if any_version is None:
            return None
        on_day = {**any_version, "status": None}
    moved_in = (
        versions.filter(change_kind=ChangeKind.MOVE_IN, valid_from__lte=day)
        .order_by("-valid_from")
        .values_list("valid_from", flat=True)
        .first()
    )
    cats = {
        r["fiscal_year"]: r
        for r in FiscalCategory.objects.filter(
            municipality_code=mc, atena_no=atena_no, fiscal_year__in=[fiscal_year, fiscal_year - 1]
        ).values("fiscal_year", "tax_category", "insurance_category")
    }
    this, prev = cats.get(fiscal_year, {}), cats.get(fiscal_year - 1, {})
    return RegisterFacts(
        atena_no=atena_no,
        sex=on_day["sex"],
        birth_date=on_day["birth_date"],
        status=on_day["status"],
        moved_in=moved_in,
        tax_category=this.get("tax_category"),
        tax_category_previous=prev.get("tax_category"),
        insurance_category=this.get("insurance_category"),
    )


def refresh_statistics() -> None:
    """PostgreSQL: refresh the planner's statistics of the register tables (no-op on SQLite).

    Why: right after a full load autovacuum may not have analysed the new rows yet, and a
    million-row join planned on empty statistics picks nested loops (minutes, not seconds).
    ANALYZE samples a fixed number of rows, so it costs well under a second at 1M rows.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (ResidentVersion, FiscalCategory):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
