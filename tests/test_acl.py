"""ACL-01: every route declares its access, deny by default — checked statically and at run time.

Why both: the static walk catches a view that forgot its declaration before anyone requests it;
the run-time tests prove the gate and the declarations actually refuse (a declaration that
grants by mistake would pass a static check). A new page reachable without the second factor
must be added to the allow-list below — a change a reviewer sees.

Object scope (ACL-02), step-up (ACL-05) and break-glass (BG-01) are tested beside their code:
src/kenshin/accounts/tests/test_admin.py and test_breakglass.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver, include, path

from kenshin.core import permissions

# Reviewed list of pages reachable before full sign-in (password + TOTP).
PUBLIC_ROUTES = {
    "accounts:login",
}
PRE_MFA_ROUTES = {
    "accounts:mfa_verify",
    "accounts:mfa_enrol",
    "accounts:recovery_codes",
    "accounts:logout",
    "accounts:password_change",
}
# Views outside our code the gate lets through (the demo's static file server).
EXTERNAL_VIEWS = {"django.contrib.staticfiles.views.serve", "django.views.static.serve"}

_DUMMY = {
    "int": "1",
    "str": "x",
    "slug": "x",
    "path": "x",
    "uuid": "00000000-0000-0000-0000-000000000000",
}
_PARAM = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    route: str  # as written in the URL conf, e.g. "accounts/admin/users/<int:pk>/"
    name: str  # "namespace:name"
    view: Any
    regex: bool

    @property
    def access(self) -> permissions.Access | None:
        return permissions.access_of(self.view)

    @property
    def dotted(self) -> str:
        return f"{getattr(self.view, '__module__', '')}.{getattr(self.view, '__name__', '')}"

    def url(self) -> str:
        """A concrete URL with dummy arguments (ids that need not exist: the gate comes first)."""
        return "/" + _PARAM.sub(lambda m: _DUMMY.get(m.group("conv") or "str", "x"), self.route)


def walk(patterns: list, prefix: str = "", namespace: tuple[str, ...] = ()) -> Iterator[Route]:
    """Every URL pattern reachable from ``patterns``, through nested includes."""
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = namespace + ((p.namespace,) if p.namespace else ())
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            regex = not hasattr(p.pattern, "converters") or str(p.pattern).startswith("^")
            name = ":".join((*namespace, p.name or f"<unnamed {prefix}{p.pattern}>"))
            yield Route(prefix + str(p.pattern), name, p.callback, regex)


ROUTES = list(walk(get_resolver("kenshin.urls").url_patterns))
FUNCTION_ROUTES = [r for r in ROUTES if r.access and r.access.kind == permissions.FUNCTION]


def test_the_walk_sees_the_routes_of_every_app():
    names = {r.name.split(":")[0] for r in ROUTES}
    assert {"accounts", "audit", "residents", "web"} <= names
    assert len(FUNCTION_ROUTES) >= 10


def test_every_route_declares_its_access():
    missing = [
        f"{r.route} ({r.name}, {r.dotted})"
        for r in ROUTES
        if r.access is None and r.dotted not in EXTERNAL_VIEWS
    ]
    assert not missing, "権限の宣言がない画面: " + ", ".join(missing)


def test_every_declared_function_is_registered():
    unknown = [
        f"{r.name}: {r.access.function}"
        for r in FUNCTION_ROUTES
        if not permissions.is_declared(r.access.function)
    ]
    assert not unknown, "登録されていない機能コード: " + ", ".join(unknown)


def test_pages_reachable_before_full_sign_in_are_the_reviewed_ones():
    public = {r.name for r in ROUTES if r.access and r.access.kind == permissions.PUBLIC}
    pre_mfa = {r.name for r in ROUTES if r.access and r.access.kind == permissions.PRE_MFA}
    assert public == PUBLIC_ROUTES
    assert pre_mfa == PRE_MFA_ROUTES
    for r in ROUTES:
        if r.access and r.access.kind in (permissions.PUBLIC, permissions.PRE_MFA):
            assert r.access.reason.strip(), f"{r.name}: 理由のない公開画面"


def test_no_routes_written_as_regular_expressions():
    """Regex routes cannot be walked with dummy arguments; keep to path() so ACL-01 covers all."""
    assert not [r.name for r in ROUTES if r.regex]


@pytest.mark.parametrize("superuser", [False, True], ids=["no_roles", "superuser_no_roles"])
def test_signed_in_user_without_roles_is_refused_every_function(make_user, signed_in, superuser):
    """Deny by default, and ``is_superuser`` grants nothing: only roles do."""
    user = make_user("nobody1", is_superuser=superuser, is_staff=superuser)
    client = signed_in(user)
    opened = []
    for r in FUNCTION_ROUTES:
        url = r.url()
        statuses = (client.get(url).status_code, client.post(url, {}).status_code)
        if 403 not in statuses or any(s not in (403, 405) for s in statuses):
            opened.append(f"{url} {statuses}")
    assert not opened, "権限なしで拒否されなかった画面: " + ", ".join(opened)


def test_anonymous_visitor_reaches_only_public_pages(client):
    for r in ROUTES:
        if r.access is None or r.access.kind == permissions.PUBLIC:
            continue
        response = client.get(r.url())
        assert response.status_code in (302, 403), r.name
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/"), r.name


# --- the gate at run time: a view that declares nothing --------------------------------------


def undeclared(request):
    return HttpResponse("誰でも見えてしまう画面")


def declared_with_unknown_code_fails_at_import():
    with pytest.raises(KeyError):
        permissions.requires("nothing.such")(undeclared)


urlpatterns = [
    path("undeclared/", undeclared, name="undeclared"),
    path("", include("kenshin.urls")),
]


def test_gate_refuses_an_undeclared_view_even_for_a_full_administrator(
    make_user, signed_in, settings
):
    settings.ROOT_URLCONF = __name__
    admin = make_user("admin1", roles=["system_admin", "kacho"], is_superuser=True)
    response = signed_in(admin).get("/undeclared/")
    assert response.status_code == 403
    assert "誰でも見えてしまう画面" not in response.content.decode()


def test_an_undeclared_function_code_fails_at_import():
    declared_with_unknown_code_fails_at_import()


@pytest.mark.parametrize("scope_kind", ["programme", "department", "clinic"])
def test_a_scoped_grant_authorises_only_functions_that_declare_its_scope(make_user, scope_kind):
    """ACL-02: "this role, but only for X" never becomes "this role, everywhere".

    A role holding every declared function, granted with a scope: exactly the functions that
    declare that scope kind are held (and only under that scope); the rest are not held at all.
    """
    from datetime import date

    from django.contrib.auth import get_user_model

    from kenshin.accounts import grants
    from kenshin.accounts.models import Role, RoleAssignment

    everything = [f.code for f in permissions.all_functions()]
    role = Role.objects.create(code="everything", name="全機能", functions=everything)
    user = make_user("scoped1")
    RoleAssignment.objects.create(
        user=user, role=role, scope_kind=scope_kind, scope_value="x1", valid_from=date(2020, 1, 1)
    )
    user = get_user_model().objects.get(pk=user.pk)
    for function in permissions.all_functions():
        supports = scope_kind in function.scopes
        assert user.has_perm(function.code) is supports, function.code
        assert grants.scopes_for(user, function.code) == (
            [(scope_kind, "x1")] if supports else []
        ), function.code
