"""The first administrator of a new installation: created once, password mailed, never shown."""

from __future__ import annotations

import io

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from kenshin.accounts.models import RoleAssignment, User

pytestmark = pytest.mark.django_db


def test_bootstrap_admin_mails_the_password_and_grants_the_role(settings):
    from kenshin.accounts import testing

    testing.ensure_standard_roles()
    out = io.StringIO()
    call_command("accounts", "bootstrap-admin", "admin1", email="admin1@example.lg.jp", stdout=out)
    user = User.objects.get(username="admin1")
    assert RoleAssignment.objects.filter(user=user, role__code="system_admin").exists()
    assert user.has_perm("accounts.manage_users")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["admin1@example.lg.jp"]
    # the operator sees no password: nothing in the output looks like the mailed one
    mailed = mail.outbox[0].body
    assert all(word not in out.getvalue() for word in mailed.split() if len(word) >= 12)
    assert user.temp_password_expires_at is not None


def test_bootstrap_admin_is_refused_once_two_administrators_exist(make_user):
    """Two, not one: an administrator cannot make another administrator alone (separation
    of duties), so the operator creates the first two."""
    make_user("kanri1", roles=["system_admin"])
    call_command("accounts", "bootstrap-admin", "admin2", email="a2@example.lg.jp")
    assert User.objects.get(username="admin2").has_perm("accounts.manage_users")
    with pytest.raises(CommandError, match="すでに2人以上います"):
        call_command("accounts", "bootstrap-admin", "admin3", email="a3@example.lg.jp")
    assert not User.objects.filter(username="admin3").exists()
