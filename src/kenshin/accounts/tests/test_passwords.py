"""Password hashing and policy, temporary passwords, forced change (AUTH-03, AUTH-04, AUTH-07)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import get_hasher, make_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from kenshin import settings as project_settings
from kenshin.accounts import passwords
from kenshin.accounts.forms import GENERIC_FAILURE
from kenshin.accounts.models import UserSession
from kenshin.accounts.testing import PASSWORD, current_code
from kenshin.audit.models import AuditEvent
from kenshin.core import clock

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
HOME = reverse("web:home")
CHANGE = reverse("accounts:password_change")


# --- hashing ----------------------------------------------------------------------------------


def test_argon2id_is_the_first_hasher_of_the_real_settings(settings):
    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS  # undo the fast test hasher
    assert get_hasher("default").algorithm == "argon2"
    assert make_password("a long pass phrase here").startswith("argon2$argon2id$")


# --- policy -----------------------------------------------------------------------------------


@pytest.fixture
def someone():
    return get_user_model()(username="yamamoto")


def refusal(password: str, user=None) -> list[str]:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        return [e.code for e in exc.error_list]
    return []


def test_a_twelve_character_passphrase_without_symbols_or_capitals_is_accepted(someone):
    assert len("quiet harbor") == 12
    assert refusal("quiet harbor", someone) == []


def test_eleven_characters_are_refused(someone):
    assert "password_too_short" in refusal("quiet harbo", someone)


def test_a_common_password_is_refused(someone):
    assert "password_too_common" in refusal("password123456", someone)


@pytest.mark.parametrize(
    "password",
    [
        "kure harbour walk",
        "KURE harbour walk",
        "ＫＵＲＥ harbour walk",  # full-width letters, folded by NFKC
        "呉市の海と山が好き",
        "my kenshin password",
        "検診のパスワードです",
        "342025 blue whales",
        "yamamoto rides a bike",
    ],
)
def test_context_words_are_refused(someone, password):
    assert "password_context_word" in refusal(password, someone)


def test_context_word_message_is_japanese(someone):
    with pytest.raises(ValidationError) as caught:
        passwords.ContextWordValidator().validate("kure harbour walk", someone)
    assert "推測されやすい語" in caught.value.messages[0]


def test_other_cities_name_their_own_words(settings, someone):
    settings.MUNICIPALITY_NAME = "広島市"
    settings.MUNICIPALITY_ROMAJI = "hiroshima"
    assert "password_context_word" in refusal("hiroshima harbour", someone)
    assert "password_context_word" in refusal("広島の海と山が好き", someone)


# --- expiry and forced change -----------------------------------------------------------------


def test_no_expiry_by_default_and_expiry_when_configured(make_user, settings):
    user = make_user("hokenshi1")
    assert user.password_changed_at is not None
    with clock.frozen(user.password_changed_at + timedelta(days=400)):
        assert not passwords.change_required(user)
        settings.PASSWORD_MAX_AGE_DAYS = 365
        assert passwords.change_required(user)


def test_forced_change_ends_sessions_and_sends_the_user_to_the_password_page(make_user, signed_in):
    user = make_user("hokenshi1", roles=["hokenshi"])
    other_terminal = signed_in(user)
    assert other_terminal.get(HOME).status_code == 200
    assert passwords.force_change(user) == 1
    assert other_terminal.get(HOME)["Location"].startswith(LOGIN)
    fresh = signed_in(user)
    assert fresh.get(HOME)["Location"] == CHANGE
    assert fresh.get(CHANGE).status_code == 200


def test_changing_the_password_clears_the_requirement_and_stamps_the_time(make_user, signed_in):
    user = make_user("hokenshi1", roles=["hokenshi"])
    passwords.force_change(user)
    client = signed_in(user)
    before = get_user_model().objects.get(pk=user.pk).password_changed_at
    same = client.post(
        CHANGE, {"old_password": PASSWORD, "new_password1": PASSWORD, "new_password2": PASSWORD}
    )
    assert "今までと同じパスワードは使えません" in same.content.decode()
    new = "a new quiet harbour walk"
    response = client.post(
        CHANGE, {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response["Location"] == HOME
    assert client.get(HOME).status_code == 200  # this session survives, under a new id
    user.refresh_from_db()
    assert not user.must_change_password and user.check_password(new)
    assert user.password_changed_at > before
    assert UserSession.objects.filter(user=user).count() == 1
    assert AuditEvent.objects.filter(event="password_change").exists()


# --- temporary passwords ----------------------------------------------------------------------


def _sign_in(client: Client, user, password: str):
    return client.post(LOGIN, {"username": user.username, "password": password})


def test_temporary_password_is_random_mailed_to_the_user_and_passes_the_policy(make_user):
    user = make_user("hokenshi1", email="hokenshi1@example.lg.jp")
    first = passwords.issue_temporary(user)
    second = passwords.issue_temporary(user)
    assert first != second
    password_validation.validate_password(second, user)
    passwords.deliver_temporary(user, second)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["hokenshi1@example.lg.jp"]
    assert second in mail.outbox[0].body and "仮パスワード" in mail.outbox[0].subject
    assert not AuditEvent.objects.filter(detail__contains=second).exists()
    user.refresh_from_db()
    assert user.must_change_password and not user.temp_password_used
    assert user.temp_password_expires_at - clock.now() <= timedelta(hours=24)


def test_temporary_password_without_an_address_is_not_delivered(make_user):
    user = make_user("hokenshi1")
    with pytest.raises(ValueError, match="メールアドレス"):
        passwords.deliver_temporary(user, passwords.issue_temporary(user))


def test_temporary_password_signs_in_once_and_then_only_the_password_page(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    temporary = passwords.issue_temporary(user)
    client = Client()
    assert _sign_in(client, user, temporary)["Location"] == reverse("accounts:mfa_verify")
    client.post(reverse("accounts:mfa_verify"), {"otp_token": current_code(user.totp)})
    assert client.get(HOME)["Location"] == CHANGE
    assert client.get(reverse("residents:search"))["Location"] == CHANGE
    assert client.get(CHANGE).status_code == 200
    # Spent: a second sign-in with it fails like a wrong password.
    again = _sign_in(Client(), user, temporary)
    assert again.status_code == 200 and GENERIC_FAILURE in again.content.decode()
    # Choosing a new password ends the temporary state.
    new = "my own long passphrase"
    client.post(CHANGE, {"old_password": temporary, "new_password1": new, "new_password2": new})
    assert client.get(HOME).status_code == 200
    user.refresh_from_db()
    assert user.temp_password_expires_at is None and not passwords.change_required(user)


def test_temporary_password_expires_after_24_hours(make_user):
    user = make_user("hokenshi1", roles=["hokenshi"])
    temporary = passwords.issue_temporary(user)
    with clock.frozen(clock.now() + timedelta(hours=24, minutes=1)):
        late = _sign_in(Client(), user, temporary)
    assert late.status_code == 200 and GENERIC_FAILURE in late.content.decode()
    with clock.frozen(clock.now() + timedelta(hours=23, minutes=59)):
        in_time = _sign_in(Client(), user, temporary)
    assert in_time.status_code == 302


def test_an_administrator_reset_ends_the_users_sessions(make_user, signed_in):
    user = make_user("hokenshi1", roles=["hokenshi"])
    client = signed_in(user)
    assert client.get(HOME).status_code == 200
    passwords.issue_temporary(user)
    assert client.get(HOME)["Location"].startswith(LOGIN)
