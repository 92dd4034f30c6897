"""Review screens: only audit.review, 宛名番号 only in POST bodies, every look audited."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from django.conf import settings
from django.db import connection
from django.shortcuts import resolve_url
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kenshin.audit.models import AuditEvent, ReviewStatus, ReviewTask
from kenshin.core import audit, clock
from kenshin.core.clock import JST

pytestmark = pytest.mark.django_db

INDEX = reverse("audit:index")
HISTORY = reverse("audit:history")
ANOMALIES = reverse("audit:anomalies")
TASKS = reverse("audit:tasks")


@pytest.fixture(autouse=True)
def _standing_on_a_weekday():
    with clock.frozen(datetime(2026, 11, 26, 10, 0, tzinfo=JST)):
        yield


@pytest.fixture
def kacho(make_user, signed_in):
    return signed_in(make_user("kacho1", roles=["kacho"]))


@pytest.fixture
def hokenshi(make_user, signed_in):
    return signed_in(make_user("hokenshi1", roles=["hokenshi"]))


def _view(when: datetime, username: str, atena_no: str, purpose: str = "inquiry") -> None:
    with clock.frozen(when):
        audit.record(
            audit.Event.VIEW, audit.Actor(99, username, "保健師", "10.0.0.5"), atena_no, purpose,
            function="residents.view",
        )  # fmt: skip


def _task() -> int:
    return ReviewTask.objects.create(
        kind="break_glass", reason="緊急アクセスの利用（2時間）", created_at=clock.now()
    ).pk


def audit_insert_cost() -> int:
    with CaptureQueriesContext(connection) as ctx:
        audit.record(audit.Event.VIEW, None, audit.Subject("test", "cost"), "audit")
    return len(ctx.captured_queries)


def close_url(task_id: int) -> str:
    return reverse("audit:close_task", args=[task_id])


@pytest.mark.parametrize("url", [INDEX, HISTORY, ANOMALIES, TASKS])
def test_staff_without_audit_review_get_403(hokenshi, url):
    assert hokenshi.get(url).status_code == 403


def test_staff_without_audit_review_cannot_look_up_or_close(hokenshi):
    task_id = _task()
    assert hokenshi.post(HISTORY, {"atena_no": "1000000001"}).status_code == 403
    assert hokenshi.post(close_url(task_id), {"note": "x"}).status_code == 403
    assert ReviewTask.objects.get(pk=task_id).status == ReviewStatus.OPEN
    denied = AuditEvent.objects.filter(event=audit.Event.ACCESS_DENIED, function="audit.review")
    assert denied.count() == 2
    assert not AuditEvent.objects.filter(subject_ref="1000000001").exists()


@pytest.mark.parametrize("url", [INDEX, ANOMALIES, TASKS])
def test_anonymous_is_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))


def test_index_shows_the_tools_and_open_tasks(kacho):
    _task()
    html = kacho.get(INDEX).content.decode()
    assert "住民ごとの閲覧履歴" in html and "異常の検知" in html and "未確認 1 件" in html


def test_history_lists_who_when_why_and_is_itself_audited(kacho):
    _view(datetime(2026, 11, 10, 10, 0, tzinfo=JST), "hokenshi9", "1000000001", "voucher")
    _view(datetime(2026, 11, 11, 22, 0, tzinfo=JST), "hokenshi8", "1000000001", "")
    _view(datetime(2026, 11, 11, 10, 0, tzinfo=JST), "hokenshi9", "1000000002")
    response = kacho.post(HISTORY, {"atena_no": "１０００００００01"})  # full-width digits too
    html = response.content.decode()
    assert response.status_code == 200
    assert "宛名番号 1000000001 の記録 3 件" in html  # two views and this look-up itself
    assert "2026-11-10 10:00:00" in html and "hokenshi9" in html and "受診券・クーポン発行" in html
    assert "2026-11-11 22:00:00" in html and "（なし）" in html
    assert "10.0.0.5" in html and "保健師" in html
    looked = AuditEvent.objects.get(username="kacho1", event=audit.Event.VIEW)
    assert looked.subject_kind == "resident" and looked.subject_ref == "1000000001"
    assert looked.purpose == "audit" and looked.function == "audit.review"
    assert json.loads(looked.detail) == {"report": "access_history"}
    assert response["Cache-Control"] == "no-store"


def test_history_needs_a_number(kacho):
    html = kacho.post(HISTORY, {"atena_no": "山田"}).content.decode()
    assert "宛名番号は数字で入力してください" in html
    assert not AuditEvent.objects.filter(username="kacho1").exists()


def test_history_page_query_count(kacho):
    for day in range(2, 12):
        _view(datetime(2026, 11, day, 10, 0, tzinfo=JST), "hokenshi9", "1000000001")
    kacho.get(INDEX)  # session warm
    cost = audit_insert_cost()
    with CaptureQueriesContext(connection) as ctx:
        kacho.post(HISTORY, {"atena_no": "1000000001"})
    # session, user, OTP device, grants, count, rows — plus the audit insert
    assert len(ctx.captured_queries) == 6 + cost


def test_anomaly_page_defaults_to_the_last_30_days_and_is_audited(kacho):
    _view(datetime(2026, 11, 10, 22, 0, tzinfo=JST), "night9", "1000000001")
    _view(datetime(2026, 10, 20, 22, 0, tzinfo=JST), "night9", "1000000002")  # too old
    html = kacho.get(ANOMALIES).content.decode()
    assert "期間：2026-10-28〜2026-11-26" in html
    assert "業務時間外のアクセス（1 件）" in html and "night9" in html and "終業後" in html
    assert "短時間に多数の住民を閲覧（0 件）" in html
    assert "利用目的のない閲覧（0 件）" in html and "閲覧注意の記録の閲覧（0 件）" in html
    (event,) = AuditEvent.objects.filter(username="kacho1")
    assert (event.event, event.subject_kind, event.subject_ref) == (
        audit.Event.VIEW,
        "audit_report",
        "anomalies",
    )
    detail = json.loads(event.detail)
    assert detail["start"] == "2026-10-28" and detail["threshold"] == 30
    assert detail["counts"] == {"off_hours": 1, "bursts": 0, "no_purpose": 0, "flagged": 0}


def test_anomaly_page_query_count_does_not_grow_with_the_log(kacho):
    kacho.get(INDEX)
    cost = audit_insert_cost()

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            kacho.get(ANOMALIES)
        return len(ctx.captured_queries)

    _view(datetime(2026, 11, 10, 22, 0, tzinfo=JST), "night9", "1000000001")
    one = count()
    for i in range(40):
        _view(datetime(2026, 11, 11, 22, i, tzinfo=JST), "night9", f"20000000{i:02d}", "")
    # session, user, OTP device, grants; off hours 2 (per user, rows), bursts 1, no purpose 2,
    # flagged 2 (flag periods, staff's own numbers; nothing more when both are empty)
    # — plus the audit insert
    assert count() == one == 4 + 2 + 1 + 2 + 2 + cost


def test_anomaly_page_takes_a_period_and_threshold(kacho):
    _view(datetime(2026, 10, 20, 22, 0, tzinfo=JST), "night9", "1000000002")
    html = kacho.get(
        ANOMALIES, {"start": "2026-10-01", "end": "2026-10-31", "threshold": "5"}
    ).content.decode()
    assert "業務時間外のアクセス（1 件）" in html and "5 人以上" in html


def test_anomaly_page_refuses_a_reversed_period(kacho):
    html = kacho.get(ANOMALIES, {"start": "2026-11-30", "end": "2026-11-01"}).content.decode()
    assert "開始日は終了日より前にしてください" in html
    assert not AuditEvent.objects.filter(username="kacho1").exists()


def test_tasks_list_and_close_with_a_note(kacho):
    task_id = _task()
    html = kacho.get(TASKS).content.decode()
    assert "緊急アクセスの利用（2時間）" in html and close_url(task_id) in html
    response = kacho.post(close_url(task_id), {"note": "承認者と内容を確認した"})
    assert response.status_code == 302 and response["Location"] == TASKS
    task = ReviewTask.objects.get(pk=task_id)
    assert task.status == ReviewStatus.CLOSED and task.note == "承認者と内容を確認した"
    closed = kacho.get(TASKS, {"status": "closed"}).content.decode()
    assert "承認者と内容を確認した" in closed and "kacho1" in closed
    events = AuditEvent.objects.filter(username="kacho1").order_by("seq")
    assert [(e.event, e.subject_kind, e.subject_ref) for e in events] == [
        (audit.Event.VIEW, "audit_report", "review_tasks"),
        (audit.Event.UPDATE, "review_task", str(task_id)),
        (audit.Event.VIEW, "audit_report", "review_tasks"),
    ]


def test_closing_a_task_about_oneself_is_refused_in_japanese(make_user, signed_in):
    user = make_user("kacho2", roles=["kacho"])
    client = signed_in(user)
    task_id = ReviewTask.objects.create(
        kind="break_glass", reason="緊急アクセス 60分", created_at=clock.now(),
        subject_kind="user", subject_ref=str(user.pk),
    ).pk  # fmt: skip
    response = client.post(close_url(task_id), {"note": "問題なし"}, follow=True)
    assert "ご自身が対象の点検タスクは確認できません" in response.content.decode()
    assert ReviewTask.objects.get(pk=task_id).status == ReviewStatus.OPEN
    assert not AuditEvent.objects.filter(subject_kind="review_task").exists()


def test_closing_needs_post_and_a_note(kacho):
    task_id = _task()
    assert kacho.get(close_url(task_id)).status_code == 405
    kacho.post(close_url(task_id), {"note": ""})
    assert ReviewTask.objects.get(pk=task_id).status == ReviewStatus.OPEN


def test_tasks_page_query_count_does_not_grow_with_tasks(kacho):
    kacho.get(INDEX)
    cost = audit_insert_cost()

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            kacho.get(TASKS)
        return len(ctx.captured_queries)

    _task()
    one = count()
    for _ in range(20):
        _task()
    # session, user, OTP device, grants, tasks — plus the audit insert
    assert count() == one == 5 + cost


def test_no_resident_number_in_any_review_url(kacho):
    _view(datetime(2026, 11, 10, 10, 0, tzinfo=JST), "hokenshi9", "1000000001")
    html = kacho.post(HISTORY, {"atena_no": "1000000001"}).content.decode()
    import re

    for url in re.findall(r'(?:href|action)="([^"]*)"', html):
        assert "1000000001" not in url


def test_tasks_name_the_user_concerned(kacho, make_user):
    user = make_user("emergency7", roles=["hokenshi"], totp=False)
    ReviewTask.objects.create(
        kind="break_glass", reason="緊急アクセス 60分", created_at=clock.now(),
        subject_kind="user", subject_ref=str(user.pk),
    )  # fmt: skip
    html = kacho.get(TASKS).content.decode()
    assert "緊急アクセスの利用" in html and "利用者 emergency7" in html
