"""Which functions a user holds today, from role assignments (the only source of permissions).

Why one module: the permission backend, the menu, the audit actor's role list and the access
review must agree on "what may this person do now"; they all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from kenshin.accounts.models import RoleAssignment
from kenshin.core import clock

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


def active_assignments(user: Any):
    """Assignments in force now: started, not ended, not revoked, not expired."""
    now = clock.now()
    today = clock.today()
    return (
        RoleAssignment.objects.filter(user_id=user.pk, revoked_at__isnull=True, valid_from__lte=today)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=today))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("role")
    )


def grants_of(user: Any) -> list[Grant]:
    """Every (function, scope) the user holds now. Cached on the user object for one request."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    grants = [
        Grant(code, a.role.code, a.role.name, a.scope_kind, a.scope_value, a.role.is_emergency)
        for a in active_assignments(user)
        for code in a.role.functions
    ]
    setattr(user, _CACHE_ATTR, grants)
    return grants


def forget(user: Any) -> None:
    """Drop the per-request cache after a change of assignments."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def allows(user: Any, code: str, obj: Any = None) -> bool:
    """True if some active grant covers ``code`` (and, for an object, its scope).

    A grant without scope covers every object. A scoped grant covers an object only when the
    object's ``kenshin_scope()`` has the same value for that scope kind; an object that cannot
    say its scope is not covered by a scoped grant (deny by default, ACL-02). Without an
    object, a scoped grant allows the function (lists are then filtered by scope).
    """
    for g in grants_of(user):
        if g.function != code:
            continue
        if not g.scope_kind or obj is None:
            return True
        scope_of = getattr(obj, "kenshin_scope", None)
        if callable(scope_of) and scope_of().get(g.scope_kind) == g.scope_value:
            return True
    return False


def scopes_for(user: Any, code: str) -> list[tuple[str, str]] | None:
    """The scopes under which ``user`` holds ``code``: None means unrestricted, [] means none."""
    scopes: list[tuple[str, str]] = []
    for g in grants_of(user):
        if g.function == code:
            if not g.scope_kind:
                return None
            scopes.append((g.scope_kind, g.scope_value))
    return scopes


def role_labels(user: Any) -> str:
    """"保健師, 事務[医療機関:3410000001]" — stored with every audit event."""
    seen: list[str] = []
    for g in grants_of(user):
        label = g.role_name + (f"[{g.scope_kind}:{g.scope_value}]" if g.scope_kind else "")
        if label not in seen:
            seen.append(label)
    return ", ".join(seen)


def has_break_glass(user: Any) -> bool:
    """True while an emergency (break-glass) grant is in force: every action is flagged."""
    return any(g.emergency for g in grants_of(user))
