"""Set-based reads and the one correction path that file intake needs from screening.

Why here: an intake batch of 300,000 rows asks "who holds these vouchers", "which of these
exams are on record already" and "which vouchers were used at another clinic" — each once per
batch of thousands of keys, never once per row. The answers are plain records so the intake
decides with its own pure rules; the tables stay screening's.

:func:`revise_exams` is how a clinic's corrected resend changes exams on record: the same
checks and the same 要精検 rule as a new exam, a case opened when a corrected result becomes
要精検, and one audit event per exam naming the changed fields (never the values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction

from kenshin.core import audit, clock
from kenshin.core.bulk import in_list, query_frame
from kenshin.core.purposes import Purpose
from kenshin.programs import services as programs
from kenshin.screening import rules
from kenshin.screening.exam_actions import case_subject, rederive_case
from kenshin.screening.exam_history import person_index_hint
from kenshin.screening.models import Exam, FollowUpCase, Voucher
from kenshin.screening.permissions import ENTER_RESULT

CHUNK = 20_000  # keys per query, sent as one parameter (core.bulk.in_list)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    wanted = sorted({v for v in values if v})
    for i in range(0, len(wanted), CHUNK):
        yield wanted[i : i + CHUNK]


class VoucherRecord(NamedTuple):
    voucher_no: str
    atena_no: str
    fiscal_year: int
    programme: str  # '' = every programme


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def vouchers_by_number(numbers: Iterable[str]) -> dict[str, VoucherRecord]:
    """The vouchers issued under these numbers (numbers never issued are absent)."""
    mc = settings.MUNICIPALITY_CODE
    table = Voucher._meta.db_table
    out: dict[str, VoucherRecord] = {}
    for chunk in _chunks(numbers):
        clause, params = in_list("voucher_no", chunk)
        for no, atena, fy, programme in _rows(
            f"SELECT voucher_no, atena_no, fiscal_year, programme FROM {table} "  # noqa: S608  # nosec B608 - names from _meta
            f"WHERE municipality_code = %s AND {clause}",
            [mc, *params],
        ):
            out[no] = VoucherRecord(no, atena, fy, programme)
    return out


def voucher_holders(
    numbers: Sequence[str], fiscal_year: int, holder_join: tuple[str, list[Any]]
) -> Any:
    """For each voucher issued under these (distinct, sorted) numbers, in one query, a polars
    DataFrame: voucher_no, atena_no, fiscal_year, programme, used (an exam on record was taken
    with it), has_exams (its holder has an exam on record in ``fiscal_year``), then the
    holder's birth_date, sex, name_kana, status from ``holder_join`` (a LEFT JOIN as ``r`` on
    ``v.atena_no``, residents.current_identity_join) — what the columnar intake joins.

    Why one query: asked for every voucher of a 300,000-row file, each separate look-up costs
    a round of 300,000 keys. Every condition names the 団体コード as a constant, so each EXISTS
    is one descent of its index whatever the statistics say (right after a bulk load they
    say the tables are empty).
    """
    import polars as pl

    mc = settings.MUNICIPALITY_CODE
    exam, voucher = Exam._meta.db_table, Voucher._meta.db_table
    clause, params = in_list("v.voucher_no", numbers)
    first, last = date(fiscal_year, 4, 1), date(fiscal_year + 1, 3, 31)
    join, join_params = holder_join
    sql = (
        "SELECT v.voucher_no, v.atena_no, v.fiscal_year, v.programme, "  # noqa: S608  # nosec B608 - names from _meta
        f"CASE WHEN EXISTS (SELECT 1 FROM {exam} u{_index_hint('exam_voucher')} "
        "WHERE u.municipality_code = %s AND u.voucher_no = v.voucher_no "
        "AND NOT (u.voucher_no = '')) THEN 1 ELSE 0 END, "
        f"CASE WHEN EXISTS (SELECT 1 FROM {exam} e{person_index_hint()} "
        "WHERE e.municipality_code = %s AND e.atena_no = v.atena_no "
        "AND e.exam_date >= %s AND e.exam_date <= %s) THEN 1 ELSE 0 END, "
        "CAST(r.birth_date AS TEXT), r.sex, r.name_kana, r.status "
        f"FROM {voucher} v {join} WHERE v.municipality_code = %s AND {clause}"
    )
    schema = {"voucher_no": pl.String, "atena_no": pl.String, "fiscal_year": pl.Int64,
              "programme": pl.String, "used": pl.Boolean, "has_exams": pl.Boolean,
              "birth_date": pl.Date, "sex": pl.Int64, "name_kana": pl.String,
              "status": pl.String}  # fmt: skip
    return query_frame(sql, [mc, mc, first, last, *join_params, mc, *params], schema)


def exam_keys(atena_nos: Sequence[str], fiscal_year: int) -> list[tuple[str, str, str, bool]]:
    """(宛名番号, method, 受診日 ISO, 追跡検査) of every exam of the fiscal year of these (distinct)
    people:
    what makes an exam "the same" for intake, without the values :func:`exams_on_record`
    reads for a comparison."""
    clause, params = in_list("e.atena_no", atena_nos)
    rows = _rows(
        f"SELECT e.atena_no, e.method, CAST(e.exam_date AS TEXT), e.hpv_follow_up "  # noqa: S608  # nosec B608 - names from _meta
        f"FROM {Exam._meta.db_table} e{person_index_hint()} "
        f"WHERE e.municipality_code = %s AND {clause} AND e.fiscal_year = %s",
        [settings.MUNICIPALITY_CODE, *params, fiscal_year],
    )
    return [(a, m, d, bool(f)) for a, m, d, f in rows]


def vouchers_for(atena_nos: Iterable[str], fiscal_year: int) -> dict[str, str]:
    """The year's voucher number of each of these people who has one (every-programme vouchers
    first, then the lowest number): what a clinic's file would carry for them."""
    mc = settings.MUNICIPALITY_CODE
    out: dict[str, str] = {}
    for chunk in _chunks(atena_nos):
        for atena, no in (
            Voucher.objects.filter(municipality_code=mc, fiscal_year=fiscal_year,
                                   atena_no__in=chunk)
            .order_by("atena_no", "programme", "voucher_no")
            .values_list("atena_no", "voucher_no")
        ):  # fmt: skip
            out.setdefault(atena, no)
    return out


class StoredExam(NamedTuple):
    """An exam on record, as intake compares it with a row of a file."""

    exam_id: int
    atena_no: str
    method: str
    exam_date: date
    hpv_follow_up: bool
    values: Mapping[str, Any]  # the comparable fields, JSON-ready (ISO dates)
    has_case: bool


_VALUES = ("setting", "institution_code", "results", "smoking_index", "voucher_no", "coupon_no",
           "place", "complication", "billing_category", "billing_month")  # fmt: skip


def _index_hint(name: str) -> str:
    """SQLite, without statistics, walks the (団体, 年度) index for these look-ups — every exam
    of the city; it is told which index to use. PostgreSQL chooses well by itself."""
    return f" INDEXED BY {name}" if connection.vendor == "sqlite" else ""


def exams_on_record(atena_nos: Iterable[str], fiscal_year: int) -> list[StoredExam]:
    """Every exam of the fiscal year of these people, with whether a 精検 case hangs on it."""
    mc = settings.MUNICIPALITY_CODE
    exam, case = Exam._meta.db_table, FollowUpCase._meta.db_table

    def column(name: str) -> str:  # dates as text (see residents.identities_of)
        field = Exam._meta.get_field(name)
        if field.get_internal_type() == "DateField":
            return f"CAST(e.{field.column} AS TEXT)"
        return f"e.{field.column}"

    columns = ", ".join(column(n) for n in _VALUES)
    out: list[StoredExam] = []
    for chunk in _chunks(atena_nos):
        clause, params = in_list("e.atena_no", chunk)
        for pk, atena, method, day, follow_up, has_case, *values in _rows(
            f"SELECT e.id, e.atena_no, e.method, CAST(e.exam_date AS TEXT), e.hpv_follow_up, "  # noqa: S608  # nosec B608 - names from _meta
            f"EXISTS (SELECT 1 FROM {case} c WHERE c.exam_id = e.id), {columns} "
            f"FROM {exam} e{person_index_hint()} "
            f"WHERE e.municipality_code = %s AND {clause} AND e.fiscal_year = %s",
            [mc, *params, fiscal_year],
        ):
            stored = dict(zip(_VALUES, values, strict=True))
            if isinstance(stored["results"], str):
                stored["results"] = json.loads(stored["results"])
            month = _day(stored["billing_month"])
            stored["billing_month"] = month.isoformat() if month else None
            out.append(StoredExam(pk, atena, method, _day(day), bool(follow_up), stored,
                                  bool(has_case)))  # fmt: skip
    return out


class VoucherUse(NamedTuple):
    voucher_no: str
    atena_no: str
    programme: str
    institution_code: str
    exam_date: date


def voucher_uses(numbers: Iterable[str]) -> list[VoucherUse]:
    """The exams on record that were taken with these vouchers (index ``exam_voucher``)."""
    mc = settings.MUNICIPALITY_CODE
    table = Exam._meta.db_table
    out: list[VoucherUse] = []
    for chunk in _chunks(numbers):
        clause, params = in_list("voucher_no", chunk)
        for no, atena, programme, institution, day in _rows(
            f"SELECT voucher_no, atena_no, programme, institution_code, exam_date FROM {table}"  # noqa: S608  # nosec B608
            f"{_index_hint('exam_voucher')} "
            f"WHERE municipality_code = %s AND NOT (voucher_no = '') AND {clause}",
            [mc, *params],
        ):
            out.append(VoucherUse(no, atena, programme, institution, _day(day)))
    return out


class RevisionRefused(ValueError):
    """A correction that must be made on the ledger by a person (the message says why)."""


def _as_read(value: Any) -> Any:
    """A stored value as the intake read it (dates as ISO text, blanks as None)."""
    if isinstance(value, date):
        value = value.isoformat()
    return value or None


def revise_exams(
    actor: Any,
    revisions: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    source: str = "",
    expected: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Apply corrections {field: new value} to exams on record; return how many changed.

    ``expected`` (one per revision): the values the correction was made against — if the
    exam changed since (another batch, a person on the ledger), the correction is refused
    rather than overwriting what it never saw.

    The result decides 要精検 and the HPV 追跡検査 date again (``rules.primary_outcome``). A
    correction that turns a 要精検 into not 要精検 while its 精検 case exists is refused: the
    case (and perhaps its reports) must be reviewed by a person on the ledger.
    """
    if not revisions:
        return 0
    mc = settings.MUNICIPALITY_CODE
    now = clock.now()
    by = audit.actor_of(actor).username
    with transaction.atomic():
        exams = Exam.objects.select_for_update().in_bulk([pk for pk, _ in revisions])
        cases = set(
            FollowUpCase.objects.filter(exam_id__in=list(exams)).values_list("exam_id", flat=True)
        )
        for n, (pk, changes) in enumerate(revisions):
            exam = exams.get(pk)
            if exam is None or exam.municipality_code != mc:
                raise RevisionRefused(
                    "訂正する受診が見つかりません（他で削除された可能性があります）"
                )
            before = expected[n] if expected is not None else {}
            if any(_as_read(getattr(exam, k)) != _as_read(v) for k, v in before.items()):
                raise RevisionRefused(
                    "訂正する受診が、確認の後に変わりました（別の取込か受診台帳で）。"
                    "もう一度確認してから確定してください"
                )
            for name, value in changes.items():
                if name not in _VALUES:
                    raise RevisionRefused(f"{name} は訂正できる項目ではありません")
                if name == "billing_month" and isinstance(value, str):
                    value = date.fromisoformat(value)
                setattr(exam, name, value)
            seiken, due = rules.primary_outcome(
                exam.method, exam.exam_date, exam.results or {}, follow_up=exam.hpv_follow_up
            )
            if exam.pk in cases and not seiken:
                raise RevisionRefused(
                    "精密検査を追跡中の受診を要精検でなくする訂正は、受診台帳から行ってください"
                )
            exam.needs_seiken, exam.follow_up_due = seiken, due
            exam.recorded_by, exam.recorded_at = by, now
            exam.save()
            if exam.pk in cases:
                _revise_case(actor, exam, by, now)
            if seiken and exam.pk not in cases and programs.seiken_of(exam.programme) is not None:
                FollowUpCase.objects.create(
                    municipality_code=mc, atena_no=exam.atena_no, programme=exam.programme,
                    fiscal_year=exam.fiscal_year, exam=exam,
                    primary_result=rules.decisive_value(exam.method, exam.results or {}),
                    status=rules.SeikenStatus.UNKNOWN, status_since=exam.exam_date,
                    updated_by=by, updated_at=now,
                )  # fmt: skip
            audit.record(
                audit.Event.UPDATE, actor,
                exam.atena_no, Purpose.RESULT_ENTRY, function=ENTER_RESULT, exam_id=exam.pk,
                fields=sorted(changes), source=source[:100],
            )  # fmt: skip
    return len(revisions)


def _revise_case(actor: Any, exam: Exam, by: str, now: Any) -> None:
    """The corrected result is the case's 一次検診の判定 from now on, and the case's status is
    derived again from it (an HPV test counts as the 精検 only after cytology ASC-US …)."""
    case = FollowUpCase.objects.select_for_update().get(exam=exam)
    primary = rules.decisive_value(exam.method, exam.results or {})
    if primary == case.primary_result:
        return
    case.primary_result = primary
    case.exam = exam
    rederive_case(case)
    case.version += 1
    case.updated_by, case.updated_at = by, now
    case.save()
    audit.record(
        audit.Event.UPDATE, actor,
        case_subject(case), Purpose.RESULT_ENTRY, function=ENTER_RESULT, exam_id=exam.pk,
        fields=["primary_result"], version=case.version,
    )  # fmt: skip


@dataclass(frozen=True)
class ExamForExport:
    """An exam as the national electronic format carries it (intake's FHIR export)."""

    exam_id: int
    atena_no: str
    fiscal_year: int
    programme: str
    method: str
    exam_date: date
    setting: str
    institution_code: str
    results: Mapping[str, str]
    smoking_index: int | None
    seiken_result: str  # the case's counted result ('' while unknown or no case)
    seiken_date: date | None  # the 精検機関's report's day, where one says it


def exams_for_export(atena_no: str, fiscal_year: int | None = None) -> list[ExamForExport]:
    """A person's exams (of one fiscal year, or all) with the 精検 outcome, oldest first."""
    mc = settings.MUNICIPALITY_CODE
    qs = Exam.objects.filter(municipality_code=mc, atena_no=atena_no)
    if fiscal_year is not None:
        qs = qs.filter(fiscal_year=fiscal_year)
    exams = list(qs.order_by("exam_date", "id"))
    cases = {
        c.exam_id: c
        for c in FollowUpCase.objects.filter(exam_id__in=[e.pk for e in exams]).prefetch_related(
            "reports"
        )
    }
    out = []
    for e in exams:
        case = cases.get(e.pk)
        dates = (
            [r.exam_date for r in case.reports.all() if r.from_institution and r.exam_date]
            if case
            else []
        )
        out.append(
            ExamForExport(
                e.pk,
                e.atena_no,
                e.fiscal_year,
                e.programme,
                e.method,
                e.exam_date,
                e.setting,
                e.institution_code,
                dict(e.results or {}),
                e.smoking_index,
                case.result if case else "",
                max(dates) if dates else None,
            )
        )
    return out
