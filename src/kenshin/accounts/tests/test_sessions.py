"""Session limits and ending sessions on the server (SESS-01, SESS-02, SESS-03)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from kenshin.accounts import sessions
from kenshin.accounts.models import UserSession
from kenshin.audit.models import AuditEvent
from kenshin.core import clock

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
HOME = reverse("web:home")


@pytest.fixture
def start():
    return clock.now().replace(microsecond=0)


def at(moment, client, url=HOME):
    with clock.frozen(moment):
        return client.get(url)


def signed_in_at(moment, signed_in, user):
    with clock.frozen(moment):
        return signed_in(user)


def test_sign_in_registers_the_session_on_the_server(make_user, signed_in, start):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in_at(start, signed_in, user)
    row = UserSession.objects.get(user=user)
    assert row.session_key == client.session.session_key
    assert row.created_at == start


def test_idle_for_30_minutes_ends_the_session(make_user, signed_in, start):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in_at(start, signed_in, user)
    key = client.session.session_key
    assert at(start + timedelta(minutes=29), client).status_code == 200
    # Activity resets the idle clock: 29 minutes after the last request is still fine.
    assert at(start + timedelta(minutes=58), client).status_code == 200
    response = at(start + timedelta(minutes=58 + 31), client)
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert not Session.objects.filter(session_key=key).exists()  # gone on the server
    assert not UserSession.objects.filter(user=user).exists()
    page = client.get(LOGIN).content.decode()
    assert "一定時間操作がなかったため" in page
    ended = AuditEvent.objects.filter(event="session_ended").last()
    assert ended is not None and '"reason":"idle"' in ended.detail


def test_after_a_page_showing_mynumber_the_idle_limit_is_15_minutes(
    make_user, signed_in, start, settings
):
    settings.ROOT_URLCONF = "kenshin.accounts.tests.urls_mynumber"
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in_at(start, signed_in, user)
    assert at(start + timedelta(minutes=1), client, "/test-mynumber/").status_code == 200
    # 20 minutes after a 個人番号 page is too long …
    late = at(start + timedelta(minutes=21), client)
    assert late.status_code == 302 and late["Location"] == LOGIN
    # … while after an ordinary page it is not.
    other = signed_in_at(start, signed_in, user)
    assert at(start + timedelta(minutes=1), other).status_code == 200
    assert at(start + timedelta(minutes=21), other).status_code == 200


def test_twelve_hours_after_sign_in_the_session_ends_however_active(make_user, signed_in, start):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in_at(start, signed_in, user)
    for minutes in range(20, 12 * 60, 20):
        assert at(start + timedelta(minutes=minutes), client).status_code == 200, minutes
    response = at(start + timedelta(hours=12, minutes=1), client)
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert "12時間" in client.get(LOGIN).content.decode()


def test_last_seen_is_written_at_most_once_a_minute(make_user, signed_in, start):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in_at(start, signed_in, user)
    at(start + timedelta(seconds=30), client)
    assert UserSession.objects.get(user=user).last_seen_at == start
    at(start + timedelta(seconds=90), client)
    assert UserSession.objects.get(user=user).last_seen_at == start + timedelta(seconds=90)


def test_an_administrator_ends_every_session_of_a_user(make_user, signed_in):
    user = make_user("hokenshi1", roles=["hokenshi"])
    admin = make_user("kanri1", roles=["system_admin"])
    desk, counter = signed_in(user), signed_in(user)
    admin_client = signed_in(admin)
    assert desk.get(HOME).status_code == counter.get(HOME).status_code == 200
    assert sessions.end_all(user, actor=admin) == 2
    for client in (desk, counter):
        assert client.get(HOME)["Location"].startswith(LOGIN)
    assert admin_client.get(HOME).status_code == 200  # only that user's sessions
    event = AuditEvent.objects.filter(event="session_ended").last()
    assert event.username == "kanri1" and event.subject_ref == str(user.pk)


def test_a_session_not_made_by_our_sign_in_is_refused(make_user, signed_in):
    client = signed_in(make_user("hokenshi1", roles=["hokenshi"]))
    session = client.session
    del session[sessions.LOGIN_AT]
    session.save()
    assert client.get(HOME)["Location"] == LOGIN
