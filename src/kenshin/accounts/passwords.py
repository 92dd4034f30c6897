"""Password policy, expiry and temporary passwords (AUTH-03, AUTH-04, AUTH-07).

Why no composition rules: NIST SP 800-63B and ASVS V6 found that "one capital, one digit, one
symbol" makes passwords shorter and more predictable; length (12 or more), a list of common
passwords and words anyone would guess here (the city, the system) protect better.

Why temporary passwords are random, single-use and mailed: an administrator who resets a
password never sees or chooses it, so nobody but the user ever knew it; a copy found later
(a note, a mailbox) is worth nothing after the first sign-in or after 24 hours.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.mail import send_mail

from kenshin.core import audit, clock

# Always refused, whatever the city: the system's own names.
SYSTEM_WORDS = ("kenshin", "検診", "けんしん", "ケンシン")
# 呉市 in Latin letters; another city sets settings.MUNICIPALITY_ROMAJI.
DEFAULT_ROMAJI = "kure"
# Letters and digits nobody confuses on paper or on a phone (no 0/O, 1/l/I).
_TEMP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _fold(text: str) -> str:
    """NFKC then casefold: ＫＵＲＥ, Kure and kure are the same word."""
    return unicodedata.normalize("NFKC", text).casefold()


class ContextWordValidator:
    """Refuse passwords containing a word an attacker would try first in this city.

    The words: the municipality's name (and the name without 市/町/村), its romanisation,
    the system's names, the municipality code, and the user's own ID.
    """

    def __init__(self, extra_words: tuple[str, ...] = ()):
        self.extra_words = tuple(extra_words)

    def words(self, user: Any = None) -> list[str]:
        name = str(getattr(settings, "MUNICIPALITY_NAME", ""))
        words = [
            name,
            str(getattr(settings, "MUNICIPALITY_ROMAJI", DEFAULT_ROMAJI)),
            str(getattr(settings, "MUNICIPALITY_CODE", "")),
            *SYSTEM_WORDS,
            *self.extra_words,
        ]
        if len(name) > 2 and name[-1] in "市町村区":
            words.append(
                name[:-1]
            )  # 広島市 -> 広島 (a one-letter stem like 呉 would refuse too much)
        username = getattr(user, "username", "") if user is not None else ""
        if username and len(username) >= 3:
            words.append(username)
        return [w for w in (_fold(w) for w in words) if w]

    def validate(self, password: str, user: Any = None) -> None:
        folded = _fold(password)
        for word in self.words(user):
            if word in folded:
                raise ValidationError(
                    "市の名前・システム名・市区町村コード・利用者IDなど、"
                    "推測されやすい語を含むパスワードは使えません。",
                    code="password_context_word",
                )

    def get_help_text(self) -> str:
        return "市の名前・システム名・利用者IDなど、推測されやすい語を含めないでください。"


def is_temporary(user: Any) -> bool:
    """The current password is an initial or reset one (not chosen by the user)."""
    return getattr(user, "temp_password_expires_at", None) is not None


def temporary_usable(user: Any) -> bool:
    """A temporary password may sign in once, before it expires; a user's own one always may."""
    if not is_temporary(user):
        return True
    return not user.temp_password_used and clock.now() < user.temp_password_expires_at


def change_required(user: Any) -> bool:
    """Must this user choose a new password before doing anything else?"""
    if getattr(user, "must_change_password", False) or is_temporary(user):
        return True
    max_age = int(getattr(settings, "PASSWORD_MAX_AGE_DAYS", 0) or 0)
    if max_age > 0:
        changed = user.password_changed_at or user.date_joined
        return changed is None or clock.now() - changed > timedelta(days=max_age)
    return False


def generate_temporary(user: Any = None) -> str:
    """A random password that passes the policy: four groups of four, easy to type once."""
    for _ in range(20):
        raw = "".join(secrets.choice(_TEMP_ALPHABET) for _ in range(16))
        password = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        try:
            password_validation.validate_password(password, user)
        except ValidationError:
            continue
        return password
    raise RuntimeError("仮パスワードを生成できませんでした")  # pragma: no cover


def issue_temporary(user: Any, *, actor: Any = None) -> str:
    """Give ``user`` a fresh temporary password and return it for delivery (never for display).

    It is good for one sign-in within settings.TEMP_PASSWORD_HOURS, after which the user can
    only choose a new password. Existing sessions end: a reset usually means "something is
    wrong with this account".
    """
    from kenshin.accounts import sessions

    password = generate_temporary(user)
    user.set_password(password)
    user.temp_password_expires_at = clock.now() + timedelta(hours=settings.TEMP_PASSWORD_HOURS)
    user.temp_password_used = False
    user.must_change_password = True
    user.save()
    audit.record(
        audit.Event.PASSWORD_CHANGE,
        actor,
        audit.Subject.user(user.pk),
        kind="temporary_issued",
    )
    sessions.end_all(user, actor=actor, record_empty=False)
    return password


def deliver_temporary(user: Any, password: str) -> None:
    """Mail the temporary password to the user themself. Raises ValueError without an address.

    Never logged and never returned to an administrator's screen.
    """
    if not user.email:
        raise ValueError(
            "この利用者にはメールアドレスが登録されていないため、仮パスワードを送れません"
        )
    hours = settings.TEMP_PASSWORD_HOURS
    body = (
        f"{user.display_name or user.username} 様\n\n"
        f"{settings.MUNICIPALITY_NAME} 検診システムの仮パスワードをお知らせします。\n\n"
        f"  利用者ID　　: {user.username}\n"
        f"  仮パスワード: {password}\n\n"
        f"この仮パスワードは発行から{hours}時間以内に、1回だけログインに使えます。\n"
        "ログインするとすぐに新しいパスワードを決めていただきます。\n"
        "心当たりのない場合は、システム管理者に連絡してください。\n"
    )
    send_mail(
        f"【{settings.MUNICIPALITY_NAME} 検診システム】仮パスワードのお知らせ",
        body,
        None,
        [user.email],
    )


def mark_temporary_used(user: Any) -> bool:
    """Spend the temporary password at the sign-in that uses it; False if it is already spent.

    Why a conditional UPDATE and not read-then-save: two sign-ins with the same copy of the
    password at the same moment would both read "unused" and both get in. The database lets
    exactly one UPDATE change the row; the other finds nothing to change and is refused.
    A user's own (non-temporary) password is always fine.
    """
    if not is_temporary(user):
        return True
    from django.contrib.auth import get_user_model

    spent = (
        get_user_model()
        .objects.filter(
            pk=user.pk, temp_password_used=False, temp_password_expires_at__gt=clock.now()
        )
        .update(temp_password_used=True)
    )
    user.temp_password_used = True
    return spent == 1


def record_change(user: Any) -> None:
    """After the user chose a new password: no longer temporary, no longer forced.

    ``password_changed_at`` itself is stamped by signals.stamp_password_change on every save
    that changes the password, whoever changes it.
    """
    user.temp_password_expires_at = None
    user.temp_password_used = False
    user.must_change_password = False
    user.save()


def force_change(user: Any, *, actor: Any = None) -> int:
    """Suspected compromise: the next sign-in must choose a new password; every session ends.

    Returns the number of sessions ended.
    """
    from kenshin.accounts import sessions

    user.must_change_password = True
    user.save(update_fields=["must_change_password"])
    audit.record(
        audit.Event.PASSWORD_CHANGE,
        actor,
        audit.Subject.user(user.pk),
        kind="change_forced",
    )
    return sessions.end_all(user, actor=actor, record_empty=False)
