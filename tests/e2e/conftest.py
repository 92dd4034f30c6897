"""Browser tests talk plain http to Django's live server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _plain_http_live_server():
    """Production redirects http to https; the live server has no TLS. Session-scoped and
    autouse so it is in place before ``live_server`` builds its middleware (which reads the
    setting once, at start)."""
    from django.conf import settings

    saved = settings.SECURE_SSL_REDIRECT
    settings.SECURE_SSL_REDIRECT = False
    yield
    settings.SECURE_SSL_REDIRECT = saved
