"""Break-glass: the time-boxed emergency role, enabled only by a second administrator (BG-01).

Why two people: in a disaster a 保健師 may need records outside their usual grant, and nobody
should be able to give that to themselves or to an accomplice alone. One administrator
requests (who, why, for how long, at most 240 minutes); another — neither the requester nor
the person who will hold it, nor an account created by or creating either of them (a second
account of the same person) — approves with a fresh TOTP code. The approval creates an
``emergency`` role assignment that ends by itself at ``expires_at`` (grants ignore it after
that moment, to the second), flags every audit event of its holder while in force
(``grants.has_break_glass``), and opens a review task for the 課長.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction

from kenshin.accounts import grants
from kenshin.accounts.actions import (
    ActionRefused,
    actor_user,
    created_one_another,
    user_subject,
)
from kenshin.accounts.models import BreakGlass, BreakGlassStatus, Role, RoleAssignment, User
from kenshin.accounts.permissions import BREAK_GLASS
from kenshin.audit import services as audit_services
from kenshin.core import audit, clock

MAX_MINUTES = 240
# A request nobody approved within this time lapses: the emergency has moved on.
REQUEST_TTL = timedelta(hours=1)
REVIEW_KIND = "break_glass"


def in_force(bg: BreakGlass) -> bool:
    """True while the approved grant still holds (status alone is not enough: time ends it)."""
    a = bg.assignment
    return (
        bg.status == BreakGlassStatus.ACTIVE
        and a is not None
        and a.revoked_at is None
        and a.expires_at is not None
        and a.expires_at > clock.now()
    )


def settle_expired() -> int:
    """Mark lapsed requests and expired grants as ended (bookkeeping only: access already
    stopped at ``expires_at``, because grants compare with the clock)."""
    now = clock.now()
    ended = BreakGlass.objects.filter(
        status=BreakGlassStatus.ACTIVE, assignment__expires_at__lte=now
    ).update(status=BreakGlassStatus.ENDED)
    lapsed = BreakGlass.objects.filter(
        status=BreakGlassStatus.REQUESTED, requested_at__lte=now - REQUEST_TTL
    ).update(status=BreakGlassStatus.REJECTED, decided_at=now)
    return ended + lapsed


@transaction.atomic
def request(actor: Any, user: Any, reason: str, minutes: int) -> BreakGlass:
    """Ask for the emergency role for ``user``; nothing is granted until a second approval."""
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("理由を入力してください。")
    if not 1 <= int(minutes) <= MAX_MINUTES:
        raise ActionRefused(f"時間は1分から{MAX_MINUTES}分までです。")
    if not user.is_active:
        raise ActionRefused("無効なアカウントには申請できません。")
    settle_expired()
    if BreakGlass.objects.filter(
        user=user, status__in=[BreakGlassStatus.REQUESTED, BreakGlassStatus.ACTIVE]
    ).exists():
        raise ActionRefused("この利用者には承認待ちまたは有効な緊急アクセスがすでにあります。")
    bg = BreakGlass.objects.create(
        user=user, requested_by=actor_user(actor), reason=reason, minutes=int(minutes)
    )
    audit.record(
        audit.Event.BREAK_GLASS,
        actor,
        user_subject(user),
        function=BREAK_GLASS,
        action="request",
        request=bg.pk,
        minutes=bg.minutes,
    )
    return bg


def _locked(bg: BreakGlass) -> BreakGlass:
    # Lock only the request row (PostgreSQL refuses FOR UPDATE on the nullable assignment join).
    return (
        BreakGlass.objects.select_for_update(of=("self",))
        .select_related("user", "assignment")
        .get(pk=bg.pk)
    )


@transaction.atomic
def approve(actor: Any, bg: BreakGlass) -> BreakGlass:
    """Second administrator's approval: grant the emergency role until now + minutes.

    The caller has verified the approver's fresh TOTP (step-up). Refused for the requester,
    for the person who would hold the role, and for an approver who created either of them or
    was created by either (``actions.created_one_another``).
    """
    bg = _locked(bg)
    approver = actor_user(actor)
    if bg.status != BreakGlassStatus.REQUESTED or bg.requested_at <= clock.now() - REQUEST_TTL:
        raise ActionRefused("この申請は承認できる状態ではありません。")
    if approver is None or approver.pk == bg.requested_by_id:
        raise ActionRefused("申請した本人は承認できません。別の管理者が承認してください。")
    if approver.pk == bg.user_id:
        raise ActionRefused("緊急アクセスを受ける本人は承認できません。")
    requester = User.objects.get(pk=bg.requested_by_id)
    if created_one_another(approver, requester) or created_one_another(approver, bg.user):
        raise ActionRefused(
            "申請者または緊急アクセスを受ける利用者と、アカウントの作成でつながっている管理者は"
            "承認できません。別の管理者が承認してください。"
        )
    now = clock.now()
    role = Role.objects.get(is_emergency=True, code="emergency")
    assignment = RoleAssignment.objects.create(
        user=bg.user,
        role=role,
        valid_from=clock.today(),
        expires_at=now + timedelta(minutes=bg.minutes),
        granted_by=approver,
    )
    bg.status = BreakGlassStatus.ACTIVE
    bg.decided_by = approver
    bg.decided_at = now
    bg.assignment = assignment
    bg.save(update_fields=["status", "decided_by", "decided_at", "assignment"])
    grants.forget(bg.user)
    task_id = audit_services.open_review_task(
        REVIEW_KIND,
        f"緊急アクセス {bg.minutes}分（申請番号 {bg.pk}）: {bg.reason}",
        subject_kind="user",
        subject_ref=str(bg.user_id),
        created_by_id=approver.pk,
    )
    audit.record(
        audit.Event.BREAK_GLASS,
        actor,
        user_subject(bg.user),
        function=BREAK_GLASS,
        action="approve",
        request=bg.pk,
        assignment=assignment.pk,
        minutes=bg.minutes,
        expires_at=assignment.expires_at.isoformat(),
        review_task=task_id,
    )
    return bg


@transaction.atomic
def reject(actor: Any, bg: BreakGlass) -> BreakGlass:
    """Refuse (or, by the requester, withdraw) a request that is still waiting.

    The screen asks for a fresh TOTP code first, as for approval: a hijacked session must not
    be able to block an emergency or cut one short.
    """
    bg = _locked(bg)
    if bg.status != BreakGlassStatus.REQUESTED:
        raise ActionRefused("この申請は承認待ちではありません。")
    bg.status = BreakGlassStatus.REJECTED
    bg.decided_by = actor_user(actor)
    bg.decided_at = clock.now()
    bg.save(update_fields=["status", "decided_by", "decided_at"])
    audit.record(
        audit.Event.BREAK_GLASS,
        actor,
        user_subject(bg.user),
        function=BREAK_GLASS,
        action="reject",
        request=bg.pk,
    )
    return bg


@transaction.atomic
def end(actor: Any, bg: BreakGlass) -> BreakGlass:
    """End an active grant before its time (the emergency is over); step-up on the screen."""
    bg = _locked(bg)
    if not in_force(bg):
        raise ActionRefused("この緊急アクセスは有効ではありません。")
    now = clock.now()
    assignment = bg.assignment
    assignment.revoked_at = now
    assignment.revoked_by = actor_user(actor)
    assignment.save(update_fields=["revoked_at", "revoked_by"])
    bg.status = BreakGlassStatus.ENDED
    bg.save(update_fields=["status"])
    grants.forget(bg.user)
    audit.record(
        audit.Event.BREAK_GLASS,
        actor,
        user_subject(bg.user),
        function=BREAK_GLASS,
        action="end",
        request=bg.pk,
        assignment=assignment.pk,
    )
    return bg
