"""Access review (LOG-06, LOG-07): who looked at a person, and the anomaly reports.

Why these reports: the incidents the security assessment cites were staff browsing records at
night, opening dozens of neighbours in an hour, reading without a reason, and looking up
relatives or famous people. Each report is a few aggregate queries over the audit table — the
log grows by millions of rows a year and is never walked row by row here. Times are stored in
UTC; office hours, weekdays and holidays are judged in Asia/Tokyo inside the SQL
(``tzinfo=JST`` on the date functions), on both databases.

The calendar rules (office hours, public holidays, 年末年始) are pure functions at the top so
they can be tested without a database and reused to label each listed row.

Two kinds of event concern one resident: opening the record (Event.VIEW) and being shown in a
list — search results or a household list — (Event.SEARCH with the resident as subject, a
"listing event"). Both are in a person's access history and in the flagged-records report; only
openings count towards bursts (see ``bursts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import jpholiday
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import (
    ExtractHour,
    ExtractIsoWeekDay,
    ExtractMinute,
    TruncDate,
    TruncHour,
)
from django.utils import timezone

from kenshin.accounts import services as accounts
from kenshin.audit.models import AuditEvent, ReviewStatus, ReviewTask
from kenshin.core import audit, clock
from kenshin.core.clock import JST
from kenshin.core.purposes import Purpose
from kenshin.core.purposes import label as purpose_label
from kenshin.residents import services as residents

FUNCTION = "audit.review"
DEFAULT_DAYS = 30
DEFAULT_BURST_THRESHOLD = 30
ROW_LIMIT = 1000
HISTORY_LIMIT = 2000

# Events in which a signed-in person touched the system or personal data; failed logins and
# lockouts are attacks rather than use and belong to another report.
ACCESS_EVENTS: tuple[str, ...] = (
    audit.Event.LOGIN,
    audit.Event.SEARCH,
    audit.Event.VIEW,
    audit.Event.CREATE,
    audit.Event.UPDATE,
    audit.Event.DELETE,
    audit.Event.PRINT,
    audit.Event.EXPORT,
    audit.Event.IMPORT,
)
# Flags whose every view is reported (ResidentFlag kinds).
REVIEWED_FLAGS: tuple[str, ...] = tuple(residents.FLAG_KINDS)  # every kind is reviewed

_EVENT_LABELS = dict(audit.Event.choices)
_RESULT_LABELS = dict(audit.Result.choices)


# --------------------------------------------------------------------------------------------
# Calendar rules (pure)


@dataclass(frozen=True)
class Period:
    """A range of Japanese calendar days, both ends included."""

    start: date
    end: date

    def bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00 JST, the day after end 00:00 JST) — compared with the UTC column."""
        return (
            datetime.combine(self.start, time.min, JST),
            datetime.combine(self.end + timedelta(days=1), time.min, JST),
        )


def default_period(today: date | None = None, days: int = DEFAULT_DAYS) -> Period:
    """The last ``days`` days up to and including today (Japan)."""
    end = today or clock.today()
    return Period(end - timedelta(days=days - 1), end)


def parse_office_hours(hours: tuple[str, str] | None = None) -> tuple[time, time]:
    """settings.OFFICE_HOURS ("08:00", "18:30") as times; opening inclusive, closing exclusive."""
    opening, closing = hours or settings.OFFICE_HOURS
    return time.fromisoformat(opening), time.fromisoformat(closing)


def closed_days(start: date, end: date) -> dict[date, str]:
    """Public holidays (jpholiday) and 年末年始 (12/29–1/3) between start and end, with names.

    Why 年末年始 explicitly: the office is closed by 条例 on those days, but only 1/1 is a
    national holiday.
    """
    days: dict[date, str] = {}
    day = start
    while day <= end:
        if (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3):
            days[day] = "年末年始"
        day += timedelta(days=1)
    for day, name in jpholiday.between(start, end):
        days[day] = name
    return days


def off_hours_reason(local: datetime, hours: tuple[time, time], closed: dict[date, str]) -> str:
    """Why a moment (Tokyo time) is outside office hours, in Japanese, or "" if it is inside."""
    local = local.astimezone(JST)
    day = local.date()
    if day in closed:
        return closed[day] if closed[day] == "年末年始" else f"祝日（{closed[day]}）"
    if local.isoweekday() == 6:
        return "土曜日"
    if local.isoweekday() == 7:
        return "日曜日"
    opening, closing = hours
    if local.timetz().replace(tzinfo=None) < opening:
        return "始業前"
    if local.timetz().replace(tzinfo=None) >= closing:
        return "終業後"
    return ""


# --------------------------------------------------------------------------------------------
# Rows and reports


@dataclass(frozen=True)
class EventRow:
    """One audit event as the review screens show it."""

    seq: int
    at: datetime  # Tokyo time
    event: str
    event_label: str
    user_id: int | None
    username: str
    roles: str
    address: str
    break_glass: bool
    function: str
    subject_kind: str
    subject_ref: str
    purpose: str
    purpose_label: str
    result: str
    result_label: str
    reason: str = ""


@dataclass(frozen=True)
class BurstRow:
    """One user opening many distinct residents within one clock hour."""

    user_id: int
    username: str
    hour: datetime  # start of the clock hour, Tokyo time
    distinct_residents: int


@dataclass
class Report:
    """One anomaly report: how many, by whom, and the first ``ROW_LIMIT`` rows."""

    key: str
    title: str
    description: str
    count: int
    rows: list = field(default_factory=list)
    by_user: list[tuple[str, int]] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.count > len(self.rows)


_ROW_FIELDS = (
    "seq", "at", "event", "user_id", "username", "roles", "address", "break_glass", "function",
    "subject_kind", "subject_ref", "purpose", "result",
)  # fmt: skip


LISTING_LABEL = "一覧表示"


def _is_listing(v: dict) -> bool:
    return v["event"] == audit.Event.SEARCH and v["subject_kind"] == "resident"


def _row(v: dict, reason: str = "") -> EventRow:
    return EventRow(
        seq=v["seq"],
        at=timezone.localtime(v["at"], JST),
        event=v["event"],
        event_label=LISTING_LABEL if _is_listing(v) else _EVENT_LABELS.get(v["event"], v["event"]),
        user_id=v["user_id"],
        username=v["username"],
        roles=v["roles"],
        address=v["address"],
        break_glass=v["break_glass"],
        function=v["function"],
        subject_kind=v["subject_kind"],
        subject_ref=v["subject_ref"],
        purpose=v["purpose"],
        purpose_label=purpose_label(v["purpose"]) if v["purpose"] else "",
        result=v["result"],
        result_label=_RESULT_LABELS.get(v["result"], v["result"]),
        reason=reason,
    )


def _in_period(period: Period) -> QuerySet:
    start, end = period.bounds()
    return AuditEvent.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, at__gte=start, at__lt=end
    )


def _resident_views(period: Period) -> QuerySet:
    """Openings of a resident's record."""
    return _in_period(period).filter(event=audit.Event.VIEW, subject_kind="resident")


def _resident_seen(period: Period) -> QuerySet:
    """Openings and listing events: every time a resident's data was on someone's screen."""
    return _in_period(period).filter(
        event__in=(audit.Event.VIEW, audit.Event.SEARCH), subject_kind="resident"
    )


def _by_user(qs: QuerySet) -> list[tuple[str, int]]:
    """Events per user, most first. Staff are hundreds, so the whole list is small; the
    report's total is its sum (one aggregate pass instead of a second COUNT)."""
    rows = qs.values("user_id").annotate(n=Count("seq"), name=Max("username")).order_by("-n")
    return [(r["name"], r["n"]) for r in rows]


def access_history(atena_no: str, *, limit: int = HISTORY_LIMIT) -> tuple[list[EventRow], int]:
    """Every event whose subject is this resident, newest first (and the total count):
    openings, listings in search results and household lists, changes, flags.

    The (subject_kind, subject_ref, at) index answers this directly.
    """
    qs = AuditEvent.objects.filter(subject_kind="resident", subject_ref=atena_no.strip())
    total = qs.count()
    rows = [_row(v) for v in qs.order_by("-at", "-seq").values(*_ROW_FIELDS)[:limit]]
    return rows, total


def off_hours(
    period: Period, *, hours: tuple[time, time] | None = None, limit: int = ROW_LIMIT
) -> Report:
    """Access by staff outside office hours, on weekends, public holidays and 年末年始."""
    opening, closing = hours or parse_office_hours()
    closed = closed_days(period.start, period.end)
    # Judged in Tokyo time inside the SQL (AT TIME ZONE on PostgreSQL): one pass over the
    # period's rows, ~2 s per million on PostgreSQL, whatever the length of the period.
    qs = (
        _in_period(period)
        .filter(event__in=ACCESS_EVENTS, user_id__isnull=False)
        # A search at night is one finding, shown by its summary event; its up to 50 listing
        # events would only bury the other rows (they remain in each person's history).
        .exclude(event=audit.Event.SEARCH, subject_kind="resident")
        .annotate(
            l_date=TruncDate("at", tzinfo=JST),
            l_weekday=ExtractIsoWeekDay("at", tzinfo=JST),
            l_hour=ExtractHour("at", tzinfo=JST),
            l_minute=ExtractMinute("at", tzinfo=JST),
        )
        .filter(
            Q(l_weekday__gte=6)
            | Q(l_date__in=list(closed))
            | Q(l_hour__lt=opening.hour)
            | Q(l_hour=opening.hour, l_minute__lt=opening.minute)
            | Q(l_hour__gt=closing.hour)
            | Q(l_hour=closing.hour, l_minute__gte=closing.minute)
        )
    )
    by_user = _by_user(qs)
    rows = []
    for v in qs.order_by("at", "seq").values(*_ROW_FIELDS)[:limit]:
        at = timezone.localtime(v["at"], JST)
        rows.append(_row(v, off_hours_reason(at, (opening, closing), closed)))
    return Report(
        key="off_hours",
        title="業務時間外のアクセス",
        description=(
            f"平日 {opening:%H:%M}〜{closing:%H:%M} 以外、土日、祝日、年末年始（12/29〜1/3）の"
            "ログイン・検索・閲覧・登録・出力など。"
        ),
        count=sum(n for _, n in by_user),
        rows=rows,
        by_user=by_user,
    )


def bursts(
    period: Period, *, threshold: int = DEFAULT_BURST_THRESHOLD, limit: int = ROW_LIMIT
) -> Report:
    """Users who opened ``threshold`` or more distinct residents within one clock hour.

    Openings (Event.VIEW) only, not listing events: one search lists up to 50 people and one
    household list a whole family, so counting listings would make every few searches a "burst"
    and hide the pattern the report is for — someone opening record after record.
    """
    qs = (
        _resident_views(period)
        .filter(user_id__isnull=False)
        .annotate(hour=TruncHour("at", tzinfo=JST))
        .values("user_id", "hour")
        .annotate(n=Count("subject_ref", distinct=True), name=Max("username"))
        .filter(n__gte=threshold)
    )
    found = [
        BurstRow(r["user_id"], r["name"], timezone.localtime(r["hour"], JST), r["n"])
        for r in qs.order_by("-n", "hour", "user_id")[:limit]
    ]
    per_user: dict[str, int] = {}
    for b in found:
        per_user[b.username] = per_user.get(b.username, 0) + 1
    return Report(
        key="bursts",
        title="短時間に多数の住民を閲覧",
        description=(
            f"1時間（毎時0分〜59分）のうちに {threshold} 人以上の異なる住民の記録を開いた利用者。"
        ),
        # The grouped query is the expensive one: count it again only if the list was cut.
        count=len(found) if len(found) < limit else qs.count(),
        rows=found,
        by_user=sorted(per_user.items(), key=lambda kv: -kv[1]),
    )


def views_without_purpose(period: Period, *, limit: int = ROW_LIMIT) -> Report:
    """Views of a resident recorded without a purpose code (ACL-04 says this must not happen)."""
    qs = _resident_views(period).filter(purpose="")
    by_user = _by_user(qs)
    return Report(
        key="no_purpose",
        title="利用目的のない閲覧",
        description="利用目的が記録されていない住民記録の閲覧。画面からは起きないはずの操作です。",
        count=sum(n for _, n in by_user),
        rows=[
            _row(v, "利用目的なし") for v in qs.order_by("at", "seq").values(*_ROW_FIELDS)[:limit]
        ],
        by_user=by_user,
    )


def flagged_views(period: Period, *, limit: int = ROW_LIMIT) -> Report:
    """Views and listings of flagged records: DV等支援措置 / 要配慮 in force that day, and
    staff's own record or own household.

    Listing events count: a list shows name, birth date and address, so a DV-protected person
    shown in search results (a 世帯番号 search, say) is as much a finding as an opening.

    Two indexed queries narrowed by IN lists (flagged people; staff and their households),
    then a check of each matching row's date against the flag period — the matching rows are
    few, the table is not walked.
    """
    periods = residents.flag_periods(REVIEWED_FLAGS, period.start, period.end)
    by_person: dict[str, list[residents.FlagInfo]] = {}
    for f in periods:
        by_person.setdefault(f.atena_no, []).append(f)
    found: dict[int, EventRow] = {}
    reasons: dict[int, list[str]] = {}
    values: dict[int, dict] = {}

    if by_person:
        qs = _resident_seen(period).filter(subject_ref__in=list(by_person))
        for v in qs.values(*_ROW_FIELDS).iterator(chunk_size=2000):
            day = timezone.localtime(v["at"], JST).date()
            labels = [
                f"閲覧注意：{f.kind_label}"
                for f in by_person[v["subject_ref"]]
                if f.valid_from <= day and (f.valid_to is None or day <= f.valid_to)
            ]
            if labels:
                values[v["seq"]] = v
                reasons.setdefault(v["seq"], []).extend(dict.fromkeys(labels))

    own = accounts.staff_own_atena_nos()
    households = residents.households_of(own.values())
    household_of_user = {uid: households.get(atena_no, {atena_no}) for uid, atena_no in own.items()}
    if household_of_user:
        everyone = set().union(*household_of_user.values())
        qs = _resident_seen(period).filter(
            user_id__in=list(household_of_user), subject_ref__in=list(everyone)
        )
        for v in qs.values(*_ROW_FIELDS).iterator(chunk_size=2000):
            uid, ref = v["user_id"], v["subject_ref"]
            if ref == own[uid]:
                label = "職員本人の記録"
            elif ref in household_of_user[uid]:
                label = "職員と同一世帯"
            else:
                continue
            values[v["seq"]] = v
            reasons.setdefault(v["seq"], []).append(label)

    for seq in sorted(values, key=lambda s: (values[s]["at"], s)):
        found[seq] = _row(values[seq], "・".join(reasons[seq]))
    rows = list(found.values())
    per_user: dict[str, int] = {}
    for r in rows:
        per_user[r.username] = per_user.get(r.username, 0) + 1
    return Report(
        key="flagged",
        title="閲覧注意の記録の閲覧",
        description=(
            "DV等支援措置・要配慮の住民（閲覧日に有効なもの）の閲覧・一覧表示（検索結果や世帯の一覧に"
            "表示されたこと）と、職員本人・同一世帯の記録の閲覧・一覧表示。"
        ),
        count=len(rows),
        rows=rows[:limit],
        by_user=sorted(per_user.items(), key=lambda kv: -kv[1]),
    )


def anomalies(
    period: Period,
    *,
    threshold: int = DEFAULT_BURST_THRESHOLD,
    hours: tuple[time, time] | None = None,
    limit: int = ROW_LIMIT,
) -> list[Report]:
    """All anomaly reports for one period, in the order the screen shows them."""
    return [
        off_hours(period, hours=hours, limit=limit),
        bursts(period, threshold=threshold, limit=limit),
        views_without_purpose(period, limit=limit),
        flagged_views(period, limit=limit),
    ]


# --------------------------------------------------------------------------------------------
# Review tasks


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    kind: str
    subject_kind: str
    subject_ref: str
    reason: str
    created_at: datetime
    status: str
    status_label: str
    closed_at: datetime | None
    closed_by: str
    note: str


_STATUS_LABELS = dict(ReviewStatus.choices)
TASK_KINDS = {
    "break_glass": "緊急アクセスの利用",
    "privileged_grant": "管理者権限の付与",
    "anomaly": "異常の検知",
}
_SUBJECT_KINDS = {"user": "利用者", "resident": "宛名番号"}


def review_tasks(status: str = ReviewStatus.OPEN, *, limit: int = ROW_LIMIT) -> list[TaskRow]:
    """Open tasks oldest first (they wait longest); closed ones newest first."""
    qs = ReviewTask.objects.filter(status=status)
    qs = (
        qs.order_by("created_at", "pk")
        if status == ReviewStatus.OPEN
        else qs.order_by("-closed_at", "-pk")
    )
    tasks = list(qs[:limit])
    user_refs = {
        int(t.subject_ref) for t in tasks if t.subject_kind == "user" and t.subject_ref.isdigit()
    }
    names = accounts.usernames_of({t.closed_by_id for t in tasks if t.closed_by_id} | user_refs)
    return [
        TaskRow(
            task_id=t.pk,
            kind=TASK_KINDS.get(t.kind, t.kind),
            subject_kind=_SUBJECT_KINDS.get(t.subject_kind, t.subject_kind),
            subject_ref=(
                names.get(int(t.subject_ref), t.subject_ref)
                if t.subject_kind == "user" and t.subject_ref.isdigit()
                else t.subject_ref
            ),
            reason=t.reason,
            created_at=timezone.localtime(t.created_at, JST),
            status=t.status,
            status_label=_STATUS_LABELS.get(t.status, t.status),
            closed_at=timezone.localtime(t.closed_at, JST) if t.closed_at else None,
            closed_by=names.get(t.closed_by_id or 0, ""),
            note=t.note,
        )
        for t in tasks
    ]


def open_task_count() -> int:
    return ReviewTask.objects.filter(status=ReviewStatus.OPEN).count()


class TaskNotOpen(ValueError):
    """The task does not exist or was already closed."""


class OwnTask(ValueError):
    """The reviewer is the person the task is about, or the one who raised it."""


def _own_task_reason(task: ReviewTask, user_id: int | None) -> str:
    """Why this user may not close this task ("" if they may).

    Why: a review is a second person's look. The holder of a break-glass grant closing the
    task about their own emergency access, or the approver closing the task their approval
    raised, would mark their own work as checked.
    """
    if user_id is None:
        return ""
    if task.subject_kind == "user" and task.subject_ref == str(user_id):
        return "ご自身が対象の点検タスクは確認できません。別の課長・監査担当者が確認してください。"
    if task.created_by_id == user_id:
        return (
            "ご自身の操作で作成された点検タスクは確認できません。"
            "別の課長・監査担当者が確認してください。"
        )
    return ""


def close_task(actor: object, task_id: int, note: str) -> None:
    """Close a review task with the reviewer's finding; audited in the same transaction.

    The note is the reviewer's conclusion ("業務上の必要を確認" …); it must not quote the record.
    Refused (OwnTask, nothing changed) for the person the task is about and for its creator.
    """
    note = audit.neutralise(note.strip())
    if not note:
        raise ValueError("確認結果を入力してください")
    who = audit.actor_of(actor)
    with transaction.atomic():
        # Locked (PostgreSQL) so the check and the close see the same task.
        task = (
            ReviewTask.objects.select_for_update()
            .filter(pk=task_id, status=ReviewStatus.OPEN)
            .first()
        )
        if task is None:
            raise TaskNotOpen("この点検タスクは見つからないか、すでに確認済みです")
        refused = _own_task_reason(task, who.user_id)
        if refused:
            raise OwnTask(refused)
        updated = ReviewTask.objects.filter(pk=task_id, status=ReviewStatus.OPEN).update(
            status=ReviewStatus.CLOSED, closed_by_id=who.user_id, closed_at=clock.now(), note=note
        )
        if not updated:
            raise TaskNotOpen("この点検タスクは見つからないか、すでに確認済みです")
        audit.record(
            audit.Event.UPDATE,
            actor,
            audit.Subject("review_task", str(task_id)),
            Purpose.AUDIT,
            function=FUNCTION,
            action="close",
        )
