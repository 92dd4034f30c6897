"""Accounts administration: step-up on every sensitive form (ACL-05), separation of duties,
temporary passwords never shown (AUTH-07), sessions ended (SESS-03), institution scope
(ACL-02) and the role-by-role access review (ACL-06)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kenshin.accounts import access_review, actions
from kenshin.accounts.models import Institution, Role, RoleAssignment
from kenshin.accounts.testing import code_for, wrong_code
from kenshin.audit.models import AuditEvent

User = get_user_model()


def events(event: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=event).order_by("seq"))


@pytest.fixture
def admin(make_user):
    return make_user("admin1", roles=["system_admin"], display_name="管理 一郎")


@pytest.fixture
def staff(make_user):
    return make_user("hokenshi1", display_name="保健 花子", email="hanako@example.invalid")


@pytest.fixture
def hokenshi_role(db):
    return Role.objects.get(code="hokenshi")


def _assign_post(client, target, admin, code, role, **extra):
    data = {
        "assign-role": role.pk,
        "assign-scope_kind": "",
        "assign-scope_value": "",
        "assign-valid_from": "2026-04-01",
        "assign-valid_to": "2027-03-31",
        "assign-code": code,
        **extra,
    }
    return client.post(reverse("accounts:admin_user_assign", args=[target.pk]), data)


# --- step-up on role changes (ACL-05) ---------------------------------------------------------


@pytest.mark.parametrize("which", ["missing", "wrong"])
def test_role_assignment_without_a_correct_code_changes_nothing(
    admin, staff, hokenshi_role, signed_in, which
):
    client = signed_in(admin)
    code = "" if which == "missing" else wrong_code(admin)
    response = _assign_post(client, staff, admin, code, hokenshi_role)
    assert response.status_code == 400
    assert not RoleAssignment.objects.filter(user=staff).exists()
    assert not events("permission_change")
    if which == "wrong":
        assert "確認コードが正しくありません" in response.content.decode()
        assert events("mfa_failed")[-1].function == "accounts.assign_roles"


def test_role_assignment_with_the_right_code_is_made_and_recorded(
    admin, staff, hokenshi_role, signed_in
):
    client = signed_in(admin)
    response = _assign_post(client, staff, admin, code_for(admin), hokenshi_role)
    assert response.status_code == 302
    a = RoleAssignment.objects.get(user=staff)
    assert (a.role, a.valid_from, a.valid_to, a.granted_by) == (
        hokenshi_role,
        date(2026, 4, 1),
        date(2027, 3, 31),
        admin,
    )
    [event] = events("permission_change")
    detail = json.loads(event.detail)
    assert (event.user_id, event.subject_kind, event.subject_ref) == (
        admin.pk,
        "user",
        str(staff.pk),
    )
    assert detail["role"] == "hokenshi" and detail["valid_to"] == "2027-03-31"
    assert "保健 花子" not in event.detail and "hanako" not in event.detail
    assert events("step_up")[-1].function == "accounts.assign_roles"


def test_admin_cannot_grant_a_role_to_themself(admin, hokenshi_role, signed_in):
    client = signed_in(admin)
    response = _assign_post(client, admin, admin, code_for(admin), hokenshi_role)
    assert response.status_code == 400
    assert "自分自身にロールを付与することはできません" in response.content.decode()
    assert RoleAssignment.objects.filter(user=admin).count() == 1


def test_emergency_role_cannot_be_assigned_directly(admin, staff, signed_in):
    emergency = Role.objects.get(code="emergency")
    response = _assign_post(signed_in(admin), staff, admin, code_for(admin), emergency)
    assert response.status_code == 400
    with pytest.raises(actions.ActionRefused):
        actions.assign_role(admin, staff, emergency)
    assert not RoleAssignment.objects.filter(user=staff).exists()


def test_clinic_scope_must_name_a_registered_institution(admin, staff, signed_in):
    clinic = Role.objects.get(code="clinic")
    response = _assign_post(
        signed_in(admin),
        staff,
        admin,
        code_for(admin),
        clinic,
        **{"assign-scope_kind": "clinic", "assign-scope_value": "9999999999"},
    )
    assert response.status_code == 400
    assert "登録されていません" in response.content.decode()
    assert not RoleAssignment.objects.filter(user=staff).exists()


def test_revoke_needs_the_code_and_keeps_history(admin, staff, hokenshi_role, signed_in):
    assignment = actions.assign_role(admin, staff, hokenshi_role)
    client = signed_in(admin)
    url = reverse("accounts:admin_user_revoke", args=[staff.pk, assignment.pk])
    assert client.post(url, {"revoke-code": wrong_code(admin)}).status_code == 400
    assignment.refresh_from_db()
    assert assignment.revoked_at is None
    assert client.post(url, {"revoke-code": code_for(admin)}).status_code == 302
    assignment.refresh_from_db()
    assert assignment.revoked_at is not None and assignment.revoked_by == admin
    assert not User.objects.get(pk=staff.pk).has_perm("residents.view")
    assert json.loads(events("permission_change")[-1].detail)["action"] == "revoke"


def test_no_state_change_through_get(admin, staff, hokenshi_role, signed_in):
    client = signed_in(admin)
    for name in ("admin_user_assign", "admin_user_disable", "admin_user_end_sessions"):
        assert client.get(reverse(f"accounts:{name}", args=[staff.pk])).status_code == 405
    staff.refresh_from_db()
    assert staff.is_active and not RoleAssignment.objects.filter(user=staff).exists()


# --- accounts: temporary passwords, disable, sessions ----------------------------------------


def test_create_user_mails_the_password_to_the_person_never_the_admin(admin, signed_in):
    client = signed_in(admin)
    response = client.post(
        reverse("accounts:admin_user_create"),
        {
            "username": "jimu7",
            "display_name": "事務 七子",
            "email": "nanako@example.invalid",
            "department": "健康づくり課",
            "code": code_for(admin),
        },
        follow=True,
    )
    assert response.status_code == 200
    user = User.objects.get(username="jimu7")
    [message] = mail.outbox
    assert message.to == ["nanako@example.invalid"]
    password = next(
        line.split(":", 1)[1].strip()
        for line in message.body.splitlines()
        if "仮パスワード:" in line
    )
    assert user.check_password(password)
    assert user.temp_password_expires_at is not None
    assert password not in response.content.decode()
    assert not any(password in e.detail for e in AuditEvent.objects.all())
    assert events("create")[-1].subject_ref == str(user.pk)
    assert not user.has_perm("residents.view")  # a new account holds no role


def test_password_reset_sends_mail_and_shows_no_password(admin, staff, signed_in):
    client = signed_in(admin)
    url = reverse("accounts:admin_user_reset", args=[staff.pk])
    assert client.post(url, {"reset-code": wrong_code(admin)}).status_code == 400
    assert not mail.outbox
    response = client.post(url, {"reset-code": code_for(admin)}, follow=True)
    [message] = mail.outbox
    assert message.to == [staff.email]
    staff.refresh_from_db()
    assert staff.temp_password_expires_at is not None
    assert "仮パスワード" in response.content.decode()  # the notice, not the password
    assert not any(w in response.content.decode() for w in message.body.split() if "-" in w)


def test_disable_ends_sessions_and_refuses_self(admin, staff, signed_in):
    victim = signed_in(staff)
    assert victim.get(reverse("web:home")).status_code == 200
    client = signed_in(admin)
    url = reverse("accounts:admin_user_disable", args=[staff.pk])
    assert client.post(url, {"disable-code": code_for(admin)}).status_code == 302
    staff.refresh_from_db()
    assert not staff.is_active
    assert victim.get(reverse("web:home")).status_code == 302  # back to sign-in
    own = client.post(
        reverse("accounts:admin_user_disable", args=[admin.pk]), {"disable-code": code_for(admin)}
    )
    assert own.status_code == 400
    admin.refresh_from_db()
    assert admin.is_active


def test_end_sessions_signs_the_user_out(admin, staff, signed_in):
    victim = signed_in(staff)
    assert victim.get(reverse("web:home")).status_code == 200
    client = signed_in(admin)
    url = reverse("accounts:admin_user_end_sessions", args=[staff.pk])
    assert client.post(url, {"end_sessions-code": wrong_code(admin)}).status_code == 400
    assert victim.get(reverse("web:home")).status_code == 200
    assert client.post(url, {"end_sessions-code": code_for(admin)}).status_code == 302
    assert victim.get(reverse("web:home")).status_code == 302
    assert events("session_ended")[-1].user_id == admin.pk


def test_user_pages_render_with_few_queries(admin, staff, hokenshi_role, signed_in, make_user):
    for i in range(5):
        actions.assign_role(admin, make_user(f"u{i}"), hokenshi_role)
    client = signed_in(admin)
    with CaptureQueriesContext(connection) as few:
        response = client.get(reverse("accounts:admin_users"))
    assert response.status_code == 200 and "hokenshi1" in response.content.decode()
    for i in range(5, 15):
        actions.assign_role(admin, make_user(f"u{i}"), hokenshi_role)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("accounts:admin_users"))
    assert len(many) == len(few)
    detail = client.get(reverse("accounts:admin_user", args=[staff.pk]))
    assert detail.status_code == 200 and "ロールを付与" in detail.content.decode()
    roles = client.get(reverse("accounts:admin_roles")).content.decode()
    assert "利用者の管理" in roles and "緊急アクセス専用" in roles


def test_admin_screens_refuse_users_without_the_function(staff, signed_in):
    client = signed_in(staff)
    for name in ("accounts:admin_users", "accounts:breakglass", "accounts:access_review"):
        assert client.get(reverse(name)).status_code == 403
    assert "利用者管理" not in client.get(reverse("web:home")).content.decode()


def test_menu_shows_admin_entries_by_permission(admin, signed_in):
    page = signed_in(admin).get(reverse("web:home")).content.decode()
    assert reverse("accounts:admin_users") in page and reverse("accounts:breakglass") in page


# --- institutions: object scope (ACL-02) ------------------------------------------------------


@pytest.fixture
def clinics(db):
    own = Institution.objects.create(
        municipality_code="342025", code="3410000001", name="甲医院", phone="0823-00-0001"
    )
    other = Institution.objects.create(
        municipality_code="342025", code="3410000002", name="乙医院", phone="0823-00-0002"
    )
    return own, other


@pytest.fixture
def clinic_user(make_user, clinics):
    own, _ = clinics
    return make_user("clinic1", roles=["clinic"], scope=("clinic", own.code), institution=own)


def test_clinic_user_lists_only_their_own_institution(clinic_user, clinics, signed_in):
    own, other = clinics
    page = signed_in(clinic_user).get(reverse("accounts:institutions")).content.decode()
    assert own.name in page and other.name not in page


def test_clinic_user_cannot_read_or_write_another_clinic(clinic_user, clinics, signed_in):
    _, other = clinics
    client = signed_in(clinic_user)
    assert client.get(reverse("accounts:institution", args=[other.pk])).status_code == 403
    assert client.get(reverse("accounts:institution_edit", args=[other.pk])).status_code == 403
    posted = client.post(
        reverse("accounts:institution_edit", args=[other.pk]),
        {"name": "乗っ取り", "contact_name": "", "phone": "000", "address": ""},
    )
    assert posted.status_code == 403
    other.refresh_from_db()
    assert (other.name, other.phone) == ("乙医院", "0823-00-0002")
    denied = events("access_denied")
    assert denied and denied[-1].subject_ref == other.code


def test_clinic_user_can_update_their_own_institution(clinic_user, clinics, signed_in):
    own, _ = clinics
    client = signed_in(clinic_user)
    assert client.get(reverse("accounts:institution", args=[own.pk])).status_code == 200
    response = client.post(
        reverse("accounts:institution_edit", args=[own.pk]),
        {"name": "甲医院", "contact_name": "受付 太郎", "phone": "0823-11-1111", "address": ""},
    )
    assert response.status_code == 302
    own.refresh_from_db()
    assert own.phone == "0823-11-1111"
    event = events("update")[-1]
    assert json.loads(event.detail)["fields"] == ["contact_name", "phone"]
    assert "受付 太郎" not in event.detail


def test_staff_with_unscoped_view_see_every_institution(make_user, clinics, signed_in):
    own, other = clinics
    client = signed_in(make_user("kacho1", roles=["kacho"]))
    page = client.get(reverse("accounts:institutions")).content.decode()
    assert own.name in page and other.name in page
    assert client.get(reverse("accounts:institution", args=[other.pk])).status_code == 200
    # Viewing is not editing: 課長 holds no edit function.
    assert client.get(reverse("accounts:institution_edit", args=[other.pk])).status_code == 403


# --- role-by-role access review (ACL-06) ------------------------------------------------------


@pytest.fixture
def reviewer(make_user):
    return make_user("kacho1", roles=["kacho"])


def test_access_review_lists_holders_people_without_roles_and_endings(
    reviewer, admin, make_user, hokenshi_role, signed_in
):
    from kenshin.core import clock

    nobody = make_user("idle1")
    leaving = make_user("leaving1")
    with clock.frozen(date(2026, 6, 1)):
        actions.assign_role(
            admin, leaving, hokenshi_role, valid_from=date(2026, 4, 1), valid_to=date(2026, 6, 20)
        )
        report = access_review.build()
        page = signed_in(reviewer).get(reverse("accounts:access_review")).content.decode()
    by_role = {s.code: [h.username for h in s.holders] for s in report.roles}
    assert by_role["hokenshi"] == ["leaving1"]
    assert by_role["system_admin"] == ["admin1"]
    assert nobody.username in [u[1] for u in report.without_role]
    assert [h.username for _, h in report.ending_soon] == ["leaving1"]
    [holder] = [h for s in report.roles for h in s.holders if h.username == "leaving1"]
    assert holder.granted_by == "admin1" and holder.account_active
    assert "leaving1" in page and "idle1" in page


def test_access_review_csv_needs_step_up_and_is_audited(reviewer, signed_in):
    client = signed_in(reviewer)
    url = reverse("accounts:access_review_csv")
    refused = client.post(url, {"export-code": wrong_code(reviewer)})
    assert refused.status_code == 400 and not events("export")
    response = client.post(url, {"export-code": code_for(reviewer)})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "ロールコード" and any(r[3] == "kacho1" for r in rows[1:])
    [event] = events("export")
    assert event.function == "audit.access_review"
    assert json.loads(event.detail)["rows"] == len(rows) - 1


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_cannot_start_a_formula(start):
    assert access_review.csv_cell(f"{start}cmd|' /C calc'!A0").startswith("'")
    assert access_review.csv_cell("plain") == "plain"


def test_csv_of_a_hostile_display_name_is_inert(make_user, reviewer):
    make_user("evil1", display_name='=HYPERLINK("http://x")')
    text = access_review.to_csv(access_review.build())
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    [row] = [r for r in rows if r[3] == "evil1"]
    assert row[4].startswith("'=")


def test_access_review_costs_three_queries_whatever_the_number_of_users(
    admin, make_user, hokenshi_role
):
    for i in range(12):
        actions.assign_role(admin, make_user(f"u{i}"), hokenshi_role)
    make_user("idle1")
    with CaptureQueriesContext(connection) as queries:
        report = access_review.build()
    assert len(queries) == 3
    assert access_review.row_count(report) == 12 + 1 + 1  # holders, admin1, idle1


def test_reset_second_factor_removes_devices_ends_sessions_and_needs_the_code(
    admin, staff, signed_in
):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    victim = signed_in(staff)
    client = signed_in(admin)
    url = reverse("accounts:admin_user_reset_mfa", args=[staff.pk])
    assert client.post(url, {"reset_mfa-code": wrong_code(admin)}).status_code == 400
    assert TOTPDevice.objects.filter(user=staff).exists()
    assert client.post(url, {"reset_mfa-code": code_for(admin)}).status_code == 302
    assert not TOTPDevice.objects.filter(user=staff).exists()
    assert victim.get(reverse("web:home")).status_code == 302  # signed out
    assert events("update")[-1].detail == '{"action":"reset_second_factor"}'


def test_nobody_resets_their_own_second_factor(admin):
    with pytest.raises(actions.ActionRefused):
        actions.reset_second_factor(admin, admin)
