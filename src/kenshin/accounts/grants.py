"""Which functions a user holds today, from role assignments (the only source of permissions).

Why one module: the permission backend, the menu, the audit actor's role list and the access
review must agree on "what may this person do now"; they all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from kenshin.accounts.models import RoleAssignment
from kenshin.core import clock, permissions

_CACHE_ATTR = "_kenshin_grants"


@dataclass(frozen=True)
class Grant:
    """One active grant: a function, narrowed to a scope or not."""

    function: str
    role_code: str
    role_name: str
    scope_kind: str
    scope_value: str
    emergency: bool


def in_force_q(prefix: str = "") -> Q:
    """The condition "this assignment is in force now", reusable from another model's query.

    Dates are the business (JST) date from core.clock: a grant "until 31 March" holds for the
    whole of that day in Kure, whatever the server's time zone. ``valid_to`` is inclusive;
    ``expires_at`` (break-glass) is exclusive, to the second.
    """
    now = clock.now()
    today = clock.today()
    return (
        Q(**{f"{prefix}revoked_at__isnull": True, f"{prefix}valid_from__lte": today})
        & (Q(**{f"{prefix}valid_to__isnull": True}) | Q(**{f"{prefix}valid_to__gte": today}))
        & (Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": now}))
    )


def active_assignments(user: Any):
    """Assignments in force now: started, not ended, not revoked, not expired."""
    return RoleAssignment.objects.filter(in_force_q(), user_id=user.pk).select_related("role")


def _functions_of(assignment: RoleAssignment) -> list[str]:
    """The function codes an assignment grants, ignoring anything that is not a code string.

    Why so careful: ``Role.functions`` is JSON edited as data; a stray string would otherwise be
    iterated character by character. An emergency role counts only through a break-glass
    grant (one with ``expires_at``): a permanent emergency assignment slipped in through the
    database grants nothing (BG-01).
    """
    role = assignment.role
    if role.is_emergency and assignment.expires_at is None:
        return []
    functions = role.functions if isinstance(role.functions, list) else []
    return [code for code in functions if isinstance(code, str)]


def scope_applies(code: str, scope_kind: str) -> bool:
    """Can a grant narrowed to ``scope_kind`` authorise ``code`` at all?

    Only when the function declares that scope kind (``core.permissions.declare(scopes=)``).
    Why: a function that cannot tell the scope of its objects (resident search and view
    declare none) would otherwise treat "保健師, 胃がん検診だけ" as "保健師, everything" — the
    narrowing the administrator meant would silently be a full grant (ACL-02). An unscoped
    grant applies to every function; an undeclared code never applies to a scoped grant.
    """
    if not scope_kind:
        return True
    return permissions.is_declared(code) and scope_kind in permissions.get(code).scopes


def grants_of(user: Any) -> list[Grant]:
    """Every (function, scope) the user holds now. Cached on the user object for one request.

    A scoped assignment yields only the functions that support its scope kind
    (``scope_applies``); the others are not held at all, so ``allows``, ``scopes_for``, the
    menu and the audit role list agree.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    grants = [
        Grant(code, a.role.code, a.role.name, a.scope_kind, a.scope_value, a.role.is_emergency)
        for a in active_assignments(user)
        for code in _functions_of(a)
        # A scoped grant without a value would match objects with an empty scope: ignore it.
        if (not a.scope_kind or a.scope_value) and scope_applies(code, a.scope_kind)
    ]
    setattr(user, _CACHE_ATTR, grants)
    return grants


def forget(user: Any) -> None:
    """Drop the per-request cache after a change of assignments."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def allows(user: Any, code: str, obj: Any = None) -> bool:
    """True if some active grant covers ``code`` (and, for an object, its scope).

    A grant without scope covers every object. A scoped grant counts only for functions that
    declare its scope kind (``scope_applies``), and covers an object only when the object's
    ``kenshin_scope()`` has the same value for that scope kind; an object that cannot say its
    scope is not covered by a scoped grant (deny by default, ACL-02). Without an object, a
    scoped grant of a function that supports the scope allows it (lists are then filtered by
    ``scopes_for``).
    """
    for g in grants_of(user):
        if g.function != code:
            continue
        if not g.scope_kind or obj is None:
            return True
        scope_of = getattr(obj, "kenshin_scope", None)
        if callable(scope_of) and str(scope_of().get(g.scope_kind, "")) == g.scope_value:
            return True
    return False


def scopes_for(user: Any, code: str) -> list[tuple[str, str]] | None:
    """The scopes under which ``user`` holds ``code``: None means unrestricted, [] means none.

    Only scopes the function supports are listed (``grants_of`` drops the others), so a list
    filtered by these scopes is never wider than the administrator meant.
    """
    scopes: list[tuple[str, str]] = []
    for g in grants_of(user):
        if g.function == code:
            if not g.scope_kind:
                return None
            scopes.append((g.scope_kind, g.scope_value))
    return scopes


def role_labels(user: Any) -> str:
    """ "保健師, 事務[医療機関:3410000001]" — stored with every audit event."""
    seen: list[str] = []
    for g in grants_of(user):
        label = g.role_name + (f"[{g.scope_kind}:{g.scope_value}]" if g.scope_kind else "")
        if label not in seen:
            seen.append(label)
    return ", ".join(seen)


def has_break_glass(user: Any) -> bool:
    """True while an emergency (break-glass) grant is in force: every action is flagged."""
    return any(g.emergency for g in grants_of(user))
