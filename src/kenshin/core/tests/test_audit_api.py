"""core.audit.record: who/where/what as stored, control characters neutralised (LOG-05),
個人番号 masked (MN-03), subjects and actors as the review screens read them (LOG-01)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from kenshin.audit.models import AuditEvent
from kenshin.audit.verify import verify
from kenshin.core import audit, mynumber
from kenshin.core.audit import Actor, Subject

pytestmark = pytest.mark.django_db

COLUMNS = ("username", "roles", "address", "function", "subject_kind", "subject_ref", "purpose",
           "detail")  # fmt: skip


def _valid_mynumber(first_eleven: str = "12345678901") -> str:
    return first_eleven + str(mynumber.check_digit(first_eleven))


def _only_row() -> AuditEvent:
    (row,) = AuditEvent.objects.all()
    return row


def _stored_text(row: AuditEvent) -> str:
    return "|".join(str(getattr(row, c)) for c in COLUMNS)


def _request(user, **meta):
    request = RequestFactory().get("/residents/", **meta)
    request.user = user
    return request


def test_control_characters_in_the_username_come_back_escaped(make_user):
    user = make_user("evil\nuser\x1b[2J\u202e")
    audit.record(audit.Event.LOGIN, user)
    row = _only_row()
    assert row.username == "evil\\x0auser\\x1b[2J\\x202e"
    assert row.user_id == user.pk


def test_control_characters_in_detail_keys_values_purpose_and_subject_come_back_escaped():
    audit.record(
        audit.Event.SEARCH,
        None,
        Subject("household\t", "H-1\r\n"),
        "inquiry\x00",
        function="residents.search\x07",
        note="line1\r\nline2\x7f",
        nested={"k\n": ["a\x1bb"]},
    )
    row = _only_row()
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in _stored_text(row))
    detail = json.loads(row.detail)
    assert detail["note"] == "line1\\x0d\\x0aline2\\x7f"
    assert detail["nested"] == {"k\\x0a": ["a\\x1bb"]}
    assert (row.subject_kind, row.subject_ref) == ("household\\x09", "H-1\\x0d\\x0a")
    assert (row.purpose, row.function) == ("inquiry\\x00", "residents.search\\x07")
    assert verify().ok


def test_a_valid_mynumber_in_detail_is_masked_wherever_it_appears():
    number = _valid_mynumber()
    grouped = f"{number[:4]} {number[4:8]} {number[8:]}"
    wide = number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    audit.record(audit.Event.SEARCH, None, note=f"照会 {number}", items=[grouped, wide])
    row = _only_row()
    text = _stored_text(row)
    assert number not in text and grouped not in text and wide not in text
    detail = json.loads(row.detail)
    assert detail["note"] == "照会 ************"
    assert detail["items"] == ["************", "************"]


def test_twelve_digits_with_a_wrong_check_digit_are_not_masked():
    number = _valid_mynumber()
    wrong = number[:11] + str((int(number[11]) + 1) % 10)
    audit.record(audit.Event.SEARCH, None, note=wrong)
    assert json.loads(_only_row().detail)["note"] == wrong


def test_a_mynumber_given_as_the_subject_is_masked_too():
    audit.record(audit.Event.VIEW, None, _valid_mynumber())
    assert _only_row().subject_ref == "************"


@pytest.mark.parametrize(
    ("subject", "kind", "ref"),
    [
        ("000000001234", "resident", "000000001234"),  # a bare str is a 宛名番号
        (Subject.resident("000000005678"), "resident", "000000005678"),
        (Subject("institution", "3410000001"), "institution", "3410000001"),
        (None, "", ""),
    ],
)
def test_subject_kinds(subject, kind, ref):
    audit.record(audit.Event.VIEW, None, subject, "inquiry")
    row = _only_row()
    assert (row.subject_kind, row.subject_ref, row.purpose) == (kind, ref, "inquiry")


def test_the_actor_comes_from_the_request_user_roles_and_remote_address(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    request = _request(user, REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.5")
    audit.record(audit.Event.VIEW, request, "000000001234", "inquiry", function="residents.view")
    row = _only_row()
    assert (row.user_id, row.username) == (user.pk, "hokenshi1")
    assert row.address == "192.0.2.10"  # the forwarded header is not trusted
    assert row.roles and row.roles == user.audit_roles()
    assert row.break_glass is False
    assert (row.event, row.result, row.function) == ("view", "success", "residents.view")


def test_an_anonymous_request_is_recorded_with_its_address():
    request = _request(AnonymousUser(), REMOTE_ADDR="198.51.100.7")
    audit.record(audit.Event.LOGIN_FAILED, request, result=audit.Result.FAILURE)
    row = _only_row()
    assert (row.user_id, row.username, row.address, row.result) == (
        None, "anonymous", "198.51.100.7", "failure",
    )  # fmt: skip


def test_a_user_without_request_and_the_system_and_an_explicit_actor(make_user):
    user = make_user("jimu1", roles=["jimu"])
    audit.record(audit.Event.UPDATE, user)
    audit.record(audit.Event.IMPORT, None)
    audit.record(audit.Event.EXPORT, Actor(None, "feed\nname", break_glass=True))
    rows = list(AuditEvent.objects.order_by("seq"))
    assert [(r.user_id, r.username, r.address) for r in rows[:2]] == [
        (user.pk, "jimu1", ""), (None, "system", ""),
    ]  # fmt: skip
    # An Actor is taken as given (callers build it from trusted values), flag included.
    assert rows[2].break_glass is True


def test_time_is_stored_timezone_aware():
    audit.record(audit.Event.LOGOUT, None)
    assert _only_row().at.tzinfo is not None


def test_overlong_values_are_cut():
    audit.record(audit.Event.SEARCH, None, note="あ" * 2000)
    assert len(json.loads(_only_row().detail)["note"]) == audit.MAX_TEXT + 1
