"""Administration screens: users and their roles, institutions, break-glass, the access review.

Every view declares its function (core.permissions.requires), every change is a POST that goes
through accounts.actions, and every sensitive POST carries a fresh TOTP code checked with
accounts.stepup before anything changes (ACL-05). A clinic user reaches only their own
institution (object scope, ACL-02).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kenshin.accounts import access_review, actions, breakglass, grants, stepup
from kenshin.accounts.admin_forms import (
    AssignRoleForm,
    BreakGlassRequestForm,
    CreateUserForm,
    InstitutionForm,
    StepUpForm,
)
from kenshin.accounts.models import (
    BreakGlass,
    BreakGlassStatus,
    Institution,
    Role,
    RoleAssignment,
    UserSession,
)
from kenshin.accounts.permissions import (
    ASSIGN_ROLES,
    BREAK_GLASS,
    EDIT_INSTITUTION,
    END_SESSIONS,
    MANAGE_USERS,
    VIEW_INSTITUTION,
)
from kenshin.core import audit, clock, permissions
from kenshin.core.permissions import check_object, requires

User = get_user_model()
# Declared by the audit app (audit/permissions.py); the report reads accounts tables, so it
# lives here. A string, not an import: apps meet through services and the registry.
ACCESS_REVIEW = "audit.access_review"

# The plain step-up actions on the user page: name -> (function, action, done message).
USER_ACTIONS: dict[str, tuple[str, Any, str]] = {
    "reset": (MANAGE_USERS, actions.start_password_reset, "仮パスワードを本人宛てに送りました。"),
    "force_change": (
        MANAGE_USERS,
        actions.force_password_change,
        "次回ログイン時にパスワードの変更を求めます。",
    ),
    "disable": (
        MANAGE_USERS,
        actions.disable_user,
        "アカウントを無効にし、セッションを終了しました。",
    ),
    "enable": (MANAGE_USERS, actions.enable_user, "アカウントを有効にしました。"),
    "end_sessions": (END_SESSIONS, actions.end_sessions, "セッションを終了しました。"),
    "reset_mfa": (
        MANAGE_USERS,
        actions.reset_second_factor,
        "認証アプリの登録を取り消しました。次のログインで登録し直します。",
    ),
}


def _verified(request: HttpRequest, form: Any, function: str) -> bool:
    """Valid form and a correct fresh TOTP code; otherwise the form carries the error.

    The code is checked last, so a typo elsewhere does not spend the code.
    """
    if not form.is_valid():
        return False
    if not stepup.verify(request, form.cleaned_data["code"], function=function):
        form.add_error("code", stepup.STEP_UP_ERROR)
        return False
    return True


# --- users -------------------------------------------------------------------------------------


@requires(MANAGE_USERS)
@require_GET
def user_list(request: HttpRequest) -> HttpResponse:
    """Every account with its roles in force and last sign-in (two queries)."""
    users = User.objects.order_by("username").prefetch_related(
        Prefetch(
            "assignments",
            queryset=RoleAssignment.objects.filter(grants.in_force_q()).select_related("role"),
            to_attr="active_assignments",
        )
    )
    return render(request, "accounts/admin/user_list.html", {"users": users})


@requires(MANAGE_USERS)
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    form = CreateUserForm(request.POST or None)
    error = ""
    if request.method == "POST" and _verified(request, form, MANAGE_USERS):
        data = form.cleaned_data
        try:
            user = actions.create_user(
                request,
                data["username"],
                data["display_name"],
                data["email"],
                data["department"],
                data["institution"],
            )
        except actions.ActionRefused as exc:
            error = str(exc)
        else:
            messages.success(request, "利用者を登録し、仮パスワードを本人宛てに送りました。")
            return redirect("accounts:admin_user", pk=user.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "accounts/admin/user_create.html", {"form": form, "error": error}, status=status
    )


def _user_page(
    request: HttpRequest, target: Any, *, error: str = "", status: int = 200, **bound: Any
) -> HttpResponse:
    """The user page, with any bound (failed) form put back in its place."""
    action_forms = {name: StepUpForm(prefix=name) for name in USER_ACTIONS}
    action_forms.update({k: v for k, v in bound.items() if k in USER_ACTIONS})
    assignments = list(
        RoleAssignment.objects.filter(user=target)
        .select_related("role", "granted_by", "revoked_by")
        .order_by("-valid_from", "-pk")
    )
    in_force = set(
        RoleAssignment.objects.filter(grants.in_force_q(), user=target).values_list("pk", flat=True)
    )
    today = clock.today()
    rows = [
        (
            a,
            "有効"
            if a.pk in in_force
            else "開始前"
            if a.revoked_at is None and a.valid_from > today
            else "終了",
        )
        for a in assignments
    ]
    context = {
        "target": target,
        "rows": rows,
        "current": [r for r in rows if r[1] != "終了"],
        "past": [r for r in rows if r[1] == "終了"],
        "session_count": UserSession.objects.filter(user=target).count(),
        "assign_form": bound.get("assign")
        or AssignRoleForm(prefix="assign", initial={"valid_from": today}),
        "revoke_form": StepUpForm(prefix="revoke"),
        "action_forms": action_forms,
        "error": error,
    }
    return render(request, "accounts/admin/user_detail.html", context, status=status)


@requires(MANAGE_USERS)
@require_GET
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_page(request, get_object_or_404(User, pk=pk))


@requires(ASSIGN_ROLES)
@require_POST
def user_assign(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    form = AssignRoleForm(request.POST, prefix="assign")
    if not _verified(request, form, ASSIGN_ROLES):
        return _user_page(request, target, status=400, assign=form)
    data = form.cleaned_data
    try:
        actions.assign_role(
            request,
            target,
            data["role"],
            data["scope_kind"],
            data["scope_value"],
            data["valid_from"],
            data["valid_to"],
        )
    except actions.ActionRefused as exc:
        return _user_page(request, target, status=400, error=str(exc))
    messages.success(request, f"ロール「{data['role'].name}」を付与しました。")
    return redirect("accounts:admin_user", pk=target.pk)


@requires(ASSIGN_ROLES)
@require_POST
def user_revoke(request: HttpRequest, pk: int, assignment_id: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    assignment = get_object_or_404(RoleAssignment, pk=assignment_id, user=target)
    form = StepUpForm(request.POST, prefix="revoke")
    if not _verified(request, form, ASSIGN_ROLES):
        return _user_page(request, target, status=400, error=_form_error(form))
    try:
        actions.revoke_assignment(request, assignment)
    except actions.ActionRefused as exc:
        return _user_page(request, target, status=400, error=str(exc))
    messages.success(request, f"ロール「{assignment.role.name}」を取り消しました。")
    return redirect("accounts:admin_user", pk=target.pk)


def _form_error(form: Any) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@requires(MANAGE_USERS)
@require_POST
def user_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Reset, force a password change, disable, enable (and, for end_sessions, see below)."""
    return _run_user_action(request, pk, action)


@requires(END_SESSIONS)
@require_POST
def user_end_sessions(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_user_action(request, pk, "end_sessions")


def _run_user_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    if action not in USER_ACTIONS:
        raise PermissionDenied(action)
    function, do, done = USER_ACTIONS[action]
    if not request.user.has_perm(function):
        raise PermissionDenied(function)
    form = StepUpForm(request.POST, prefix=action)
    if not _verified(request, form, function):
        return _user_page(request, target, status=400, **{action: form})
    try:
        do(request, target)
    except actions.ActionRefused as exc:
        return _user_page(request, target, status=400, error=str(exc))
    messages.success(request, done)
    return redirect("accounts:admin_user", pk=target.pk)


# --- roles -------------------------------------------------------------------------------------


@requires(ASSIGN_ROLES)
@require_GET
def role_list(request: HttpRequest) -> HttpResponse:
    """Each role with the functions it grants, labelled from the registry."""
    roles = []
    for role in Role.objects.order_by("id"):
        functions = []
        for code in role.functions or []:
            if permissions.is_declared(code):
                functions.append((code, permissions.get(code).label, permissions.get(code).step_up))
            else:
                functions.append((code, "（未定義の機能：付与されても使えません）", False))
        roles.append((role, functions))
    return render(request, "accounts/admin/role_list.html", {"roles": roles})


# --- institutions (object scope, ACL-02) ---------------------------------------------------------


def _institutions():
    return Institution.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)


def _institution_for(request: HttpRequest, pk: int, function: str) -> Institution:
    """The institution if this user's grant of ``function`` covers it; otherwise 403, recorded."""
    institution = get_object_or_404(_institutions(), pk=pk)
    check_object(request, function, institution, audit.Subject("institution", institution.code))
    return institution


@requires(VIEW_INSTITUTION)
@require_GET
def institution_list(request: HttpRequest) -> HttpResponse:
    """All institutions for an unscoped grant; a clinic user sees only their own."""
    rows = _institutions().order_by("code")
    scopes = grants.scopes_for(request.user, VIEW_INSTITUTION)
    if scopes is not None:
        rows = rows.filter(code__in=[value for kind, value in scopes if kind == "clinic"])
    return render(request, "accounts/admin/institution_list.html", {"institutions": rows})


@requires(VIEW_INSTITUTION)
@require_GET
def institution_detail(request: HttpRequest, pk: int) -> HttpResponse:
    institution = _institution_for(request, pk, VIEW_INSTITUTION)
    can_edit = request.user.has_perm(EDIT_INSTITUTION, institution)
    return render(
        request,
        "accounts/admin/institution_detail.html",
        {"institution": institution, "can_edit": can_edit},
    )


@requires(EDIT_INSTITUTION)
@require_http_methods(["GET", "POST"])
def institution_edit(request: HttpRequest, pk: int) -> HttpResponse:
    institution = _institution_for(request, pk, EDIT_INSTITUTION)
    # The form edits a copy, so a failed validation never leaves the object half-changed.
    form = InstitutionForm(
        request.POST or None, instance=Institution.objects.get(pk=institution.pk)
    )
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            actions.update_institution(
                request,
                institution,
                **{f: form.cleaned_data[f] for f in actions.INSTITUTION_FIELDS},
            )
        except actions.ActionRefused as exc:
            error = str(exc)
        else:
            messages.success(request, "医療機関の情報を更新しました。")
            return redirect("accounts:institution", pk=institution.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "accounts/admin/institution_edit.html",
        {"institution": institution, "form": form, "error": error},
        status=status,
    )


# --- break-glass (BG-01) -----------------------------------------------------------------------


def _breakglass_page(
    request: HttpRequest,
    *,
    form: Any = None,
    error: str = "",
    status: int = 200,
    approve: Any = None,
) -> HttpResponse:
    recent = list(
        BreakGlass.objects.select_related(
            "user", "requested_by", "decided_by", "assignment"
        ).order_by("-requested_at")[:50]
    )
    pending = [b for b in recent if b.status == BreakGlassStatus.REQUESTED]
    active = [b for b in recent if breakglass.in_force(b)]
    return render(
        request,
        "accounts/admin/breakglass.html",
        {
            "form": form or BreakGlassRequestForm(prefix="bg"),
            "approve_form": approve or StepUpForm(prefix="approve"),
            "pending": pending,
            "active": active,
            "recent": recent,
            "max_minutes": breakglass.MAX_MINUTES,
            "error": error,
        },
        status=status,
    )


@requires(BREAK_GLASS)
@require_GET
def breakglass_list(request: HttpRequest) -> HttpResponse:
    return _breakglass_page(request)


@requires(BREAK_GLASS)
@require_POST
def breakglass_request(request: HttpRequest) -> HttpResponse:
    form = BreakGlassRequestForm(request.POST, prefix="bg")
    if not _verified(request, form, BREAK_GLASS):
        return _breakglass_page(request, form=form, status=400)
    data = form.cleaned_data
    try:
        breakglass.request(request, data["user"], data["reason"], data["minutes"])
    except actions.ActionRefused as exc:
        return _breakglass_page(request, form=form, error=str(exc), status=400)
    messages.success(request, "緊急アクセスを申請しました。別の管理者の承認で有効になります。")
    return redirect("accounts:breakglass")


def _breakglass_step(request: HttpRequest, pk: int, step: str, do: Any, done: str) -> HttpResponse:
    """Approve, reject or end one request: a fresh code, then the action, then the list."""
    bg = get_object_or_404(BreakGlass, pk=pk)
    form = StepUpForm(request.POST, prefix=step)
    if not _verified(request, form, BREAK_GLASS):
        bound = {"approve": form} if step == "approve" else {}
        return _breakglass_page(request, error=_form_error(form), status=400, **bound)
    try:
        do(request, bg)
    except actions.ActionRefused as exc:
        return _breakglass_page(request, error=str(exc), status=400)
    messages.success(request, done)
    return redirect("accounts:breakglass")


@requires(BREAK_GLASS)
@require_POST
def breakglass_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _breakglass_step(
        request,
        pk,
        "approve",
        breakglass.approve,
        "緊急アクセスを承認しました。点検タスクが作成されました。",
    )


@requires(BREAK_GLASS)
@require_POST
def breakglass_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _breakglass_step(request, pk, "reject", breakglass.reject, "申請を却下しました。")


@requires(BREAK_GLASS)
@require_POST
def breakglass_end(request: HttpRequest, pk: int) -> HttpResponse:
    return _breakglass_step(request, pk, "end", breakglass.end, "緊急アクセスを終了しました。")


# --- access review (ACL-06) --------------------------------------------------------------------


def _review_page(request: HttpRequest, form: Any = None, status: int = 200) -> HttpResponse:
    return render(
        request,
        "accounts/admin/access_review.html",
        {
            "report": access_review.build(),
            "form": form or StepUpForm(prefix="export"),
            "ending_days": access_review.ENDING_WITHIN.days,
        },
        status=status,
    )


@requires(ACCESS_REVIEW)
@require_GET
@never_cache
def access_review_page(request: HttpRequest) -> HttpResponse:
    return _review_page(request)


@requires(ACCESS_REVIEW)
@require_POST
@never_cache
def access_review_csv(request: HttpRequest) -> HttpResponse:
    """The report as CSV: step-up first, then an EXPORT event with the row count."""
    form = StepUpForm(request.POST, prefix="export")
    if not _verified(request, form, ACCESS_REVIEW):
        return _review_page(request, form=form, status=400)
    report = access_review.build()
    body = access_review.to_csv(report)
    audit.record(
        audit.Event.EXPORT,
        request,
        function=ACCESS_REVIEW,
        report="access_review",
        rows=access_review.row_count(report),
    )
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="access_review_{report.on.strftime("%Y%m%d")}.csv"'
    )
    return response
