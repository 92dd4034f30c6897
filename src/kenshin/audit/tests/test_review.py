"""The access review finds every planted bad pattern in a seeded log, and nothing innocent
(LOG-06, LOG-07; issue 3 acceptance: "the anomaly report finds 100% of the planted bad
patterns in a seeded log")."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kenshin.audit import queries, review
from kenshin.audit.models import AuditEvent, ReviewStatus, ReviewTask
from kenshin.core import audit, clock
from kenshin.core.clock import JST
from kenshin.residents.actions import import_feed_file
from kenshin.residents.models import ResidentFlag
from kenshin.residents.rules import RESIDENT_HEADER

pytestmark = pytest.mark.django_db

PERIOD = review.Period(date(2026, 11, 1), date(2027, 1, 5))
HOURS = (time(8, 0), time(18, 30))


def jst(y: int, m: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=JST)


# --------------------------------------------------------------------------------------------
# Calendar rules (pure)


def test_closed_days_are_public_holidays_and_the_new_year_break():
    days = review.closed_days(date(2026, 11, 1), date(2027, 1, 5))
    assert days[date(2026, 11, 3)] == "文化の日"
    assert days[date(2026, 11, 23)] == "勤労感謝の日"
    assert [d for d, name in days.items() if name == "年末年始"] == [
        date(2026, 12, 29),
        date(2026, 12, 30),
        date(2026, 12, 31),
        date(2027, 1, 2),
        date(2027, 1, 3),
    ]
    assert days[date(2027, 1, 1)] == "元日"
    assert date(2027, 1, 4) not in days and date(2026, 12, 28) not in days


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (jst(2026, 11, 10, 7, 59), "始業前"),
        (jst(2026, 11, 10, 8, 0), ""),
        (jst(2026, 11, 10, 18, 29), ""),
        (jst(2026, 11, 10, 18, 30), "終業後"),
        (jst(2026, 11, 10, 22, 0), "終業後"),
        (jst(2026, 11, 7, 10, 0), "土曜日"),
        (jst(2026, 11, 8, 10, 0), "日曜日"),
        (jst(2026, 11, 3, 10, 0), "祝日（文化の日）"),
        (jst(2026, 12, 30, 10, 0), "年末年始"),
        # 08:30 on Monday in Tokyo is 23:30 on Sunday in UTC: judged in Tokyo, it is inside.
        (datetime(2026, 11, 8, 23, 30, tzinfo=UTC), ""),
    ],
)
def test_off_hours_reason(when, reason):
    closed = review.closed_days(date(2026, 11, 1), date(2027, 1, 5))
    assert review.off_hours_reason(when, HOURS, closed) == reason


def test_office_hours_come_from_settings(settings):
    settings.OFFICE_HOURS = ("08:30", "17:15")
    assert review.parse_office_hours() == (time(8, 30), time(17, 15))


def test_default_period_is_the_last_30_days_including_today():
    with clock.frozen(date(2026, 11, 26)):
        assert review.default_period() == review.Period(date(2026, 10, 28), date(2026, 11, 26))


# --------------------------------------------------------------------------------------------
# The seeded log


@dataclass
class Seeded:
    off_hours: set[int] = field(default_factory=set)
    bursts: set[tuple[int, datetime]] = field(default_factory=set)
    no_purpose: set[int] = field(default_factory=set)
    flagged: dict[int, str] = field(default_factory=dict)
    innocent: set[int] = field(default_factory=set)
    users: dict[str, audit.Actor] = field(default_factory=dict)


def _put(when: datetime, actor, event=audit.Event.VIEW, subject="", purpose="inquiry") -> int:
    with clock.frozen(when):
        audit.record(event, actor, subject or None, purpose, function="residents.view")
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()


def _listed(when: datetime, actor, subject: str, function: str = "residents.search") -> int:
    """A listing event: the resident was shown in search results or a household list."""
    with clock.frozen(when):
        audit.record(
            audit.Event.SEARCH, actor, audit.Subject.resident(subject), "inquiry",
            function=function, listed=True,
        )  # fmt: skip
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()


def _import_households(tmp_path) -> None:
    base = {
        "異動区分": "00", "異動日": "2024-04-01", "届出日": "2024-04-01", "氏名": "試験　太郎",
        "氏名カナ": "シケン　タロウ", "性別": "1", "生年月日": "1985-04-01", "郵便番号": "7370051",
        "住所": "広島県呉市中央四丁目1番6号", "世帯主氏名": "試験　太郎", "住民状態": "1",
    }  # fmt: skip
    rows = [
        {**base, "宛名番号": "4000000001", "世帯番号": "4100000001", "続柄": "世帯主"},
        {**base, "宛名番号": "4000000002", "世帯番号": "4100000001", "続柄": "妻"},
        {**base, "宛名番号": "4000000003", "世帯番号": "4100000003", "続柄": "世帯主"},
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(RESIDENT_HEADER)
    for row in rows:
        writer.writerow([row.get(c, "") for c in RESIDENT_HEADER])
    path = tmp_path / "households.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    with clock.frozen(date(2026, 10, 1)):
        assert import_feed_file(path, actor="test").ok


def _flag(atena_no: str, kind: str, start: date, end: date | None = None) -> None:
    from django.conf import settings

    ResidentFlag.objects.create(
        municipality_code=settings.MUNICIPALITY_CODE,
        atena_no=atena_no,
        kind=kind,
        valid_from=start,
        valid_to=end,
    )


@pytest.fixture
def seeded(make_user, tmp_path) -> Seeded:
    """A log with every bad pattern planted once or more, among innocent everyday work."""
    with clock.frozen(jst(2026, 11, 2, 10, 0)):  # whatever setting up records, in hours
        return _seed(make_user, tmp_path)


def _seed(make_user, tmp_path) -> Seeded:
    s = Seeded()
    names = ("daytime1", "daytime2", "night1", "burst1", "burst2", "busy1", "careless1", "own1")
    for name in names:
        user = make_user(name, roles=["hokenshi"], totp=False, own_atena_no="")
        s.users[name] = audit.Actor(user.pk, name, "保健師", "10.0.0.9")
    own = make_user("own_staff", roles=["jimu"], totp=False, own_atena_no="4000000001")
    s.users["own_staff"] = own_actor = audit.Actor(own.pk, "own_staff", "事務", "10.0.0.7")
    _import_households(tmp_path)
    _flag("3000000001", "dv", date(2026, 11, 5))
    _flag("3000000002", "vip", date(2026, 10, 1), date(2026, 11, 6))
    u = s.users

    # Innocent background: weekday office hours, with a purpose, many users and residents.
    n = 0
    for day in (2, 4, 5, 6, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 24, 25, 26, 27):
        for hour in (8, 9, 11, 13, 15, 17):
            for who in ("daytime1", "daytime2"):
                n += 1
                s.innocent.add(_put(jst(2026, 11, day, hour, 5 + n % 50), u[who],
                                    subject=f"50000{n:05d}", purpose="voucher"))  # fmt: skip
        s.innocent.add(_put(jst(2026, 11, day, 9, 0), u["daytime1"], audit.Event.SEARCH))
        s.innocent.add(_put(jst(2026, 11, day, 18, 29), u["daytime2"], audit.Event.LOGIN))
    # Monday 08:30 in Tokyo is Sunday 23:30 UTC: inside office hours.
    s.innocent.add(_put(jst(2026, 11, 9, 8, 30), u["daytime1"], subject="5000099999"))
    # The system's nightly feed, failed logins at night: not staff access.
    s.innocent.add(_put(jst(2026, 11, 10, 2, 0), audit.Actor.system("feed"), audit.Event.IMPORT))
    s.innocent.add(_put(jst(2026, 11, 10, 23, 0), None, audit.Event.LOGIN_FAILED, purpose=""))
    # Just outside the period.
    s.innocent.add(_put(jst(2026, 10, 31, 23, 0), u["night1"], subject="5100000001"))
    s.innocent.add(_put(jst(2027, 1, 6, 0, 30), u["night1"], subject="5100000002"))
    # 29 distinct residents in one hour, and one resident 40 times: below the threshold.
    for i in range(29):
        s.innocent.add(_put(jst(2026, 11, 12, 10, i), u["busy1"], subject=f"52000000{i:02d}"))
    for i in range(40):
        s.innocent.add(_put(jst(2026, 11, 12, 11, i), u["busy1"], subject="5200000099"))
    # 40 distinct residents over two clock hours (20 + 20): no single hour reaches 30.
    for i in range(40):
        s.innocent.add(_put(jst(2026, 11, 13, 13 + i // 20, 30 + i % 20), u["busy1"],
                            subject=f"53000000{i:02d}"))  # fmt: skip
    # A report viewed without purpose is not a resident view.
    s.innocent.add(_put(jst(2026, 11, 16, 10, 0), u["careless1"], purpose="",
                        subject=audit.Subject("audit_report", "anomalies")))  # fmt: skip
    # Flagged people outside their flag's period; others' household; own staff's other views.
    s.innocent.add(_put(jst(2026, 11, 4, 10, 0), u["daytime1"], subject="3000000001"))
    s.innocent.add(_put(jst(2026, 11, 9, 10, 0), u["daytime1"], subject="3000000002"))
    s.innocent.add(_put(jst(2026, 11, 10, 10, 0), u["daytime2"], subject="4000000002"))
    s.innocent.add(_put(jst(2026, 11, 10, 10, 5), own_actor, subject="4000000003"))
    s.innocent.add(_put(jst(2026, 11, 10, 10, 6), own_actor, audit.Event.SEARCH))
    # Listing events of unflagged people, in office hours.
    for i in range(5):
        s.innocent.add(_listed(jst(2026, 11, 11, 10, 0), u["daytime1"], f"540000000{i}"))

    # Planted: outside office hours (a weekday at 22:00, before opening, at closing time,
    # just after midnight, a Sunday, public holidays, 年末年始, a login at night).
    for i in range(3):
        s.off_hours.add(_put(jst(2026, 11, 10, 22, i), u["night1"], subject=f"600000000{i}"))
    s.off_hours.add(_put(jst(2026, 11, 11, 7, 59), u["night1"], subject="6000000010"))
    s.off_hours.add(_put(jst(2026, 11, 11, 18, 30), u["night1"], subject="6000000011"))
    s.off_hours.add(_put(jst(2026, 11, 12, 0, 30), u["night1"], subject="6000000012"))
    s.off_hours.add(_put(jst(2026, 11, 1, 0, 30), u["night1"], subject="6000000013"))  # Sunday
    for i in range(2):
        s.off_hours.add(_put(jst(2026, 11, 8, 10, i), u["night1"], subject=f"600000002{i}"))
        s.off_hours.add(_put(jst(2026, 11, 3, 11, i), u["night1"], subject=f"600000003{i}"))
        s.off_hours.add(_put(jst(2026, 11, 23, 14, i), u["night1"], subject=f"600000004{i}"))
    s.off_hours.add(_put(jst(2026, 12, 30, 10, 0), u["night1"], subject="6000000050"))
    s.off_hours.add(_put(jst(2027, 1, 2, 10, 0), u["night1"], subject="6000000051"))
    s.off_hours.add(_put(jst(2026, 11, 14, 9, 0), u["night1"], audit.Event.LOGIN))  # Saturday
    s.off_hours.add(_put(jst(2026, 11, 19, 21, 0), u["night1"], audit.Event.EXPORT))

    # Planted: 40 distinct residents within one clock hour; exactly 30 (the threshold).
    for i in range(40):
        s.innocent.add(_put(jst(2026, 11, 18, 14, i), u["burst1"], subject=f"70000000{i:02d}"))
    s.bursts.add((u["burst1"].user_id, jst(2026, 11, 18, 14)))
    for i in range(30):
        s.innocent.add(_put(jst(2026, 11, 19, 9, i), u["burst2"], subject=f"71000000{i:02d}"))
    s.bursts.add((u["burst2"].user_id, jst(2026, 11, 19, 9)))

    # Planted: views without a purpose.
    for i in range(3):
        s.no_purpose.add(_put(jst(2026, 11, 17, 10, i), u["careless1"], purpose="",
                              subject=f"800000000{i}"))  # fmt: skip

    # Planted: views of flagged records (DV in force; VIP on its last day; own; own household).
    s.flagged[_put(jst(2026, 11, 10, 10, 0), u["daytime1"], subject="3000000001")] = "DV等支援措置"
    s.flagged[_put(jst(2026, 12, 1, 10, 0), u["daytime2"], subject="3000000001")] = "DV等支援措置"
    s.flagged[_put(jst(2026, 11, 6, 10, 0), u["daytime2"], subject="3000000002")] = "要配慮"
    s.flagged[_put(jst(2026, 11, 10, 10, 1), own_actor, subject="4000000001")] = "職員本人"
    s.flagged[_put(jst(2026, 11, 10, 10, 2), own_actor, subject="4000000002")] = "同一世帯"
    # Planted: flagged people shown in a list (search results; a household list).
    s.flagged[_listed(jst(2026, 11, 20, 10, 0), u["daytime1"], "3000000001")] = "DV等支援措置"
    s.flagged[_listed(jst(2026, 11, 20, 10, 5), own_actor, "4000000002", "residents.view")] = (
        "同一世帯"
    )
    return s


def test_seed_is_as_large_as_intended(seeded):
    assert len(seeded.innocent) > 400
    assert len(seeded.off_hours) == 17 and len(seeded.no_purpose) == 3
    assert len(seeded.flagged) == 7 and len(seeded.bursts) == 2


def test_off_hours_report_finds_every_planted_event_and_nothing_else(seeded):
    report = review.off_hours(PERIOD, hours=HOURS)
    assert {r.seq for r in report.rows} == seeded.off_hours
    assert report.count == len(seeded.off_hours)
    assert report.by_user == [("night1", len(seeded.off_hours))]
    reasons = {r.at.strftime("%m-%d %H:%M"): r.reason for r in report.rows}
    assert reasons["11-10 22:00"] == "終業後"
    assert reasons["11-11 07:59"] == "始業前"
    assert reasons["11-08 10:00"] == "日曜日"
    assert reasons["11-03 11:00"] == "祝日（文化の日）"
    assert reasons["12-30 10:00"] == "年末年始"
    assert reasons["11-14 09:00"] == "土曜日"


def test_off_hours_follow_the_configured_hours(seeded):
    later = review.off_hours(PERIOD, hours=(time(9, 0), time(18, 30)))
    early = {r.seq for r in later.rows} - seeded.off_hours
    # The 08:xx background events are now outside office hours, and only those.
    assert early and all(
        AuditEvent.objects.get(seq=seq).at.astimezone(JST).hour == 8 for seq in early
    )


def test_burst_report_finds_the_users_and_hours(seeded):
    report = review.bursts(PERIOD)
    assert {(b.user_id, b.hour) for b in report.rows} == seeded.bursts
    counts = {b.username: b.distinct_residents for b in report.rows}
    assert counts == {"burst1": 40, "burst2": 30}
    assert report.count == 2


def test_burst_threshold_is_configurable(seeded):
    found = {(b.username, b.distinct_residents) for b in review.bursts(PERIOD, threshold=35).rows}
    assert found == {("burst1", 40)}
    lower = {b.username for b in review.bursts(PERIOD, threshold=20).rows}
    assert {"busy1", "burst1", "burst2"} <= lower


def test_listing_events_do_not_make_a_burst(seeded):
    # One hour, 50 people listed by one search each time, 3 searches: still no burst —
    # bursts count openings only (a search lists up to 50).
    for n in range(3):
        for i in range(50):
            _listed(jst(2026, 11, 24, 10, n), seeded.users["daytime1"], f"55{n}00000{i:02d}")
    report = review.bursts(PERIOD)
    assert {(b.user_id, b.hour) for b in report.rows} == seeded.bursts


def test_listing_events_at_night_are_not_each_an_off_hours_row(seeded):
    # The search's summary event is the finding; its listing events stay in each history.
    summary = _put(jst(2026, 11, 24, 22, 0), seeded.users["night1"], audit.Event.SEARCH)
    for i in range(10):
        _listed(jst(2026, 11, 24, 22, 0), seeded.users["night1"], f"560000000{i}")
    report = review.off_hours(PERIOD, hours=HOURS)
    assert {r.seq for r in report.rows} == seeded.off_hours | {summary}


def test_views_without_purpose_are_all_found(seeded):
    report = review.views_without_purpose(PERIOD)
    assert {r.seq for r in report.rows} == seeded.no_purpose
    assert report.by_user == [("careless1", 3)]


def test_flagged_views_find_dv_vip_own_record_and_own_household(seeded):
    report = review.flagged_views(PERIOD)
    found = {r.seq: r.reason for r in report.rows}
    assert set(found) == set(seeded.flagged)
    for seq, word in seeded.flagged.items():
        assert word in found[seq]
    assert report.count == len(seeded.flagged)
    assert "閲覧・一覧表示" in report.description


def test_flagged_report_includes_flagged_people_shown_in_a_list(seeded):
    rows = [r for r in review.flagged_views(PERIOD).rows if r.event == audit.Event.SEARCH]
    assert [(r.subject_ref, r.event_label, r.function) for r in rows] == [
        ("3000000001", "一覧表示", "residents.search"),
        ("4000000002", "一覧表示", "residents.view"),
    ]


def test_all_reports_together_find_100_percent_and_no_innocent_event(seeded):
    reports = {r.key: r for r in review.anomalies(PERIOD, hours=HOURS)}
    flagged_seqs = set()
    for key in ("off_hours", "no_purpose", "flagged"):
        flagged_seqs |= {r.seq for r in reports[key].rows}
    planted = seeded.off_hours | seeded.no_purpose | set(seeded.flagged)
    assert flagged_seqs == planted
    assert not flagged_seqs & seeded.innocent
    assert {(b.user_id, b.hour) for b in reports["bursts"].rows} == seeded.bursts
    assert queries.anomaly_counts(PERIOD.start, PERIOD.end) == {
        "off_hours": len(seeded.off_hours),
        "bursts": 2,
        "no_purpose": 3,
        "flagged": 7,
    }


def test_reports_are_a_fixed_number_of_queries_whatever_the_log_size(seeded):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            review.anomalies(PERIOD, hours=HOURS)
        return len(ctx.captured_queries)

    before = count()
    for i in range(300):
        _put(jst(2026, 11, 25, 10, i % 60), seeded.users["daytime1"], subject=f"9{i:09d}")
    assert count() == before <= 12


def test_rows_are_limited_but_counts_are_complete(seeded):
    report = review.off_hours(PERIOD, hours=HOURS, limit=5)
    assert len(report.rows) == 5 and report.count == len(seeded.off_hours)
    assert report.truncated


def test_access_history_lists_every_event_on_one_resident(seeded):
    rows, total = review.access_history("3000000001")
    assert total == 4  # three openings and one listing in search results
    assert [r.at for r in rows] == sorted((r.at for r in rows), reverse=True)  # newest first
    newest = rows[0]
    assert newest.username == "daytime2" and newest.roles == "保健師"
    assert newest.event_label == "閲覧" and newest.purpose_label == "問合せ対応"
    assert newest.address == "10.0.0.9" and newest.result_label == "成功"
    assert newest.at.tzinfo is not None and newest.at.utcoffset().total_seconds() == 9 * 3600


def test_access_history_includes_listing_events(seeded):
    rows, total = review.access_history("4000000002")
    assert [(r.event_label, r.function, r.username) for r in rows] == [
        ("一覧表示", "residents.view", "own_staff"),
        ("閲覧", "residents.view", "own_staff"),
        ("閲覧", "residents.view", "daytime2"),
    ]
    assert total == 3


def test_access_history_shows_break_glass():
    actor = audit.Actor(1, "emergency1", "緊急アクセス", "10.0.0.1", break_glass=True)
    _put(jst(2026, 11, 10, 10, 0), actor, subject="1234567890", purpose="emergency")
    (row,), _ = review.access_history("1234567890")
    assert row.break_glass and row.purpose_label == "緊急対応"


# --------------------------------------------------------------------------------------------
# Review tasks


def _task(reason: str = "緊急アクセスの利用") -> int:
    return ReviewTask.objects.create(
        kind="break_glass", reason=reason, created_at=clock.now(), subject_kind="user"
    ).pk


def test_close_task_records_the_finding_and_an_audit_event(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    task_id = _task()
    assert queries.open_review_task_count() == 1
    review.close_task(kacho, task_id, "本人に業務上の必要を確認した")
    task = ReviewTask.objects.get(pk=task_id)
    assert task.status == ReviewStatus.CLOSED and task.closed_by_id == kacho.pk
    assert task.note == "本人に業務上の必要を確認した"
    (event,) = AuditEvent.objects.filter(subject_kind="review_task")
    assert event.subject_ref == str(task_id) and event.purpose == "audit"
    assert event.function == "audit.review" and json.loads(event.detail) == {"action": "close"}
    assert queries.open_review_task_count() == 0
    (closed,) = review.review_tasks(ReviewStatus.CLOSED)
    assert closed.closed_by == "kacho1"


def _closing_refused(reviewer, task_id: int) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(review.OwnTask, match="別の課長・監査担当者が確認してください"):
        review.close_task(reviewer, task_id, "問題なし")
    task = ReviewTask.objects.get(pk=task_id)
    assert task.status == ReviewStatus.OPEN and task.closed_by_id is None and task.note == ""
    assert AuditEvent.objects.count() == before


def test_the_person_a_task_is_about_cannot_close_it(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    task_id = ReviewTask.objects.create(
        kind="break_glass", reason="緊急アクセス", created_at=clock.now(),
        subject_kind="user", subject_ref=str(kacho.pk),
    ).pk  # fmt: skip
    _closing_refused(kacho, task_id)
    review.close_task(make_user("kacho2", roles=["kacho"]), task_id, "問題なし")
    assert ReviewTask.objects.get(pk=task_id).status == ReviewStatus.CLOSED


def test_the_creator_of_a_task_cannot_close_it(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    task_id = ReviewTask.objects.create(
        kind="anomaly", reason="異常", created_at=clock.now(), created_by_id=kacho.pk
    ).pk
    _closing_refused(kacho, task_id)


def test_a_resident_subject_with_the_same_number_is_not_the_reviewer(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    task_id = ReviewTask.objects.create(
        kind="anomaly", reason="異常", created_at=clock.now(),
        subject_kind="resident", subject_ref=str(kacho.pk),
    ).pk  # fmt: skip
    review.close_task(kacho, task_id, "問題なし")
    assert ReviewTask.objects.get(pk=task_id).status == ReviewStatus.CLOSED


def test_break_glass_holder_and_approver_cannot_close_its_review_task(make_user):
    """Review finding: the holder of an emergency grant closed the task about it."""
    from kenshin.accounts import breakglass

    a1 = make_user("adminA", roles=["system_admin"])
    a2 = make_user("adminB", roles=["system_admin"])
    holder = make_user("kachoZ", roles=["kacho"])
    bg = breakglass.request(a1, holder, "災害", 60)
    breakglass.approve(a2, bg)
    task = ReviewTask.objects.get()
    assert task.subject_ref == str(holder.pk) and task.created_by_id == a2.pk
    _closing_refused(holder, task.pk)
    _closing_refused(a2, task.pk)
    review.close_task(make_user("kachoY", roles=["kacho"]), task.pk, "業務上の必要を確認した")
    assert ReviewTask.objects.get().status == ReviewStatus.CLOSED


def test_a_task_cannot_be_closed_twice_or_without_a_note(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    task_id = _task()
    with pytest.raises(ValueError, match="確認結果を入力"):
        review.close_task(kacho, task_id, "  ")
    review.close_task(kacho, task_id, "確認済み")
    with pytest.raises(review.TaskNotOpen):
        review.close_task(kacho, task_id, "もう一度")
    assert AuditEvent.objects.filter(subject_kind="review_task").count() == 1
