"""Shared test fixtures: staff users with roles and a second factor, signed-in clients.

Why here: every app's tests need "a 保健師 who is signed in with password and TOTP", and the
security spine must be exercised the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

pytest_plugins: list[str] = [
    "tests.plugins.leakguard",
    "kenshin.audit.testing",
    "kenshin.linkage.testing_guards",
]

# Test-only keys for the 番号連携サーバ vault (never used outside the test suite; production
# keys come from the environment or a key file: docs/linkage.md). Two encryption keys so that
# rotation can be tested; the index key is separate, as in production.
TEST_LINKAGE_KEYS = {
    "KENSHIN_LINKAGE_KEYS": "1:" + "MTEx" * 10 + "MTE=," + "2:" + "MjIy" * 10 + "MjI=",
    "KENSHIN_LINKAGE_ACTIVE_KEY": "1",
    "KENSHIN_LINKAGE_INDEX_KEY": "OTk5" * 10 + "OTk=",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, value in TEST_LINKAGE_KEYS.items():
        os.environ.setdefault(name, value)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every database test gets the linkage and the jobs databases too (settings.APP_DATABASES).

    Why: resident imports and pages reach the 番号連携サーバ through its client, whose tables
    live in their own database, and any action may start a background job, whose progress
    record lives in ``jobs``; pytest-django opens only "default" unless told. A test that
    names its own databases keeps them.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        uses_db = marker is not None or {"db", "transactional_db"} & set(item.fixturenames)
        if not uses_db or (marker is not None and "databases" in marker.kwargs):
            continue
        kwargs = dict(marker.kwargs) if marker is not None else {}
        transaction = "transactional_db" in item.fixturenames or kwargs.get("transaction")
        kwargs.update(databases=["default", "linkage", "jobs"], transaction=bool(transaction))
        # Prepended: the closest marker wins, for pytest-django and for the fixtures below.
        item.add_marker(
            pytest.mark.django_db(*(marker.args if marker else ()), **kwargs), append=False
        )


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


@pytest.fixture(autouse=True)
def _linkage_credential(request, settings):
    """Database tests may call the linkage server as this system ("kenshin", 健康増進事業).

    Why autouse: residents imports and the staff pages reach the linkage server through
    linkage.services.client(), which needs a credential; each test gets a fresh one in its
    own (rolled-back) database. Tests without the linkage database skip this (no query).
    The process-wide client is dropped first, so no test reuses another test's credential.
    """
    from kenshin.linkage import services as linkage_services

    linkage_services.reset_client()
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    databases = marker.kwargs.get("databases") or ()
    if "linkage" not in databases and databases != "__all__":
        return
    transactional = "transactional_db" in request.fixturenames or marker.kwargs.get("transaction")
    request.getfixturevalue("transactional_db" if transactional else "db")
    from kenshin.linkage import testing

    settings.LINKAGE_URL = ""
    settings.LINKAGE_CREDENTIAL = testing.provision()
