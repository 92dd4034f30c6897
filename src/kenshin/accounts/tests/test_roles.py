"""Grants from role assignments: dates, expiry, revocation, inactive users, scopes (ACL-01/02)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kenshin.accounts import grants
from kenshin.accounts.models import Institution, Role, RoleAssignment
from kenshin.core import clock

TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=clock.JST)


def _fresh(user):
    """The same user as a new request would load it (no cached grants)."""
    return get_user_model().objects.get(pk=user.pk)


def _assign(user, role_code, **kw):
    kw.setdefault("valid_from", date(2026, 4, 1))
    return RoleAssignment.objects.create(user=user, role=Role.objects.get(code=role_code), **kw)


@pytest.fixture
def clerk(make_user):
    return make_user("jimu1")


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "held"),
    [
        (date(2026, 6, 15), None, True),  # starts today
        (date(2026, 6, 16), None, False),  # starts tomorrow
        (date(2026, 4, 1), date(2026, 6, 15), True),  # ends today (inclusive)
        (date(2026, 4, 1), date(2026, 6, 14), False),  # ended yesterday
    ],
)
def test_grant_holds_between_its_dates_inclusive(clerk, valid_from, valid_to, held):
    _assign(clerk, "jimu", valid_from=valid_from, valid_to=valid_to)
    with clock.frozen(NOW):
        assert _fresh(clerk).has_perm("residents.view") is held


def test_revoked_grant_gives_nothing(clerk):
    _assign(clerk, "jimu", revoked_at=NOW - timedelta(minutes=1))
    with clock.frozen(NOW):
        assert not _fresh(clerk).has_perm("residents.view")


def test_expired_grant_ends_to_the_second(clerk):
    _assign(clerk, "jimu", expires_at=NOW + timedelta(seconds=1))
    with clock.frozen(NOW):
        assert _fresh(clerk).has_perm("residents.view")
    with clock.frozen(NOW + timedelta(seconds=1)):
        assert not _fresh(clerk).has_perm("residents.view")


def test_inactive_user_holds_nothing(clerk):
    _assign(clerk, "jimu")
    clerk.is_active = False
    clerk.save()
    with clock.frozen(NOW):
        user = _fresh(clerk)
        assert not user.has_perm("residents.view")
        assert grants.grants_of(user) == []
        assert not user.has_module_perms("residents")


def test_superuser_without_roles_is_granted_nothing(make_user):
    boss = make_user("root", is_superuser=True, is_staff=True)
    assert not _fresh(boss).has_perm("accounts.manage_users")
    assert not _fresh(boss).has_perm("residents.view")
    assert _fresh(boss).get_all_permissions() == set()


def test_with_perm_lists_role_holders_not_superusers(make_user):
    make_user("root", is_superuser=True)
    admin = make_user("admin1", roles=["system_admin"])
    users = get_user_model()._meta.default_manager.with_perm(
        "accounts.manage_users", backend="kenshin.accounts.backends.RoleBackend"
    )
    assert list(users) == [admin]


def test_permanent_emergency_assignment_grants_nothing(clerk):
    """The emergency role counts only as a break-glass grant (with expires_at)."""
    _assign(clerk, "emergency")
    with clock.frozen(NOW):
        user = _fresh(clerk)
        assert not user.has_perm("residents.view")
        assert not grants.has_break_glass(user)


def test_malformed_role_functions_grant_nothing(clerk):
    role = Role.objects.create(code="odd", name="壊れたロール", functions="residents.view")
    RoleAssignment.objects.create(user=clerk, role=role, valid_from=date(2020, 1, 1))
    assert not _fresh(clerk).has_perm("residents.view")
    assert not _fresh(clerk).has_perm("r")


def test_scoped_grant_covers_only_its_own_institution(make_user):
    own = Institution.objects.create(municipality_code="342025", code="3410000001", name="甲医院")
    other = Institution.objects.create(municipality_code="342025", code="3410000002", name="乙医院")
    user = make_user("clinic1", roles=["clinic"], scope=("clinic", own.code), institution=own)
    user = _fresh(user)
    assert user.has_perm("accounts.view_institution")  # lists are filtered by scope
    assert user.has_perm("accounts.view_institution", own)
    assert not user.has_perm("accounts.view_institution", other)
    assert not user.has_perm("accounts.view_institution", object())  # no scope: denied
    assert grants.scopes_for(user, "accounts.view_institution") == [("clinic", own.code)]
    assert grants.scopes_for(user, "accounts.manage_users") == []


def test_scoped_grant_with_empty_value_is_ignored(clerk):
    _assign(clerk, "clinic", scope_kind="clinic", scope_value="")
    blank = Institution(municipality_code="342025", code="", name="コードなし")
    with clock.frozen(NOW):
        assert not _fresh(clerk).has_perm("accounts.view_institution", blank)


def test_unscoped_grant_covers_every_object(make_user):
    staff = make_user("kacho1", roles=["kacho"])
    other = Institution.objects.create(municipality_code="342025", code="3410000002", name="乙医院")
    assert _fresh(staff).has_perm("accounts.view_institution", other)
    assert grants.scopes_for(_fresh(staff), "accounts.view_institution") is None


def test_grants_are_one_query_and_cached_on_the_user(make_user):
    user = _fresh(make_user("kacho1", roles=["kacho", "hokenshi"]))
    with CaptureQueriesContext(connection) as queries:
        for code in ("residents.view", "audit.review", "accounts.manage_users"):
            user.has_perm(code)
        grants.role_labels(user)
        grants.has_break_glass(user)
    assert len(queries) == 1


def test_role_labels_name_roles_and_scopes(make_user):
    Institution.objects.create(municipality_code="342025", code="3410000001", name="甲医院")
    user = make_user("clinic1", roles=["clinic"], scope=("clinic", "3410000001"))
    assert grants.role_labels(_fresh(user)) == "医療機関[clinic:3410000001]"
