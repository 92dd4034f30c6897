"""Settings of the 番号連携サーバ process (`kenshin linkage serve`; MN-01).

Why its own settings and not the health system's: the linkage server is meant to run as its own
service — on its own machine, with its own database role — and must not be able to reach the
main database at all. Here ``default`` is Django's dummy backend (any query on it raises), and
only the apps the server needs are installed: no sessions, no staff accounts, no admin, no
templates, no CSRF (callers authenticate with a bearer credential, never a cookie).

What is shared with kenshin.settings is read from it: how the ``linkage`` database is found
(KENSHIN_LINKAGE_DATABASE_URL, else the sibling of the main one), the municipality, the key
file, time zone and logging. Importing kenshin.settings needs a SECRET_KEY; the server signs
nothing, so when none is set it gets a random one for this process only.

Every ``kenshin linkage …`` command also runs under these settings
(``DJANGO_SETTINGS_MODULE=kenshin.linkage.server_settings``), which is how an operator runs
them on the linkage server's own machine.
"""

from __future__ import annotations

import os
import secrets

_had_secret = bool(os.environ.get("KENSHIN_SECRET_KEY"))
if not _had_secret:
    os.environ["KENSHIN_SECRET_KEY"] = secrets.token_urlsafe(50)
try:
    from kenshin import settings as _main
finally:
    if not _had_secret:
        del os.environ["KENSHIN_SECRET_KEY"]

# Signs nothing here (no sessions, cookies or CSRF tokens); Django only wants it to be set.
SECRET_KEY = os.environ.get("KENSHIN_LINKAGE_SECRET_KEY") or secrets.token_urlsafe(50)

BASE_DIR = _main.BASE_DIR
PROJECT_DIR = _main.PROJECT_DIR
VAR_DIR = _main.VAR_DIR
DEBUG = _main.DEBUG
DEMO_MODE = _main.DEMO_MODE
ALLOWED_HOSTS = [
    h
    for h in os.environ.get("KENSHIN_LINKAGE_ALLOWED_HOSTS", ",".join(_main.ALLOWED_HOSTS)).split(
        ","
    )
    if h
]

MUNICIPALITY_CODE = _main.MUNICIPALITY_CODE
MUNICIPALITY_NAME = _main.MUNICIPALITY_NAME

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "ninja",
    "kenshin.core",
    "kenshin.linkage",
]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
ROOT_URLCONF = "kenshin.linkage.server_urls"
TEMPLATES: list[dict] = []

# The main database is deliberately unreachable: an empty "default" is Django's dummy backend,
# whose every query raises ImproperlyConfigured. The router sends linkage's tables to
# "linkage" and nothing else is installed that has tables.
_linkage = dict(_main.DATABASES["linkage"])
# Persistent connections: every call is a few indexed statements, and opening a connection
# (PRAGMAs on SQLite, TLS + auth on PostgreSQL) would cost more than the call itself.
_linkage["CONN_MAX_AGE"] = max(_linkage.get("CONN_MAX_AGE") or 0, 600)
_linkage["CONN_HEALTH_CHECKS"] = True
if _linkage["ENGINE"].endswith("sqlite3") and not _linkage.get("OPTIONS"):
    # A file named by URL gets the embedded file's settings (WAL, IMMEDIATE transactions, a
    # 30 s lock wait): several workers and threads write the access log concurrently.
    _linkage["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DATABASES = {"default": {}, "linkage": _linkage}
APP_DATABASES = _main.APP_DATABASES
DATABASE_ROUTERS = _main.DATABASE_ROUTERS

LINKAGE_KEY_FILE = _main.LINKAGE_KEY_FILE
LINKAGE_SYSTEM_CODE = _main.LINKAGE_SYSTEM_CODE
LINKAGE_JIMU = _main.LINKAGE_JIMU
# The server is the linkage server: it never calls another one.
LINKAGE_URL = ""
LINKAGE_CREDENTIAL = ""
LINKAGE_CREDENTIAL_FILE = ""
# This process is the server: it answers credentials, it holds none (linkage.checks).
LINKAGE_SERVER = True

DEFAULT_AUTO_FIELD = _main.DEFAULT_AUTO_FIELD
LANGUAGE_CODE = _main.LANGUAGE_CODE
TIME_ZONE = _main.TIME_ZONE
USE_I18N = _main.USE_I18N
USE_TZ = _main.USE_TZ

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "no-referrer"
# TLS is terminated by gunicorn itself (serve --certfile/--keyfile) or by a proxy in front.
if os.environ.get("KENSHIN_BEHIND_PROXY") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = os.environ.get("KENSHIN_LINKAGE_SSL_REDIRECT") == "1"
# Request bodies are small JSON; a register_many batch is the largest (schemas.BATCH_MAX).
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# No POST value or frame variable in any error report: here plaintext 個人番号 sit in locals.
DEFAULT_EXCEPTION_REPORTER_FILTER = "kenshin.core.errors.NoPersonalDataFilter"
LOGGING = _main.LOGGING
