"""Past exams taken in bulk, with their results and the 精密検査 they led to (demo, migration).

Why: the roster's interval rules read who was screened for what in earlier fiscal years; the
worklists, the ledgers and the 事業報告 read the results, the 要精検 and how each 精検 case
ended. A city switching to Kenshin brings years of all of it from its old system, and the demo
city needs the same; both arrive as tens of thousands of rows at once, too many for the
one-exam action (``exam_actions.record_exam``), which checks and writes one row at a time.

What a row is (:class:`ExamFact`): who, which method, when — the bare history an old system may
only have — and, when known, the coded results. A row with results is held to the same rules
as an exam entered by hand: the values must be the method's vocabulary's
(``programs.check_result``); 要精検 and the HPV 追跡検査 date are decided by
``rules.primary_outcome``; 初回 is derived from the exams on record (none of the programme in
the previous 3 fiscal years) unless the row knows better; and every 要精検 of a programme
whose 精検 is tracked opens its :class:`~kenshin.screening.models.FollowUpCase`, with the
reports the row brings (:class:`FollowUpFact`). The case's status, the day it began and the
result counted are derived by ``rules.seiken_status`` from those reports, as every later
change to the case derives them — never taken from the row.

How: :func:`kenshin.core.bulk.bulk_insert` (COPY on PostgreSQL, executemany on SQLite) in
batches — bulk_create costs 15–25× more per row at these sizes (reference/perf-limits.md §A).
After each batch of exams the ids of its 要精検 exams are read back (ids after the batch's
start, matched on person, method, date) to insert their cases, then the cases' reports. All of
it in one transaction, so a bad row anywhere leaves nothing behind; one audit event says how
many exams, cases and reports came in, never who.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Max

from kenshin.core import audit, clock
from kenshin.core.bulk import bulk_insert, in_list, serialise
from kenshin.core.fiscal import fiscal_year_of
from kenshin.programs import services as programs
from kenshin.screening import rules
from kenshin.screening.models import Exam, FollowUpCase, SeikenReportRecord, Setting

BATCH = 10_000
FIRST_TIME_YEARS = 3  # 初回: no exam of the programme in the previous 3 fiscal years
_EXAM_FIELDS = (
    "municipality_code", "atena_no", "fiscal_year", "programme", "method", "exam_date",
    "setting", "institution_code", "smoking_index", "follow_up_due", "results", "needs_seiken",
    "hpv_follow_up", "voucher_no", "coupon_no", "place", "age_at_exam", "fy_end_age",
    "first_time", "complication", "billing_category", "billing_month", "recorded_by",
    "recorded_at",
)  # fmt: skip
_CASE_FIELDS = (
    "municipality_code", "atena_no", "programme", "fiscal_year", "exam", "primary_result",
    "referral_to", "form_issued_on", "form_returned_on", "known_not_attended", "survey_sent_on",
    "survey_answered_on", "survey_answer", "tracing_result", "status", "status_since", "result",
    "version", "updated_by", "updated_at",
)  # fmt: skip
_REPORT_FIELDS = (
    "case", "from_institution", "exam_date", "institution", "method", "result", "pathology",
    "stage", "early_cancer", "complication", "recorded_by", "recorded_at",
)  # fmt: skip
_SETTINGS = frozenset(Setting.values)


@dataclass(frozen=True)
class SeikenReportFact:
    """One report of a 精検 as the old system (or the demo) has it: the 精検機関's 連絡票
    (``from_institution``) or what the person told the city. Codes as in ``[[seiken]]`` of
    ``programs/vocabularies.toml``; '' where the report did not say."""

    from_institution: bool
    exam_date: date | None
    institution: str = ""
    method: str = ""
    result: str = ""  # '' on an institution's report: the 精検 is still in progress
    pathology: str = ""
    stage: str = ""
    early_cancer: bool | None = None
    complication: str = ""
    recorded_at: datetime | None = None  # when the city took it in (None: now)


@dataclass(frozen=True)
class FollowUpFact:
    """What the city knew about the 精検 of one 要精検 exam: the facts staff record on a case
    (紹介先, 連絡票, 未受診者状況調査, 追跡調査) and the reports. No status: it is derived."""

    referral_to: str = ""
    form_issued_on: date | None = None
    form_returned_on: date | None = None
    known_not_attended: bool = False
    survey_sent_on: date | None = None
    survey_answered_on: date | None = None
    survey_answer: str = ""
    tracing_result: str = ""
    reports: tuple[SeikenReportFact, ...] = ()
    updated_at: datetime | None = None  # None: the latest report's, else the exam's record time


@dataclass(frozen=True)
class ExamFact:
    """One past primary exam: as much as the roster rules read, and the record where known.

    The fiscal year is the exam date's. ``smoking_index`` is the 喫煙指数 asked at the 問診
    (lung exams; None when not asked). ``results`` ({item: value code}, None when the old
    system kept no coded result) decide 要精検 and, for an HPV test, ``follow_up_due``; a row
    without results may still carry the due date its source recorded. ``first_time`` None is
    derived from the exams on record. ``follow_up``: the 精検 of a 要精検 exam (a case is opened
    for every 要精検 of a tracked programme, with or without it).
    """

    atena_no: str
    programme: str
    method: str
    exam_date: date
    setting: str  # individual | group
    institution_code: str = ""
    smoking_index: int | None = None
    follow_up_due: date | None = None
    results: Mapping[str, str] | None = None
    hpv_follow_up: bool = False  # the HPV 追跡検査 a year after a negative triage
    voucher_no: str = ""
    coupon_no: str = ""
    place: str = ""  # 検診場所 (group exams)
    age_at_exam: int | None = None
    fy_end_age: int | None = None
    first_time: bool | None = None
    complication: str = ""
    billing_category: str = ""  # 請求区分
    billing_month: date | None = None  # 請求月, the first day of the month
    recorded_by: str = ""
    recorded_at: datetime | None = None
    follow_up: FollowUpFact | None = None


@dataclass(frozen=True)
class _Case:
    """A 要精検 exam's case, waiting for its exam's id."""

    key: tuple[str, str, date, bool]  # atena_no, method, exam_date, hpv_follow_up
    fact: ExamFact
    fiscal_year: int
    primary_result: str


@dataclass(frozen=True)
class _Row:
    values: tuple[Any, ...]
    case: _Case | None


@dataclass
class _Counts:
    exams: int = 0
    cases: int = 0
    reports: int = 0


@cache
def _limit(model: type[models.Model], name: str) -> int | None:
    return model._meta.get_field(name).max_length


def _fits(model: type[models.Model], name: str, value: str) -> bool:
    limit = _limit(model, name)
    return limit is None or len(value) <= limit


def _datetime(value: datetime | None) -> Any:
    """A datetime as the connection stores it: PostgreSQL takes it as it is; SQLite stores
    naive UTC text, as Django's adapter writes it — made here directly, since the adapter's
    checks took a fifth of the writer's time at 50,000 rows."""
    if value is None or connection.vendor != "sqlite":
        return value
    if value.tzinfo is None:
        return connection.ops.adapt_datetimefield_value(value)  # refused or taken as Django does
    return str(value.astimezone(UTC).replace(tzinfo=None))


def _local_day(value: datetime) -> date:
    return value.astimezone(clock.JST).date() if value.tzinfo else value.date()


def _check(fact: ExamFact, today: date) -> None:
    if not fact.atena_no or not fact.programme or not fact.method:
        raise ValueError("宛名番号・検診事業・検査方法は必須です")
    if fact.exam_date > today:
        raise ValueError(f"受診日が未来の日付です（{fact.exam_date}）")
    if fact.setting not in _SETTINGS:
        raise ValueError(f"検診方式は individual か group です（{fact.setting!r}）")
    if fact.smoking_index is not None and fact.smoking_index < 0:
        raise ValueError("喫煙指数は 0 以上です")
    if fact.follow_up_due is not None and fact.follow_up_due <= fact.exam_date:
        raise ValueError("追跡検査の時期は受診日より後です")
    if fact.hpv_follow_up and fact.method != rules.HPV_METHOD:
        raise ValueError("追跡検査は HPV検査単独法の検査だけです")
    for age in (fact.age_at_exam, fact.fy_end_age):
        if age is not None and not 0 <= age <= 150:
            raise ValueError(f"年齢が正しくありません（{age}）")
    if fact.billing_month is not None and fact.billing_month.day != 1:
        raise ValueError("請求月はその月の 1 日で表します")
    for name in ("voucher_no", "coupon_no", "place", "complication", "billing_category",
                 "recorded_by"):  # fmt: skip
        if not _fits(Exam, name, getattr(fact, name)):
            raise ValueError(f"{Exam._meta.get_field(name).verbose_name}が長すぎます")


def _outcome(fact: ExamFact) -> tuple[bool, date | None]:
    """要精検 and the 追跡検査 date: decided from the results by the rule record_exam uses."""
    if fact.results is None:
        if fact.follow_up is not None:
            raise ValueError("結果のない受診に精密検査の記録は付けられません")
        return False, fact.follow_up_due
    problems = programs.check_result(fact.method, fact.results, follow_up=fact.hpv_follow_up)
    if problems:
        raise ValueError("。".join(p.message for p in problems))
    seiken, due = rules.primary_outcome(
        fact.method, fact.exam_date, fact.results, follow_up=fact.hpv_follow_up
    )
    if fact.follow_up_due is not None and fact.follow_up_due != due:
        raise ValueError("追跡検査の時期が結果と合いません（トリアージ陰性の 1 年後です）")
    return seiken, due


def _check_follow_up(fact: ExamFact, spec: Any, today: date) -> None:
    """A case's facts fit the programme's 精検 and the exam's dates (the action's checks)."""
    follow_up = fact.follow_up
    assert follow_up is not None  # nosec B101 - called for rows with a follow_up only
    for name in ("form_issued_on", "form_returned_on", "survey_sent_on", "survey_answered_on"):
        day = getattr(follow_up, name)
        if day is not None and not fact.exam_date <= day <= today:
            label = FollowUpCase._meta.get_field(name).verbose_name
            raise ValueError(f"{label}は受診日から今日までの日付です（{day}）")
    for name in ("referral_to", "survey_answer", "tracing_result"):
        if not _fits(FollowUpCase, name, getattr(follow_up, name)):
            raise ValueError(f"{FollowUpCase._meta.get_field(name).verbose_name}が長すぎます")
    for report in follow_up.reports:
        if report.method and spec.method(report.method) is None:
            raise ValueError(f"精検法 {report.method!r} は{fact.programme}の精検にありません")
        if report.result and report.result not in spec.results:
            raise ValueError(f"精検結果 {report.result!r} は{fact.programme}の精検にありません")
        if report.exam_date is not None and not fact.exam_date <= report.exam_date <= today:
            raise ValueError(f"精検日が受診日より前か、未来の日付です（{report.exam_date}）")
        for name in ("institution", "pathology", "stage", "complication"):
            if not _fits(SeikenReportRecord, name, getattr(report, name)):
                label = SeikenReportRecord._meta.get_field(name).verbose_name
                raise ValueError(f"{label}が長すぎます")


def _row(fact: ExamFact, mc: str, today: date) -> _Row:
    _check(fact, today)
    seiken, due = _outcome(fact)
    fy = fiscal_year_of(fact.exam_date)
    spec = programs.seiken_of(fact.programme) if seiken else None
    case = None
    if spec is not None:
        if fact.follow_up is not None:
            _check_follow_up(fact, spec, today)
        assert fact.results is not None  # nosec B101 - 要精検 only from results
        key = (fact.atena_no, fact.method, fact.exam_date, fact.hpv_follow_up)
        case = _Case(key, fact, fy, rules.decisive_value(fact.method, fact.results))
    elif fact.follow_up is not None:
        raise ValueError("要精検でない受診（または精検を追わない検診）に精密検査の記録があります")
    values = (
        mc, fact.atena_no, fy, fact.programme, fact.method, fact.exam_date, fact.setting,
        fact.institution_code, fact.smoking_index, due,
        None if fact.results is None else json.dumps(dict(fact.results)),
        seiken, fact.hpv_follow_up, fact.voucher_no, fact.coupon_no, fact.place,
        fact.age_at_exam, fact.fy_end_age, fact.first_time, fact.complication,
        fact.billing_category, fact.billing_month, fact.recorded_by, _datetime(fact.recorded_at),
    )  # fmt: skip
    return _Row(values, case)


def _rows(facts: Iterable[ExamFact], mc: str, counts: _Counts) -> Iterator[_Row]:
    today = clock.today()
    for fact in facts:
        try:
            row = _row(fact, mc, today)
        except ValueError as exc:
            raise ValueError(f"{counts.exams + 1} 件目: {exc}") from None
        counts.exams += 1
        yield row


def _reports_in_order(follow_up: FollowUpFact, now: datetime) -> list[SeikenReportFact]:
    """In the order they were taken in, as a case's status is re-derived after each one."""
    return sorted(follow_up.reports, key=lambda r: r.recorded_at or now)


def derive_case(
    programme: str,
    primary_method: str,
    primary_result: str,
    fiscal_year: int,
    exam_date: date,
    follow_up: FollowUpFact,
    now: datetime,
) -> tuple[rules.SeikenOutcome, date]:
    """The case's status and result (``rules.seiken_status``), and the day that status began.

    The day: replaying the reports in the order they came, the one after which the status no
    longer changed (the day it was taken in); for a status known without a report (精検未受診
    by the person's answer), the survey's answer day; for 精検未把握, the exam's day — the
    case is open from the exam. The same as a case updated report by report would show.
    """
    ordered = _reports_in_order(follow_up, now)
    reports = [
        rules.SeikenReport(r.from_institution, r.exam_date, r.institution, r.method, r.result)
        for r in ordered
    ]

    def after(n: int) -> rules.SeikenOutcome:
        return rules.seiken_status(
            programme, primary_method, primary_result, fiscal_year, reports[:n],
            known_not_attended=follow_up.known_not_attended,
        )  # fmt: skip

    outcome = after(len(reports))
    if outcome.status is rules.SeikenStatus.UNKNOWN:
        return outcome, exam_date
    n = len(reports)
    while n > 0 and after(n - 1).status is outcome.status:
        n -= 1
    if n > 0:
        return outcome, _local_day(ordered[n - 1].recorded_at or now)
    known = follow_up.survey_answered_on or (
        _local_day(follow_up.updated_at) if follow_up.updated_at else exam_date
    )
    return outcome, known


def _latest_id(model: type[models.Model]) -> int:
    return model.objects.aggregate(m=Max("pk"))["m"] or 0


def _open_cases(cases: Sequence[_Case], exams_before: int, mc: str, actor: str) -> tuple[int, int]:
    """Insert the cases of a batch's 要精検 exams and their reports; return the counts."""
    ids: dict[tuple[str, str, date, bool], deque[int]] = defaultdict(deque)
    for pk, *key in (
        Exam.objects.filter(municipality_code=mc, pk__gt=exams_before, needs_seiken=True)
        .order_by("pk")
        .values_list("pk", "atena_no", "method", "exam_date", "hpv_follow_up")
    ):
        ids[tuple(key)].append(pk)  # type: ignore[index]
    now = clock.now()
    case_rows, reports_of = [], {}
    for case in cases:
        fact, follow_up = case.fact, case.fact.follow_up or FollowUpFact()
        exam_id = ids[case.key].popleft()
        outcome, since = derive_case(
            fact.programme, fact.method, case.primary_result, case.fiscal_year, fact.exam_date,
            follow_up, now,
        )  # fmt: skip
        ordered = _reports_in_order(follow_up, now)
        updated = follow_up.updated_at or (ordered[-1].recorded_at if ordered else None)
        by = fact.recorded_by or actor
        case_rows.append((
            mc, fact.atena_no, fact.programme, case.fiscal_year, exam_id, case.primary_result,
            follow_up.referral_to, follow_up.form_issued_on, follow_up.form_returned_on,
            follow_up.known_not_attended, follow_up.survey_sent_on, follow_up.survey_answered_on,
            follow_up.survey_answer, follow_up.tracing_result, outcome.status.value, since,
            outcome.result, 1, by, _datetime(updated or fact.recorded_at or now),
        ))  # fmt: skip
        reports_of[exam_id] = (ordered, by)
    cases_before = _latest_id(FollowUpCase)
    bulk_insert(FollowUpCase, _CASE_FIELDS, case_rows)
    case_ids = dict(
        FollowUpCase.objects.filter(municipality_code=mc, pk__gt=cases_before).values_list(
            "exam_id", "pk"
        )
    )
    report_rows = [
        _report_row(case_ids[exam_id], r, by, now)
        for exam_id, (ordered, by) in reports_of.items()
        for r in ordered
    ]
    if report_rows:
        bulk_insert(SeikenReportRecord, _REPORT_FIELDS, report_rows)
    return len(case_rows), len(report_rows)


def _report_row(case_id: int, r: SeikenReportFact, by: str, now: datetime) -> tuple[Any, ...]:
    return (
        case_id, r.from_institution, r.exam_date, r.institution, r.method, r.result, r.pathology,
        r.stage, r.early_cancer, r.complication, by, _datetime(r.recorded_at or now),
    )  # fmt: skip


def person_index_hint() -> str:
    """`` INDEXED BY`` the (団体, 宛名番号, 受診日) index on SQLite, nothing on PostgreSQL.

    Why: SQLite's planner, without statistics, looks for a person's exams through the
    (団体, 年度) index — every exam of the years asked for each row, minutes for a city's
    history; PostgreSQL finds the person's index by itself.
    """
    if connection.vendor != "sqlite":
        return ""
    name = next(
        i.name for i in Exam._meta.indexes if i.fields[:2] == ["municipality_code", "atena_no"]
    )
    return f" INDEXED BY {name}"


def _derive_first_time(mc: str, after: int) -> None:
    """初回 for the rows just written that did not say: no exam of the programme in the
    previous 3 fiscal years among all exams on record, as record_exam decides — one UPDATE.

    Raw SQL for one reason: SQLite's planner, without statistics, looks for the earlier exams
    through the (団体, 年度) index — every exam of three years for each row, minutes for a
    city's history — so it is told to use the person's index (``INDEXED BY``); PostgreSQL
    finds that by itself.
    """
    table = connection.ops.quote_name(Exam._meta.db_table)
    hint = person_index_hint()
    earlier = (
        f"SELECT 1 FROM {table} AS p{hint} WHERE p.municipality_code = {table}.municipality_code"  # noqa: S608  # nosec B608 - names from _meta
        f" AND p.atena_no = {table}.atena_no AND p.programme = {table}.programme"
        f" AND p.fiscal_year >= {table}.fiscal_year - %s AND p.fiscal_year < {table}.fiscal_year"
    )
    sql = (
        f"UPDATE {table} SET first_time = NOT EXISTS ({earlier}) "  # noqa: S608  # nosec B608
        "WHERE municipality_code = %s AND id > %s AND first_time IS NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [FIRST_TIME_YEARS, mc, after])


def record_exam_history(rows: Iterable[ExamFact], *, actor: Any = None, source: str = "") -> int:
    """Append past exams (and the 精検 cases of their 要精検) in batches, all or nothing;
    return how many exams were written.

    ``actor``: a request, a user, or a name for the system (``"demo"``, ``"migration"``).
    Not idempotent by itself (the same exam twice is two exams): callers bring a history once
    and check :func:`exam_count` first, as ``kenshin demo setup`` does. A bad row refuses the
    whole history with a message naming the row (``n 件目``).
    """
    mc = settings.MUNICIPALITY_CODE
    counts = _Counts()
    stream = _rows(rows, mc, counts)
    actor_name = audit.actor_of(actor).username
    with transaction.atomic():
        start = _latest_id(Exam)
        while batch := list(islice(stream, BATCH)):
            before = _latest_id(Exam)
            bulk_insert(Exam, _EXAM_FIELDS, [r.values for r in batch])
            cases = [r.case for r in batch if r.case is not None]
            if cases:
                opened, reported = _open_cases(cases, before, mc, actor_name)
                counts.cases += opened
                counts.reports += reported
        if counts.exams:
            _derive_first_time(mc, start)
            audit.record(
                audit.Event.IMPORT,
                actor,
                audit.Subject("exam_history", source[:100] or "bulk"),
                function="screening.exam_history",
                rows=counts.exams,
                cases=counts.cases,
                reports=counts.reports,
            )
    return counts.exams


def exam_outcome(
    method: str, exam_date: date, results: Mapping[str, str], *, follow_up: bool = False
) -> tuple[bool, date | None]:
    """要精検 and the HPV 追跡検査 date of a checked result (``rules.primary_outcome``): what
    a bulk writer decides per row before :func:`insert_exams_from` copies its rows in."""
    return rules.primary_outcome(method, exam_date, results, follow_up=follow_up)


# What the SELECT given to insert_exams_from returns, by name (the rest is supplied here).
_SUPPLIED = ("municipality_code", "first_time", "recorded_by", "recorded_at")
EXAM_COLUMNS: tuple[str, ...] = tuple(f for f in _EXAM_FIELDS if f not in _SUPPLIED)


def insert_exams_from(
    select_sql: str,
    params: Sequence[Any],
    *,
    fiscal_year: int,
    actor: Any,
    recorded_by: str,
    source: str,
) -> int:
    """Copy checked exams from another app's staging table in one ``INSERT … SELECT``; open the
    精検 case of each 要精検 among them, derive 初回, record one audit event; return how many.

    Why: a clinic's file of 300,000 rows was checked row by row when it was staged (the values
    against the vocabularies, 要精検 by :func:`exam_outcome`); reading it back into Python only
    to write it again cost most of the commit. ``select_sql`` returns the columns named in
    :data:`EXAM_COLUMNS`; the 団体コード, who and when are supplied here and 初回 is derived
    from the exams on record, as :func:`record_exam` derives it. Only rows of ``fiscal_year``
    are copied (an intake batch is one contract year; 初回 looks at the three years before).
    An exam already on record (same person, method, day, 追跡検査 or not) is skipped, so a
    commit racing another batch of the same rows writes them once. Runs in the caller's
    transaction (its own savepoint).
    """
    mc = settings.MUNICIPALITY_CODE
    table = connection.ops.quote_name(Exam._meta.db_table)
    columns = ", ".join(Exam._meta.get_field(f).column for f in _EXAM_FIELDS)
    hint = person_index_hint()
    # 初回 as the row goes in (an UPDATE afterwards rewrote every row: 5.8 s of 9.6 on
    # PostgreSQL at 300,000): the earlier years' exams are not touched by this insert. The
    # window is written as a range of days on the person's index (団体, 宛名番号, 受診日): as a
    # range of fiscal years, PostgreSQL without fresh statistics took the (団体, 年度) index
    # and read three years of a programme's exams for every row.
    first_time = (
        f"NOT EXISTS (SELECT 1 FROM {table} p{hint} WHERE p.municipality_code = %s "  # noqa: S608  # nosec B608 - names from _meta
        "AND p.atena_no = s.atena_no AND p.exam_date >= %s AND p.exam_date < %s "
        "AND p.programme = s.programme)"
    )
    supplied = {"municipality_code": "%s", "first_time": first_time, "recorded_by": "%s",
                "recorded_at": "%s"}  # fmt: skip
    values = ", ".join(supplied.get(f, f"s.{f}") for f in _EXAM_FIELDS)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {values} FROM ({select_sql}) s "  # noqa: S608  # nosec B608 - names from _meta; the SELECT is code
        f"WHERE s.fiscal_year = %s AND NOT EXISTS (SELECT 1 FROM {table} e{hint} "
        "WHERE e.municipality_code = %s "
        "AND e.atena_no = s.atena_no AND e.exam_date = s.exam_date AND e.method = s.method "
        "AND e.hpv_follow_up = s.hpv_follow_up)"
    )
    now = clock.now()
    window = (date(fiscal_year - FIRST_TIME_YEARS, 4, 1), date(fiscal_year, 4, 1))
    head = [mc, mc, *window, recorded_by[:150], _datetime(now)]  # 団体, 初回's, who, when
    with transaction.atomic():
        # Two commits of the same rows at once: the second waits, then sees the first's rows.
        serialise(f"kenshin.screening.exams.{mc}")
        with connection.cursor() as cursor:
            values = [*head, *params, fiscal_year, mc]
            if connection.vendor == "postgresql":
                # Only the count and the 要精検 ids leave the server (not a row per exam).
                cursor.execute(
                    f"WITH ins AS ({sql} RETURNING id, needs_seiken) "  # noqa: S608  # nosec B608 - the INSERT above
                    "SELECT count(*), array_agg(id) FILTER (WHERE needs_seiken) FROM ins",
                    values,
                )
                written, seiken_ids = cursor.fetchone()
                seiken_ids = seiken_ids or []
            else:
                cursor.execute(f"{sql} RETURNING id, needs_seiken", values)
                inserted = cursor.fetchall()
                written, seiken_ids = len(inserted), [pk for pk, seiken in inserted if seiken]
        cases = 0
        if written:
            cases = _open_new_cases(mc, seiken_ids, recorded_by)
            audit.record(
                audit.Event.IMPORT,
                actor,
                audit.Subject("exam_history", source[:100] or "bulk"),
                function="screening.exam_history",
                rows=written,
                cases=cases,
                reports=0,
            )
    return written


def _open_new_cases(mc: str, exam_ids: Sequence[int], actor: str) -> int:
    """The case of each of these 要精検 exams (just inserted) whose programme's 精検 is
    tracked — status 未把握 from the exam's day, as :func:`record_exam` opens it."""
    now = clock.now()
    rows = []
    # One query, the ids as one parameter (core.bulk.in_list): Django's pk__in built 5,000
    # parameters for the 要精検 of a large file. The ids alone in the WHERE: with the 団体コード
    # beside them, PostgreSQL (statistics not yet updated for the rows just inserted) walked
    # the (団体, 年度) index and tested every exam against the 5,000 ids — 6 s. The ids are
    # those this insert returned; the 団体コード is checked here all the same.
    clause, params = in_list("id", list(exam_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, atena_no, programme, fiscal_year, method, results, "  # noqa: S608  # nosec B608 - names from _meta
            f"CAST(exam_date AS TEXT), municipality_code FROM {Exam._meta.db_table} "
            f"WHERE {clause}",
            params,
        )
        found = [row[:-1] for row in cursor.fetchall() if row[-1] == mc]
    for pk, atena, programme, fy, method, results, day in found:
        if isinstance(results, str):
            results = json.loads(results)
        day = date.fromisoformat(day)
        if programs.seiken_of(programme) is None:
            continue
        rows.append((
            mc, atena, programme, fy, pk, rules.decisive_value(method, results or {}), "", None,
            None, False, None, None, "", "", rules.SeikenStatus.UNKNOWN.value, day, "", 1,
            actor, _datetime(now),
        ))  # fmt: skip
    if rows:
        bulk_insert(FollowUpCase, _CASE_FIELDS, rows)
    return len(rows)


def exam_count(fiscal_years: Iterable[int] | None = None) -> int:
    """How many exams the city has, in the given fiscal years (all years when None)."""
    qs = Exam.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)
    if fiscal_years is not None:
        qs = qs.filter(fiscal_year__in=list(fiscal_years))
    return qs.count()
