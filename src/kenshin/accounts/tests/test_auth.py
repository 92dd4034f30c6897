"""Sign-in: one generic failure, lockout by user name + address, TOTP on every protected route,
enrolment, recovery codes, logout (AUTH-01, AUTH-05, SESS-02, SESS-03)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from kenshin.accounts import mfa
from kenshin.accounts.forms import GENERIC_FAILURE
from kenshin.accounts.models import UserSession
from kenshin.accounts.testing import PASSWORD, current_code
from kenshin.audit.models import AuditEvent
from kenshin.core import permissions

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


def sign_in_password(client: Client, username: str, password: str = PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def session_cookie(client: Client) -> str:
    morsel = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return morsel.value if morsel is not None else ""


def events(kind: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=kind).order_by("seq"))


# --- generic failure, no enumeration ---------------------------------------------------------


def _failure_page(response, typed: str = "") -> str:
    """The page without the per-request CSRF token and the user name the user typed."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    return html.replace(f'value="{typed}"', 'value=""') if typed else html


def test_failure_is_identical_for_unknown_user_wrong_password_and_disabled_account(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    make_user("retired1", roles=["hokenshi"], is_active=False)
    unknown = sign_in_password(Client(), "nobody", "whatever-password-1")
    wrong = sign_in_password(Client(), "hokenshi1", "wrong-password-123")
    disabled = sign_in_password(Client(), "retired1", PASSWORD)
    assert unknown.status_code == wrong.status_code == disabled.status_code == 200
    assert GENERIC_FAILURE in unknown.content.decode()
    assert (
        _failure_page(unknown, "nobody")
        == _failure_page(wrong, "hokenshi1")
        == _failure_page(disabled, "retired1")
    )


def test_failed_login_is_audited_with_the_name_only_if_the_account_exists(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    sign_in_password(Client(), "hokenshi1", "wrong-password-123")
    sign_in_password(Client(), "my-secret-passphrase", "x" * 12)
    failed = events("login_failed")
    assert [e.username for e in failed] == ["hokenshi1", "(不明)"]
    assert all("wrong-password" not in e.detail and "x" * 12 not in e.detail for e in failed)


# --- lockout ----------------------------------------------------------------------------------


def test_lockout_after_five_failures_for_that_name_and_address_only(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    attacker = Client(REMOTE_ADDR="10.0.0.66")
    for _ in range(5):
        sign_in_password(attacker, "hokenshi1", "wrong-password-123")
    locked = sign_in_password(attacker, "hokenshi1", PASSWORD)  # even the right password
    assert locked.status_code == 429
    assert GENERIC_FAILURE in locked.content.decode()
    assert "_auth_user_id" not in attacker.session
    # A spoofed proxy header does not open a new address.
    spoofed = sign_in_password(attacker, "hokenshi1", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert spoofed.status_code == 429
    # The colleague at another terminal still signs in.
    colleague = Client(REMOTE_ADDR="10.0.0.7")
    ok = sign_in_password(colleague, "hokenshi1", PASSWORD)
    assert ok.status_code == 302 and ok["Location"] == reverse("accounts:mfa_verify")
    assert events("lockout")[0].username == "hokenshi1"


def test_lockout_page_is_the_same_for_existing_and_unknown_names(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    pages = []
    for name in ("hokenshi1", "nobody99"):
        client = Client(REMOTE_ADDR="10.0.0.66")
        for _ in range(5):
            sign_in_password(client, name, "wrong-password-123")
        pages.append(sign_in_password(client, name, "wrong-password-123"))
    assert pages[0].status_code == pages[1].status_code == 429
    assert _failure_page(pages[0]) == _failure_page(pages[1])


# --- password-only sessions reach nothing -----------------------------------------------------


def _walk(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from _walk(entry, ns)
        elif isinstance(entry, URLPattern):
            yield prefix, entry


def _dummy_url(prefix: str, pattern: URLPattern) -> str | None:
    """Reverse a pattern with placeholder arguments of the right converter type."""
    kwargs = {}
    for name, conv in pattern.pattern.converters.items():
        kwargs[name] = 1 if type(conv).__name__ == "IntConverter" else "x1"
    if not pattern.name:
        return None
    return reverse(f"{prefix}{pattern.name}", kwargs=kwargs)


def protected_urls() -> list[str]:
    urls = []
    for prefix, pattern in _walk(get_resolver()):
        access = permissions.access_of(pattern.callback)
        if access is not None and access.kind in (permissions.PUBLIC, permissions.PRE_MFA):
            continue
        url = _dummy_url(prefix, pattern)
        if url is not None:
            urls.append(url)
    return urls


def test_password_only_session_is_redirected_on_every_protected_route(make_user):
    user = make_user("kacho1", roles=["kacho", "system_admin"])
    client = Client()
    assert sign_in_password(client, "kacho1").status_code == 302
    verify_url = reverse("accounts:mfa_verify")
    urls = protected_urls()
    assert reverse("web:home") in urls and len(urls) >= 3
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, (url, response.status_code)
            assert response["Location"] == verify_url, url
    # The own-password page is pre_mfa (so "change required" cannot loop) but still refuses.
    assert client.get(reverse("accounts:password_change"))["Location"] == verify_url
    # After the second factor the same session works.
    assert client.post(verify_url, {"otp_token": current_code(user.totp)}).status_code == 302
    assert client.get(reverse("web:home")).status_code == 200


def test_password_only_session_without_a_device_goes_to_enrolment(make_user):
    make_user("new1", roles=["hokenshi"], totp=False)
    client = Client()
    response = sign_in_password(client, "new1")
    assert response["Location"] == reverse("accounts:mfa_enrol")
    assert client.get(reverse("web:home"))["Location"] == reverse("accounts:mfa_enrol")


def test_new_session_id_at_login_and_again_after_the_second_factor(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = Client()
    client.session.save()  # an anonymous session (and cookie) exists before signing in
    before = session_cookie(client)
    assert before
    sign_in_password(client, "hokenshi1")
    after_password = session_cookie(client)
    assert after_password and after_password != before
    client.post(reverse("accounts:mfa_verify"), {"otp_token": current_code(user.totp)})
    after_totp = session_cookie(client)
    assert after_totp != after_password
    assert UserSession.objects.filter(user=user, session_key=after_totp).exists()
    assert [e.username for e in events("login")] == ["hokenshi1"]


def test_pre_login_session_cookie_is_not_carried_into_the_signed_in_session(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    client = Client()
    session = client.session  # a session the attacker planted before the victim signs in
    session["planted"] = True
    session.save()
    planted = session.session_key
    client.cookies[settings.SESSION_COOKIE_NAME] = planted
    sign_in_password(client, "hokenshi1")
    assert session_cookie(client) != planted


# --- second factor ----------------------------------------------------------------------------


def test_wrong_code_is_refused_and_audited(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    client = Client()
    sign_in_password(client, "hokenshi1")
    response = client.post(reverse("accounts:mfa_verify"), {"otp_token": "000000"})
    assert response.status_code == 200
    assert "確認コードが正しくありません" in response.content.decode()
    assert client.get(reverse("web:home"))["Location"] == reverse("accounts:mfa_verify")
    assert len(events("mfa_failed")) == 1


def test_five_wrong_codes_end_the_session(make_user):
    make_user("hokenshi1", roles=["hokenshi"])
    TOTPDevice.objects.update(throttling_failure_count=0)
    client = Client()
    sign_in_password(client, "hokenshi1")
    for _ in range(mfa.MAX_FAILURES):
        TOTPDevice.objects.update(throttling_failure_timestamp=None)  # skip the wait
        response = client.post(reverse("accounts:mfa_verify"), {"otp_token": "000000"})
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("accounts:mfa_verify"))["Location"].startswith(LOGIN)


def test_recovery_code_works_once(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    code = mfa.issue_recovery_codes(user)[0]
    first = Client()
    sign_in_password(first, "hokenshi1")
    response = first.post(reverse("accounts:mfa_verify"), {"otp_token": code})
    assert response.status_code == 302
    assert first.get(reverse("web:home")).status_code == 200
    assert StaticToken.objects.filter(token=code).count() == 0
    second = Client()
    sign_in_password(second, "hokenshi1")
    again = second.post(reverse("accounts:mfa_verify"), {"otp_token": code})
    assert again.status_code == 200
    assert second.get(reverse("web:home"))["Location"] == reverse("accounts:mfa_verify")
    # A recovery code tried does not throttle the authenticator app.
    assert TOTPDevice.objects.get(user=user).throttling_failure_count == 0


def test_enrolment_shows_a_qr_svg_confirms_with_a_code_and_shows_recovery_codes_once(make_user):
    user = make_user("new1", roles=["hokenshi"], totp=False)
    client = Client()
    sign_in_password(client, "new1")
    page = client.get(reverse("accounts:mfa_enrol"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and "<script" not in html and "style=" not in html
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert mfa.secret_base32(device) in html
    assert client.get(reverse("accounts:mfa_enrol")).status_code == 200  # reload: same device
    assert TOTPDevice.objects.filter(user=user).count() == 1
    response = client.post(reverse("accounts:mfa_enrol"), {"otp_token": current_code(device)})
    assert response["Location"] == reverse("accounts:recovery_codes")
    shown = client.get(reverse("accounts:recovery_codes")).content.decode()
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(codes) == 10 and all(c in shown for c in codes)
    again = client.get(reverse("accounts:recovery_codes")).content.decode()
    assert not any(c in again for c in codes)
    assert client.get(reverse("web:home")).status_code == 200
    assert len(events("mfa_enrolled")) == 1


def test_a_password_alone_cannot_enrol_a_second_device(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = Client()
    sign_in_password(client, "hokenshi1")
    response = client.get(reverse("accounts:mfa_enrol"))
    assert response["Location"] == reverse("accounts:mfa_verify")
    assert TOTPDevice.objects.filter(user=user).count() == 1


# --- logout -----------------------------------------------------------------------------------


def test_logout_is_post_only(make_user, signed_in):
    client = signed_in(make_user("hokenshi1", roles=["hokenshi"]))
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert client.get(reverse("web:home")).status_code == 200


def test_old_session_cookie_replayed_after_logout_is_sent_to_login(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = Client()
    sign_in_password(client, "hokenshi1")
    client.post(reverse("accounts:mfa_verify"), {"otp_token": current_code(user.totp)})
    stolen = session_cookie(client)
    assert client.get(reverse("web:home")).status_code == 200
    assert client.post(reverse("accounts:logout"))["Location"] == LOGIN
    assert not UserSession.objects.filter(user=user).exists()
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = stolen
    response = replay.get(reverse("web:home"))
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert len(events("logout")) == 1


def test_account_disable_ends_its_sessions(make_user, signed_in):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in(user)
    assert client.get(reverse("web:home")).status_code == 200
    assert UserSession.objects.filter(user=user).count() == 1
    key = client.session.session_key
    user.is_active = False
    user.save()
    assert UserSession.objects.filter(user=user).count() == 0
    assert not Session.objects.filter(session_key=key).exists()
    response = client.get(reverse("web:home"))
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert events("session_ended")


def test_login_page_keeps_a_safe_next_and_drops_an_outside_one(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    for target, expected in (("/audit/", "/audit/"), ("https://evil.example/", "/")):
        client = Client()
        client.post(LOGIN, {"username": "hokenshi1", "password": PASSWORD, "next": target})
        TOTPDevice.objects.filter(pk=user.totp.pk).update(last_t=-1)  # reuse the code window
        response = client.post(
            reverse("accounts:mfa_verify"), {"otp_token": current_code(user.totp)}
        )
        assert response["Location"] == expected
