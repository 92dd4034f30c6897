"""Every change to accounts, roles and institutions; each writes its audit event in the same
transaction, so a change without its record (or a record without its change) cannot exist.

Why one module: the admin screens, the demo and management commands all change accounts the
same way (STYLE "one way to change state"). The rules of separation of duties live here, not in
the views: an administrator cannot grant a role to themself, nor a privileged (administrator)
role to an account they created, nor any role to the account that created theirs — so a second
account made for oneself (a "puppet") cannot stand in for a second administrator; every grant
of a privileged role opens a review task for the 課長; the emergency role is reached only
through break-glass with a second administrator (ACL-05, BG-01).

``actor`` is the request (preferred: it carries the address and the actor's roles) or a user.
Audit details carry codes, scopes and dates — never names, e-mail addresses or passwords.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from kenshin.accounts import grants, mfa, passwords, sessions
from kenshin.accounts.models import Institution, Role, RoleAssignment, ScopeKind
from kenshin.accounts.permissions import (
    ASSIGN_ROLES,
    EDIT_INSTITUTION,
    MANAGE_USERS,
    is_privileged,
)
from kenshin.audit import services as audit_services
from kenshin.core import audit, clock

User = get_user_model()

# What a clinic user or an administrator may change on an institution (codes stay fixed:
# they are the key claims and results are matched on).
INSTITUTION_FIELDS = ("name", "contact_name", "phone", "address")


# The review task opened by every grant of a privileged role (audit.ReviewTask.kind).
PRIVILEGED_REVIEW_KIND = "privileged_grant"


class ActionRefused(Exception):
    """A change that the rules forbid; the message is Japanese and shown as is."""


def actor_user(actor: Any) -> Any:
    """The user behind ``actor`` (a request or a user), or None for the system."""
    if actor is None or isinstance(actor, audit.Actor):
        return None
    return getattr(actor, "user", None) if hasattr(actor, "META") else actor


def user_subject(user: Any) -> audit.Subject:
    """Staff accounts are not residents: they are named by id, never by name."""
    return audit.Subject.user(user.pk)


def _same_person(actor: Any, user: Any) -> bool:
    me = actor_user(actor)
    return me is not None and getattr(me, "pk", None) == user.pk


def created_one_another(a: Any, b: Any) -> bool:
    """True if one of the two accounts created the other (``User.created_by``).

    Why: such a pair may be one person with two accounts; neither may act as the other's
    "second administrator" (role grants here, break-glass approval in accounts.breakglass).
    """
    if a is None or b is None:
        return False
    return (a.pk is not None and getattr(b, "created_by_id", None) == a.pk) or (
        b.pk is not None and getattr(a, "created_by_id", None) == b.pk
    )


def role_is_privileged(role: Role) -> bool:
    """A role holding any administrator function (accounts.permissions.is_privileged)."""
    functions = role.functions if isinstance(role.functions, list) else []
    return any(isinstance(code, str) and is_privileged(code) for code in functions)


EMAIL_TAKEN = (
    "このメールアドレスは別の利用者で使われています。"
    "仮パスワードは本人だけに届く必要があるため、利用者ごとに本人のアドレスを登録してください。"
)


@transaction.atomic
def create_user(
    actor: Any,
    username: str,
    display_name: str,
    email: str,
    department: str,
    institution: Institution | None = None,
) -> Any:
    """Create an account with a random temporary password delivered to the person (AUTH-07).

    The administrator never sees or chooses the password: it goes straight from
    ``passwords.issue_temporary`` to ``passwords.deliver_temporary``. If delivery fails the
    account is not created (same transaction), so no account exists that nobody can open.

    The address must be no other account's (case-insensitive, also a database constraint):
    otherwise an administrator could type their own address and receive the password of an
    account made for themself. ``created_by`` records the administrator for the rules of
    separation of duties.
    """
    username = username.strip()
    email = (email or "").strip()
    if not username:
        raise ActionRefused("ユーザー名を入力してください。")
    if User.objects.filter(username__iexact=username).exists():
        raise ActionRefused("このユーザー名はすでに使われています。")
    if email and User.objects.filter(email__iexact=email).exists():
        raise ActionRefused(EMAIL_TAKEN)
    user = User(
        username=username,
        display_name=display_name.strip(),
        email=email,
        department=department.strip(),
        institution=institution,
        created_by=actor_user(actor),
    )
    user.set_unusable_password()
    try:
        with transaction.atomic():  # a savepoint: a concurrent duplicate is refused, not a 500
            user.save()
    except IntegrityError as exc:
        taken = EMAIL_TAKEN if email else "このユーザー名はすでに使われています。"
        raise ActionRefused(taken) from exc
    _issue_and_deliver(actor, user)
    audit.record(
        audit.Event.CREATE,
        actor,
        user_subject(user),
        function=MANAGE_USERS,
        action="create_user",
        institution=institution.code if institution else "",
    )
    return user


def _issue_and_deliver(actor: Any, user: Any) -> None:
    temporary = passwords.issue_temporary(user, actor=actor)
    try:
        passwords.deliver_temporary(user, temporary)
    except ValueError as exc:  # no e-mail address: roll back rather than leave it unknown
        raise ActionRefused(str(exc)) from exc


@transaction.atomic
def start_password_reset(actor: Any, user: Any) -> None:
    """Issue a new random temporary password and send it to the person, not the administrator.

    Their sessions end (passwords.issue_temporary): a reset usually means something is wrong.
    """
    _issue_and_deliver(actor, user)
    audit.record(
        audit.Event.UPDATE, actor, user_subject(user), function=MANAGE_USERS, action="reset"
    )


@transaction.atomic
def force_password_change(actor: Any, user: Any) -> None:
    """Require a new password at the next request (suspected compromise, AUTH-04)."""
    passwords.force_change(user, actor=actor)
    audit.record(
        audit.Event.UPDATE,
        actor,
        user_subject(user),
        function=MANAGE_USERS,
        action="force_password_change",
    )


@transaction.atomic
def disable_user(actor: Any, user: Any) -> int:
    """Disable the account and end all its sessions at once (SESS-03); return sessions ended.

    An administrator cannot disable their own account: the last administrator could lock
    everyone out, and a disable should be a second person's decision.
    """
    if _same_person(actor, user):
        raise ActionRefused("自分のアカウントは無効にできません。")
    # Sessions first, in the administrator's name; the post_save signal that also ends
    # sessions of disabled accounts then finds none left and records nothing twice.
    ended = sessions.end_all(user, actor=actor)
    user.is_active = False
    user.save(update_fields=["is_active"])
    grants.forget(user)
    audit.record(
        audit.Event.UPDATE,
        actor,
        user_subject(user),
        function=MANAGE_USERS,
        action="disable",
        sessions_ended=ended,
    )
    return ended


@transaction.atomic
def enable_user(actor: Any, user: Any) -> None:
    """Enable a disabled account again (its role assignments decide what it may do)."""
    user.is_active = True
    user.save(update_fields=["is_active"])
    grants.forget(user)
    audit.record(
        audit.Event.UPDATE, actor, user_subject(user), function=MANAGE_USERS, action="enable"
    )


@transaction.atomic
def reset_second_factor(actor: Any, user: Any) -> None:
    """Lost phone: remove the authenticator and recovery codes and end every session.

    The next sign-in enrols a new authenticator, so whoever knows the password could enrol
    one: the screen tells the administrator to start a password reset as well (the temporary
    password goes only to the person). Nobody resets their own second factor.
    """
    if _same_person(actor, user):
        raise ActionRefused("自分自身の認証アプリは取り消せません。別の管理者に依頼してください。")
    mfa.reset_devices(user)
    sessions.end_all(user, actor=actor, record_empty=False)
    audit.record(
        audit.Event.UPDATE,
        actor,
        user_subject(user),
        function=MANAGE_USERS,
        action="reset_second_factor",
    )


def end_sessions(actor: Any, user: Any) -> int:
    """End every session of ``user`` (a terminal left signed in, SESS-03); return how many.

    ``sessions.end_all`` records the SESSION_ENDED event with the actor; recording it here as
    well would count one action twice in the review.
    """
    return sessions.end_all(user, actor=actor)


def _check_scope(scope_kind: str, scope_value: str, role: Role) -> tuple[str, str]:
    """Validate a grant's scope; refuse a scope kind that no function of ``role`` supports.

    Why: such a grant would give nothing (grants.scope_applies) while the administrator
    believes they gave a narrowed role; better to say so now.
    """
    scope_kind = scope_kind or ""
    scope_value = (scope_value or "").strip()
    if scope_kind not in ScopeKind.values:
        raise ActionRefused("範囲の種類が正しくありません。")
    if not scope_kind:
        return "", ""
    functions = role.functions if isinstance(role.functions, list) else []
    if not any(isinstance(c, str) and grants.scope_applies(c, scope_kind) for c in functions):
        raise ActionRefused(
            f"ロール「{role.name}」の機能は「{ScopeKind(scope_kind).label}」の範囲で"
            "絞ることができません。範囲を「全体」にするか、別のロールを選んでください。"
        )
    if not scope_value:
        raise ActionRefused("範囲を付ける場合は、範囲の値を入力してください。")
    if (
        scope_kind == ScopeKind.CLINIC
        and not Institution.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, code=scope_value
        ).exists()
    ):
        raise ActionRefused("その医療機関コードは登録されていません。")
    return scope_kind, scope_value


@transaction.atomic
def assign_role(
    actor: Any,
    user: Any,
    role: Role,
    scope_kind: str = "",
    scope_value: str = "",
    valid_from: date | None = None,
    valid_to: date | None = None,
) -> RoleAssignment:
    """Grant ``role`` to ``user`` from ``valid_from`` (default today) to ``valid_to`` (inclusive).

    Refused: a grant to oneself, a privileged role to an account the actor created, any role
    to the account that created the actor's (separation of duties), a scope the role cannot
    be narrowed by, and the emergency role (only break-glass, with a second administrator,
    may grant it). A privileged role's grant opens a review task for the 課長.
    """
    me = actor_user(actor)
    if _same_person(actor, user):
        raise ActionRefused(
            "自分自身にロールを付与することはできません。別の管理者に依頼してください。"
        )
    if me is not None and me.created_by_id is not None and me.created_by_id == user.pk:
        raise ActionRefused(
            "あなたのアカウントを作成した利用者にはロールを付与できません。"
            "別の管理者に依頼してください。"
        )
    privileged = role_is_privileged(role)
    if privileged and me is not None and user.created_by_id == me.pk:
        raise ActionRefused(
            "自分が作成したアカウントには、管理者の機能を含むロールを付与できません。"
            "別の管理者に依頼してください。"
        )
    if role.is_emergency:
        raise ActionRefused(
            "緊急アクセスのロールは直接付与できません。緊急アクセスの申請から行ってください。"
        )
    scope_kind, scope_value = _check_scope(scope_kind, scope_value, role)
    valid_from = valid_from or clock.today()
    if valid_to is not None and valid_to < valid_from:
        raise ActionRefused("終了日は開始日以降にしてください。")
    assignment = RoleAssignment.objects.create(
        user=user,
        role=role,
        scope_kind=scope_kind,
        scope_value=scope_value,
        valid_from=valid_from,
        valid_to=valid_to,
        granted_by=me,
    )
    grants.forget(user)
    task_id = None
    if privileged:
        task_id = audit_services.open_review_task(
            kind=PRIVILEGED_REVIEW_KIND,
            reason=(
                f"管理者の機能を含むロール「{role.name}」の付与（付与番号 {assignment.pk}、"
                f"{valid_from.isoformat()}〜{valid_to.isoformat() if valid_to else ''}）"
            ),
            subject_kind="user",
            subject_ref=str(user.pk),
            created_by_id=me.pk if me is not None else None,
        )
    audit.record(
        audit.Event.PERMISSION_CHANGE,
        actor,
        user_subject(user),
        function=ASSIGN_ROLES,
        action="assign",
        assignment=assignment.pk,
        role=role.code,
        scope_kind=scope_kind,
        scope_value=scope_value,
        valid_from=valid_from.isoformat(),
        valid_to=valid_to.isoformat() if valid_to else "",
        review_task=task_id,
    )
    return assignment


@transaction.atomic
def revoke_assignment(actor: Any, assignment: RoleAssignment) -> None:
    """End a grant now (kept as history with who and when; never deleted, ACL-06)."""
    assignment = (
        RoleAssignment.objects.select_for_update().select_related("role").get(pk=assignment.pk)
    )
    if assignment.revoked_at is not None:
        raise ActionRefused("このロール付与はすでに取り消されています。")
    assignment.revoked_at = clock.now()
    assignment.revoked_by = actor_user(actor)
    assignment.save(update_fields=["revoked_at", "revoked_by"])
    grants.forget(assignment.user)
    audit.record(
        audit.Event.PERMISSION_CHANGE,
        actor,
        user_subject(assignment.user),
        function=ASSIGN_ROLES,
        action="revoke",
        assignment=assignment.pk,
        role=assignment.role.code,
        scope_kind=assignment.scope_kind,
        scope_value=assignment.scope_value,
    )


@transaction.atomic
def update_institution(actor: Any, institution: Institution, **fields: Any) -> list[str]:
    """Change an institution's contact details; return the names of the fields changed.

    The caller checks the object scope (a clinic edits only itself, ACL-02). The audit event
    names the fields, not their values: a contact name is a person's name.
    """
    unknown = set(fields) - set(INSTITUTION_FIELDS)
    if unknown:
        raise ActionRefused("変更できない項目が含まれています。")
    changed = [
        name for name, value in fields.items() if getattr(institution, name) != (value or "")
    ]
    for name in changed:
        setattr(institution, name, fields[name] or "")
    if changed:
        institution.save(update_fields=changed)
        audit.record(
            audit.Event.UPDATE,
            actor,
            audit.Subject("institution", institution.code),
            function=EDIT_INSTITUTION,
            action="update_institution",
            fields=changed,
        )
    return changed
