"""Shared test fixtures: staff users with roles and a second factor, signed-in clients.

Why here: every app's tests need "a 保健師 who is signed in with password and TOTP", and the
security spine must be exercised the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest_plugins: list[str] = ["tests.plugins.leakguard", "kenshin.audit.testing"]


@pytest.fixture(autouse=True)
def _test_settings(settings):
    """Argon2id costs ~100 ms per hash by design; tests use a fast hasher except where they
    check the production setting itself (accounts tests read settings.PASSWORD_HASHERS first)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The test client speaks plain http; production redirects it to https (check --deploy).
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    """make_user("hokenshi1", roles=["hokenshi"], scope=("clinic", "3410000001"))

    The user gets a confirmed TOTP device (``user.totp``) so a test can produce codes.
    """
    from kenshin.accounts import testing

    return testing.make_user


@pytest.fixture
def signed_in(db) -> Callable[..., object]:
    """signed_in(user) -> a django.test.Client signed in with password and second factor."""
    from kenshin.accounts import testing

    return testing.signed_in_client
