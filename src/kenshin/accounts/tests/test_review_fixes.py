"""Findings of the security review, fixed: each test is the reviewer's attack, now refused.

A. The pending authenticator secret belongs to one session (AUTH-01).
B. A scoped grant authorises only functions that support its scope (ACL-02).
C. One administrator cannot make a second account and use it as the "other" administrator
   (separation of duties, ACL-05, BG-01).
D. Temporary passwords are spent atomically; the demo prints codes only for demo accounts;
   rejecting or ending break-glass needs a fresh code.
"""

from __future__ import annotations

import re
from base64 import b32decode
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from kenshin.accounts import actions, breakglass, grants, mfa, passwords, services
from kenshin.accounts.models import BreakGlass, BreakGlassStatus, Role, RoleAssignment
from kenshin.accounts.testing import PASSWORD, code_for, current_code, wrong_code
from kenshin.audit.models import ReviewTask

pytestmark = pytest.mark.django_db
User = get_user_model()
ENROL = reverse("accounts:mfa_enrol")
VERIFY = reverse("accounts:mfa_verify")


def _fresh(user):
    return User.objects.get(pk=user.pk)


def _role(code: str) -> Role:
    return Role.objects.get(code=code)


# --- A. the pending TOTP secret is tied to the session -----------------------------------------


def _login(client: Client, username: str) -> None:
    response = client.post(reverse("accounts:login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302


def _secret_from(html: str) -> bytes:
    raw = re.search(r"((?:[A-Z2-7]{4} ){3,}[A-Z2-7]{1,4})", html).group(1).replace(" ", "")
    return b32decode(raw + "=" * (-len(raw) % 8))


def test_password_only_attacker_cannot_use_the_secret_the_victim_later_confirms(make_user):
    user = make_user("nurse2", roles=["hokenshi"], totp=False)
    attacker = Client()
    _login(attacker, "nurse2")
    stolen = _secret_from(attacker.get(ENROL).content.decode())
    attacker.post(reverse("accounts:logout"))

    victim = Client()
    _login(victim, "nurse2")
    seen = _secret_from(victim.get(ENROL).content.decode())
    assert seen != stolen  # a new session starts a new enrolment
    device = TOTPDevice.objects.get(user=user, confirmed=False)  # the attacker's one is gone
    assert device.bin_key == seen
    assert victim.get(ENROL).status_code == 200  # a reload keeps this session's device
    assert TOTPDevice.objects.get(user=user).pk == device.pk
    response = victim.post(ENROL, {"otp_token": current_code(device)})
    assert response["Location"] == reverse("accounts:recovery_codes")

    # Later the attacker signs in with the password and a code made from the stolen secret.
    attacker2 = Client()
    _login(attacker2, "nurse2")
    totp = TOTP(stolen, 30, 0, 6, 0)
    response = attacker2.post(VERIFY, {"otp_token": f"{totp.token():06d}"})
    assert (
        response.status_code == 200 and "確認コードが正しくありません" in response.content.decode()
    )
    assert attacker2.get(reverse("web:home"))["Location"] == VERIFY


def test_a_session_confirms_only_its_own_pending_device(make_user):
    user = make_user("nurse3", roles=["hokenshi"], totp=False)
    first, second = Client(), Client()
    _login(first, "nurse3")
    _login(second, "nurse3")
    first.get(ENROL)
    first_device = TOTPDevice.objects.get(user=user)
    second.get(ENROL)  # starting here deletes the first session's pending device
    assert not TOTPDevice.objects.filter(pk=first_device.pk).exists()
    second_device = TOTPDevice.objects.get(user=user)
    # A code for the second session's device, typed in the first session, confirms nothing.
    response = first.post(ENROL, {"otp_token": current_code(second_device)})
    assert response.status_code == 200
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    # Directly: a device that is not the session's own is refused.
    session = {mfa.PENDING_KEY: first_device.pk}
    assert not mfa.confirm_enrolment(session, second_device, current_code(second_device))
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


# --- B. a scoped grant only for functions that support the scope --------------------------------


def test_programme_scoped_hokenshi_is_refused_and_a_forged_one_reads_nothing(make_user, signed_in):
    admin = make_user("admin1", roles=["system_admin"])
    nurse = make_user("nurse1")
    with pytest.raises(actions.ActionRefused, match="範囲で絞ることができません"):
        actions.assign_role(admin, nurse, _role("hokenshi"), "programme", "gastric")
    assert not RoleAssignment.objects.filter(user=nurse).exists()
    # The same grant slipped in through the database authorises nothing unscoped.
    RoleAssignment.objects.create(
        user=nurse,
        role=_role("hokenshi"),
        scope_kind="programme",
        scope_value="gastric",
        valid_from=date(2020, 1, 1),
    )
    user = _fresh(nurse)
    assert not user.has_perm("residents.search")
    assert not user.has_perm("residents.view")
    assert grants.scopes_for(user, "residents.view") == []
    client = signed_in(nurse)
    assert client.get(reverse("residents:search")).status_code == 403


def test_clinic_scope_narrows_only_the_functions_that_support_it(make_user):
    from kenshin.accounts.models import Institution

    admin = make_user("admin1", roles=["system_admin"])
    nurse = make_user("nurse1")
    clinic = Institution.objects.create(municipality_code="342025", code="3410000001", name="甲")
    # hokenshi holds accounts.view_institution, which a clinic scope can narrow: accepted, and
    # the scoped grant gives that function for that clinic only, no resident functions.
    actions.assign_role(admin, nurse, _role("hokenshi"), "clinic", clinic.code)
    user = _fresh(nurse)
    assert user.has_perm("accounts.view_institution", clinic)
    assert grants.scopes_for(user, "accounts.view_institution") == [("clinic", clinic.code)]
    assert not user.has_perm("residents.search")
    assert grants.scopes_for(user, "residents.search") == []
    # 閲覧のみ has no function a clinic scope can narrow: refused.
    with pytest.raises(actions.ActionRefused, match="閲覧のみ"):
        actions.assign_role(admin, nurse, _role("etsuran"), "clinic", clinic.code)
    # Unscoped grants are untouched.
    actions.assign_role(admin, nurse, _role("etsuran"))
    assert grants.scopes_for(_fresh(nurse), "residents.search") is None


# --- C. separation of duties: no "second administrator" made by the first ----------------------


def test_one_admin_cannot_make_a_second_admin_and_approve_own_break_glass(make_user):
    admin = make_user("admin1", roles=["system_admin"], email="admin1@city.example")
    other = make_user("admin2", roles=["system_admin"], email="admin2@city.example")
    with pytest.raises(actions.ActionRefused, match="このメールアドレスは別の利用者"):
        actions.create_user(admin, "helper9", "Helper", "ADMIN1@City.example ", "")
    assert not User.objects.filter(username="helper9").exists()
    assert mail.outbox == []
    puppet = actions.create_user(admin, "helper9", "Helper", "helper9@city.example", "")
    assert puppet.created_by == admin
    with pytest.raises(actions.ActionRefused, match="自分が作成したアカウント"):
        actions.assign_role(admin, puppet, _role("system_admin"))
    assert not _fresh(puppet).has_perm("accounts.break_glass")
    # Ordinary roles for the accounts one creates are the daily work: allowed, no review task.
    actions.assign_role(admin, puppet, _role("hokenshi"))
    assert not ReviewTask.objects.filter(kind="privileged_grant").exists()

    # Even when another administrator makes the puppet an administrator (reviewed) …
    actions.assign_role(other, puppet, _role("system_admin"))
    puppet = _fresh(puppet)
    # … it cannot approve its creator's break-glass, nor one its creator requested,
    bg = breakglass.request(admin, admin, "訓練", 60)
    with pytest.raises(actions.ActionRefused, match="アカウントの作成でつながっている"):
        breakglass.approve(puppet, bg)
    breakglass.reject(admin, bg)
    bg = breakglass.request(admin, other, "訓練", 60)
    with pytest.raises(actions.ActionRefused, match="アカウントの作成でつながっている"):
        breakglass.approve(puppet, bg)
    breakglass.reject(admin, bg)
    # … and its creator cannot approve one for the puppet or requested by it,
    bg = breakglass.request(other, puppet, "訓練", 60)
    with pytest.raises(actions.ActionRefused, match="アカウントの作成でつながっている"):
        breakglass.approve(admin, bg)
    breakglass.reject(other, bg)
    bg = breakglass.request(puppet, other, "訓練", 60)
    with pytest.raises(actions.ActionRefused, match="アカウントの作成でつながっている"):
        breakglass.approve(admin, bg)
    assert BreakGlass.objects.get(pk=bg.pk).status == BreakGlassStatus.REQUESTED
    assert not _fresh(admin).has_perm("residents.view")
    # … nor grant its creator any role.
    with pytest.raises(actions.ActionRefused, match="あなたのアカウントを作成した利用者"):
        actions.assign_role(puppet, admin, _role("kacho"))
    assert not _fresh(admin).has_perm("residents.view")


def test_every_privileged_grant_opens_a_review_task(make_user):
    admin = make_user("admin1", roles=["system_admin"])
    staff = make_user("staff1")
    assignment = actions.assign_role(admin, staff, _role("system_admin"))
    task = ReviewTask.objects.get(kind="privileged_grant")
    assert (task.subject_kind, task.subject_ref, task.created_by_id, task.status) == (
        "user",
        str(staff.pk),
        admin.pk,
        "open",
    )
    assert "システム管理者" in task.reason and str(assignment.pk) in task.reason
    actions.assign_role(admin, staff, _role("clinic"), "clinic", _clinic().code)
    actions.assign_role(admin, staff, _role("jimu"))
    assert ReviewTask.objects.filter(kind="privileged_grant").count() == 1


def _clinic():
    from kenshin.accounts.models import Institution

    return Institution.objects.get_or_create(
        municipality_code="342025", code="3410000001", defaults={"name": "甲"}
    )[0]


def test_email_is_unique_among_accounts_case_insensitive(make_user, signed_in):
    admin = make_user("admin1", roles=["system_admin"])
    make_user("hokenshi1", email="hanako@example.invalid")
    response = signed_in(admin).post(
        reverse("accounts:admin_user_create"),
        {
            "username": "jimu7",
            "display_name": "事務 七子",
            "email": "Hanako@Example.invalid",
            "department": "",
            "code": code_for(admin),
        },
    )
    assert response.status_code == 400
    assert "このメールアドレスは別の利用者で使われています" in response.content.decode()
    assert not User.objects.filter(username="jimu7").exists() and mail.outbox == []
    # The database refuses it too (a second screen in the same instant, a data load).
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="jimu8", email="HANAKO@example.invalid")
    # Accounts without an address (demo, tests) are not compared.
    User.objects.create(username="nomail1")
    User.objects.create(username="nomail2")


def test_bootstrap_makes_at_most_two_administrators():
    from kenshin.accounts import testing

    testing.ensure_standard_roles()
    services.bootstrap_admin("admin1", email="a1@example.lg.jp")
    services.bootstrap_admin("admin2", email="a2@example.lg.jp")
    with pytest.raises(ValueError, match="すでに2人以上います"):
        services.bootstrap_admin("admin3", email="a3@example.lg.jp")
    first, second = User.objects.get(username="admin1"), User.objects.get(username="admin2")
    assert first.created_by is None and second.created_by is None
    # The two can act as each other's second administrator.
    bg = breakglass.request(first, first, "訓練", 30)
    breakglass.approve(second, bg)


# --- D. smaller fixes ----------------------------------------------------------------------------


def test_temporary_password_is_spent_by_one_conditional_update(make_user):
    user = make_user("hokenshi1", email="hokenshi1@example.lg.jp")
    passwords.issue_temporary(user)
    # Two sign-ins that both read "unused" before either wrote: only one may pass.
    one, two = _fresh(user), _fresh(user)
    assert passwords.temporary_usable(one) and passwords.temporary_usable(two)
    assert passwords.mark_temporary_used(one) is True
    assert passwords.mark_temporary_used(two) is False
    assert _fresh(user).temp_password_used


def test_demo_totp_prints_codes_only_for_demo_accounts(make_user, settings):
    settings.DEMO_MODE = True
    real = make_user("realadmin", roles=["system_admin"])
    demo = make_user("kanri", roles=["system_admin"])
    with pytest.raises(CommandError, match="デモ用アカウントではない"):
        call_command("demo", "totp", "realadmin")
    with pytest.raises(LookupError):
        services.demo_totp_code("realadmin", demo_usernames=("kanri",))
    assert demo.totp.verify_token(services.demo_totp_code("kanri", demo_usernames=("kanri",)))
    assert not real.totp.verify_token(wrong_code(real))
    settings.DEMO_MODE = False
    with pytest.raises(LookupError):
        services.demo_totp_code("kanri", demo_usernames=("kanri",))


def test_break_glass_reject_and_end_need_a_fresh_code(make_user, signed_in):
    first = make_user("admin1", roles=["system_admin"])
    second = make_user("admin2", roles=["system_admin"])
    nurse = make_user("hokenshi1")
    client = signed_in(second)
    bg = breakglass.request(first, nurse, "訓練", 60)
    reject = reverse("accounts:breakglass_reject", args=[bg.pk])
    assert client.post(reject).status_code == 400
    assert client.post(reject, {"reject-code": wrong_code(second)}).status_code == 400
    assert BreakGlass.objects.get(pk=bg.pk).status == BreakGlassStatus.REQUESTED
    assert client.post(reject, {"reject-code": code_for(second)}).status_code == 302
    assert BreakGlass.objects.get(pk=bg.pk).status == BreakGlassStatus.REJECTED

    bg = breakglass.approve(second, breakglass.request(first, nurse, "訓練", 60))
    end = reverse("accounts:breakglass_end", args=[bg.pk])
    assert client.post(end).status_code == 400
    assert client.post(end, {"end-code": wrong_code(second)}).status_code == 400
    assert _fresh(nurse).has_perm("residents.view")
    assert client.post(end, {"end-code": code_for(second)}).status_code == 302
    assert not _fresh(nurse).has_perm("residents.view")
