"""Break-glass (BG-01): two administrators, a time box, flagged events and a review task."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from kenshin.accounts import breakglass
from kenshin.accounts.actions import ActionRefused
from kenshin.accounts.models import BreakGlass, BreakGlassStatus
from kenshin.accounts.testing import code_for, wrong_code
from kenshin.audit.models import AuditEvent, ReviewTask
from kenshin.core import audit, clock

User = get_user_model()
NOW = datetime(2026, 7, 1, 9, 0, tzinfo=clock.JST)


@pytest.fixture
def admins(make_user):
    return make_user("admin1", roles=["system_admin"]), make_user("admin2", roles=["system_admin"])


@pytest.fixture
def nurse(make_user):
    return make_user("hokenshi1")


def _fresh(user):
    return User.objects.get(pk=user.pk)


def test_request_alone_grants_nothing(admins, nurse):
    first, _ = admins
    with clock.frozen(NOW):
        bg = breakglass.request(first, nurse, "豪雨災害の安否確認", 60)
        assert bg.status == BreakGlassStatus.REQUESTED
        assert not _fresh(nurse).has_perm("residents.view")


def test_requester_cannot_approve_their_own_request(admins, nurse):
    first, _ = admins
    with clock.frozen(NOW):
        bg = breakglass.request(first, nurse, "豪雨災害の安否確認", 60)
        with pytest.raises(ActionRefused, match="申請した本人は承認できません"):
            breakglass.approve(first, bg)
        assert not _fresh(nurse).has_perm("residents.view")


def test_the_person_who_would_hold_it_cannot_approve(admins):
    first, second = admins
    with clock.frozen(NOW):
        bg = breakglass.request(first, second, "豪雨災害の安否確認", 60)
        with pytest.raises(ActionRefused, match="本人は承認できません"):
            breakglass.approve(second, bg)


def test_duration_is_limited_to_240_minutes(admins, nurse):
    first, _ = admins
    with pytest.raises(ActionRefused):
        breakglass.request(first, nurse, "理由", breakglass.MAX_MINUTES + 1)
    with pytest.raises(ActionRefused):
        breakglass.request(first, nurse, "  ", 30)


def test_second_admin_approval_grants_flags_reviews_and_expires(admins, nurse):
    first, second = admins
    with clock.frozen(NOW):
        bg = breakglass.request(first, nurse, "豪雨災害の安否確認", 30)
        breakglass.approve(second, bg)
        bg.refresh_from_db()
        assert bg.status == BreakGlassStatus.ACTIVE and bg.decided_by == second
        assert bg.assignment.expires_at == NOW + timedelta(minutes=30)
        holder = _fresh(nurse)
        assert holder.has_perm("residents.view")
        assert holder.under_break_glass()
        entry = audit.record(audit.Event.VIEW, holder, "000000000001", "inquiry", function="x.y")
        assert entry.actor.break_glass
        flagged = AuditEvent.objects.order_by("-seq").first()
        assert flagged.break_glass and flagged.user_id == nurse.pk
    task = ReviewTask.objects.get(kind="break_glass")
    assert (task.subject_kind, task.subject_ref, task.created_by_id) == (
        "user",
        str(nurse.pk),
        second.pk,
    )
    assert task.status == "open"
    approve = AuditEvent.objects.filter(event="break_glass").order_by("-seq").first()
    assert json.loads(approve.detail)["review_task"] == task.pk
    with clock.frozen(NOW + timedelta(minutes=30)):
        after = _fresh(nurse)
        assert not after.has_perm("residents.view")
        assert not after.under_break_glass()
        entry = audit.record(audit.Event.VIEW, after, "000000000001", "inquiry", function="x.y")
        assert not entry.actor.break_glass
        bg.refresh_from_db()
        assert not breakglass.in_force(bg)
        assert breakglass.settle_expired() == 1
    assert BreakGlass.objects.get(pk=bg.pk).status == BreakGlassStatus.ENDED


def test_a_grant_can_be_ended_early(admins, nurse):
    first, second = admins
    with clock.frozen(NOW):
        bg = breakglass.approve(second, breakglass.request(first, nurse, "訓練", 120))
    with clock.frozen(NOW + timedelta(minutes=5)):
        breakglass.end(first, bg)
        assert not _fresh(nurse).has_perm("residents.view")
        assert BreakGlass.objects.get(pk=bg.pk).status == BreakGlassStatus.ENDED


def test_an_unapproved_request_lapses_after_an_hour(admins, nurse):
    first, second = admins
    with clock.frozen(NOW):
        bg = breakglass.request(first, nurse, "訓練", 60)
    BreakGlass.objects.filter(pk=bg.pk).update(requested_at=NOW)
    with clock.frozen(NOW + breakglass.REQUEST_TTL + timedelta(seconds=1)):
        with pytest.raises(ActionRefused):
            breakglass.approve(second, bg)


def test_screens_need_a_second_admin_with_a_fresh_code(admins, nurse, signed_in):
    first, second = admins
    one, two = signed_in(first), signed_in(second)
    response = one.post(
        reverse("accounts:breakglass_request"),
        {
            "bg-user": nurse.pk,
            "bg-reason": "豪雨災害",
            "bg-minutes": 60,
            "bg-code": code_for(first),
        },
    )
    assert response.status_code == 302
    bg = BreakGlass.objects.get()
    url = reverse("accounts:breakglass_approve", args=[bg.pk])
    own = one.post(url, {"approve-code": code_for(first)})
    assert own.status_code == 400 and "申請した本人は承認できません" in own.content.decode()
    wrong = two.post(url, {"approve-code": wrong_code(second)})
    assert wrong.status_code == 400 and "確認コードが正しくありません" in wrong.content.decode()
    assert BreakGlass.objects.get().status == BreakGlassStatus.REQUESTED
    assert not _fresh(nurse).has_perm("residents.view")
    assert two.post(url, {"approve-code": code_for(second)}).status_code == 302
    assert _fresh(nurse).has_perm("residents.view")
    page = two.get(reverse("accounts:breakglass")).content.decode()
    assert "有効な緊急アクセス" in page and "今すぐ終了" in page
    end = reverse("accounts:breakglass_end", args=[bg.pk])
    assert two.post(end, {"end-code": code_for(second)}).status_code == 302
    assert not _fresh(nurse).has_perm("residents.view")


def test_request_screen_refuses_without_code(admins, nurse, signed_in):
    first, _ = admins
    response = signed_in(first).post(
        reverse("accounts:breakglass_request"),
        {
            "bg-user": nurse.pk,
            "bg-reason": "豪雨災害",
            "bg-minutes": 60,
            "bg-code": wrong_code(first),
        },
    )
    assert response.status_code == 400
    assert not BreakGlass.objects.exists()
