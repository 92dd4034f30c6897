"""The permission registry: every function of the system, declared by the app that owns it.

Why a registry in core: ASVS V8.3.1 asks for one authorisation mechanism for everything, and
ACL-01 asks that nothing is reachable without a declared permission. Each app declares its
functions (``residents.view``, ``screening.enter_result`` …) in its ``permissions.py``; roles in
``accounts`` are data that grant sets of these codes. A view says which function it performs
with :func:`requires`; a view that serves everyone signed in or nobody in particular says so with
:func:`public` or :func:`signed_in`. The gate middleware (``accounts``) refuses every view that
declares nothing — deny by default, at run time, not only in a test.

The check itself is Django's ``user.has_perm(code, obj)``; the ``accounts`` authentication
backend answers it from role assignments, so core never imports a business app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied

V = TypeVar("V", bound=Callable[..., Any])

# What a view declares, stored as an attribute on the view function.
ACCESS_ATTR = "kenshin_access"


@dataclass(frozen=True)
class Function:
    """One thing a user can be allowed to do."""

    code: str  # "<app>.<verb>", e.g. "residents.view"
    label: str  # Japanese, shown in the role editor and the access review
    step_up: bool = False  # needs a fresh TOTP (ACL-05)
    scopes: tuple[str, ...] = ()  # scope kinds that can narrow a grant: "programme", "clinic"…


@dataclass(frozen=True)
class Access:
    """What a view requires. ``kind`` is one of PUBLIC, SIGNED_IN, PRE_MFA or FUNCTION."""

    kind: str
    function: str = ""
    reason: str = ""
    shows_mynumber: bool = False


PUBLIC = "public"  # no sign-in at all (login page, static health check)
PRE_MFA = "pre_mfa"  # signed in with a password, before the second factor (enrolment, logout)
SIGNED_IN = "signed_in"  # any fully signed-in user (home, own password)
FUNCTION = "function"  # a declared function, checked with has_perm

_REGISTRY: dict[str, Function] = {}


def declare(code: str, label: str, *, step_up: bool = False, scopes: tuple[str, ...] = ()) -> str:
    """Register one function; called at import of each app's ``permissions.py``.

    Returns the code so that modules can keep it as a constant.
    """
    if "." not in code:
        raise ValueError(f"function code must be '<app>.<verb>': {code!r}")
    existing = _REGISTRY.get(code)
    new = Function(code, label, step_up, tuple(scopes))
    if existing is not None and existing != new:
        raise ValueError(f"function {code!r} declared twice with different meanings")
    _REGISTRY[code] = new
    return code


def get(code: str) -> Function:
    """The declared function, or KeyError: a typo in a view must not silently grant nothing."""
    return _REGISTRY[code]


def all_functions() -> list[Function]:
    """Every declared function, sorted by code (for role editors and reviews)."""
    return [_REGISTRY[c] for c in sorted(_REGISTRY)]


def is_declared(code: str) -> bool:
    return code in _REGISTRY


def _mark(view: V, access: Access) -> V:
    setattr(view, ACCESS_ATTR, access)
    return view


def requires(code: str, *, shows_mynumber: bool = False) -> Callable[[V], V]:
    """Mark a view as performing ``code``; the gate checks ``request.user.has_perm(code)``.

    Object-level checks (a clinic's own records) are the view's job, through
    :func:`check_object`, because only the view knows the object.
    ``shows_mynumber`` shortens the idle timeout to 15 minutes (SESS-01).
    """

    def wrap(view: V) -> V:
        get(code)  # fail at import time on an undeclared code

        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            if not request.user.has_perm(code):
                from kenshin.core import audit

                audit.record(
                    audit.Event.ACCESS_DENIED, request, function=code, result=audit.Result.DENIED
                )
                raise PermissionDenied(code)
            return view(request, *args, **kwargs)

        return _mark(inner, Access(FUNCTION, function=code, shows_mynumber=shows_mynumber))  # type: ignore[return-value]

    return wrap


def public(reason: str) -> Callable[[V], V]:
    """Mark a view as reachable without signing in; the reason is reviewed in ACL-01's test."""

    def wrap(view: V) -> V:
        return _mark(view, Access(PUBLIC, reason=reason))

    return wrap


def pre_mfa(reason: str) -> Callable[[V], V]:
    """Reachable with a password-only session (enrolment, second-factor entry, logout)."""

    def wrap(view: V) -> V:
        return _mark(view, Access(PRE_MFA, reason=reason))

    return wrap


def signed_in(reason: str) -> Callable[[V], V]:
    """Reachable by any fully authenticated user (password + TOTP) without a function."""

    def wrap(view: V) -> V:
        return _mark(view, Access(SIGNED_IN, reason=reason))

    return wrap


def access_of(view: Callable[..., Any]) -> Access | None:
    """What a resolved view declared, or None (which the gate refuses).

    Looks through class-based views (``view_class``) and wrappers (``__wrapped__``).
    """
    seen = view
    for _ in range(10):
        access = getattr(seen, ACCESS_ATTR, None)
        if access is not None:
            return access
        cls = getattr(seen, "view_class", None)
        if cls is not None and getattr(cls, ACCESS_ATTR, None) is not None:
            return getattr(cls, ACCESS_ATTR)
        nxt = getattr(seen, "__wrapped__", None)
        if nxt is None:
            return None
        seen = nxt
    return None


def check_object(request: Any, code: str, obj: Any, subject: Any = None) -> None:
    """Raise PermissionDenied (and record the refusal) unless the user may do ``code`` on ``obj``.

    Objects that can be scoped expose ``kenshin_scope() -> dict[str, str]`` (for example
    ``{"clinic": "3410000001"}``); the backend compares it with the grant's scope (ACL-02).
    ``subject`` names the object in the audit event (a core.audit.Subject).
    """
    if not request.user.has_perm(code, obj):
        from kenshin.core import audit

        audit.record(
            audit.Event.ACCESS_DENIED, request, subject, function=code, result=audit.Result.DENIED
        )
        raise PermissionDenied(code)
