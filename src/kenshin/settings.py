"""Django settings, read from the environment.

Why environment variables: the same code runs as the embedded demo (SQLite under var/),
in CI against PostgreSQL, and in a city's data centre, without editing files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BASE_DIR.parent.parent
VAR_DIR = Path(os.environ.get("KENSHIN_VAR_DIR", PROJECT_DIR / "var"))

DEBUG = os.environ.get("KENSHIN_DEBUG", "0") == "1"
DEMO_MODE = os.environ.get("KENSHIN_DEMO", "0") == "1"

_secret = os.environ.get("KENSHIN_SECRET_KEY")
if not _secret:
    _dev = DEBUG or DEMO_MODE or "pytest" in sys.modules
    if not (_dev or os.environ.get("KENSHIN_ALLOW_DEV_SECRET") == "1"):
        raise RuntimeError(
            "KENSHIN_SECRET_KEY を設定してください（本番の必須設定。docs/operations.md）。"
            "デモは scripts/demo、開発中の一時利用は KENSHIN_DEBUG=1 で起動できます。"
        )
    _secret = "dev-only-insecure-key-not-for-production"  # noqa: S105  # nosec B105 - demo/test only
SECRET_KEY = _secret

ALLOWED_HOSTS = [
    h for h in os.environ.get("KENSHIN_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h
]

# Municipality (地方公共団体コード, 6 digits with check digit). Every tenant-scoped table
# carries it so that a prefecture-wide deployment can partition by it later.
MUNICIPALITY_CODE = os.environ.get("KENSHIN_MUNICIPALITY_CODE", "342025")  # 呉市
MUNICIPALITY_NAME = os.environ.get("KENSHIN_MUNICIPALITY_NAME", "呉市")
# The city's name in Latin letters: a context word the password policy refuses (AUTH-03).
MUNICIPALITY_ROMAJI = os.environ.get("KENSHIN_MUNICIPALITY_ROMAJI", "kure")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "kenshin.core",
    "kenshin.accounts",
    "kenshin.audit",
    "kenshin.residents",
    "kenshin.linkage",
    "kenshin.programs",
    "kenshin.screening",
    "kenshin.intake",
    "kenshin.web",
    "kenshin.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Idle (30 min; 15 min after a page showing 個人番号) and absolute (12 h) session limits.
    "kenshin.accounts.middleware.SessionPolicyMiddleware",
    # Deny by default: every view must declare its access (core.permissions); password-only
    # sessions reach only enrolment, second-factor entry and logout (AUTH-01, ACL-01).
    "kenshin.accounts.middleware.AccessGateMiddleware",
    "kenshin.web.middleware.NoStoreMiddleware",
    # Last, as django-axes asks: it turns lockouts into the response below.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kenshin.urls"
WSGI_APPLICATION = "kenshin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "web" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kenshin.web.context.site",
            ],
        },
    }
]


def _sqlite(name: str) -> dict:
    """An embedded SQLite database under var/, in WAL mode (readers never block the writer)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / f"{name}.sqlite3"),
        "OPTIONS": {
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"
                "PRAGMA foreign_keys=ON;PRAGMA temp_store=MEMORY;"
                "PRAGMA cache_size=-262144;PRAGMA mmap_size=1073741824;"
            ),
            "transaction_mode": "IMMEDIATE",
            # A full import holds the single write lock for a while; staff requests that
            # write (the session) wait for it instead of failing after the default 5 s.
            "timeout": 30,
        },
        "TEST": {"NAME": str(VAR_DIR / f"test_{name}.sqlite3")}
        if os.environ.get("KENSHIN_TEST_SQLITE_FILE") == "1"
        else {},
    }


_db_url = os.environ.get("DATABASE_URL", "").strip()
if _db_url:
    DATABASES = {"default": dj_database_url.parse(_db_url, conn_max_age=60)}
else:
    DATABASES = {"default": _sqlite("kenshin")}


def _linkage_database() -> dict:
    """The 番号連携サーバ's own database (alias ``linkage``; MN-01).

    KENSHIN_LINKAGE_DATABASE_URL names it in production, where it is a separate PostgreSQL
    database reached with its own role (docs/linkage.md). Without it: a separate SQLite file
    beside the main one, or — when the main database is PostgreSQL, as in CI — a sibling
    database ``<main>_linkage`` on the same server. The deploy check warns when the linkage
    database is reached with the main database's role.
    """
    url = os.environ.get("KENSHIN_LINKAGE_DATABASE_URL", "").strip()
    if url:
        return dj_database_url.parse(url, conn_max_age=60)
    if _db_url:
        cfg = dj_database_url.parse(_db_url, conn_max_age=60)
        cfg["NAME"] = f"{cfg['NAME']}_linkage"
        return cfg
    return _sqlite("linkage")


DATABASES["linkage"] = _linkage_database()


def _jobs_database() -> dict:
    """The job queue and the job progress records (alias ``jobs``; docs/architecture.md).

    Why a database of its own: a long job (a roster build, a full import) may hold one write
    transaction on ``default`` for minutes. Its progress must still reach the screen, so the
    progress rows are written on another connection that commits at once — and on SQLite a
    second connection cannot write to a file whose single write lock the job holds. A separate
    file (SQLite) or database (PostgreSQL: ``<main>_jobs`` unless KENSHIN_JOBS_DATABASE_URL
    names one) has its own lock; the worker's polling never waits for the job either.
    """
    url = os.environ.get("KENSHIN_JOBS_DATABASE_URL", "").strip()
    if url:
        return dj_database_url.parse(url, conn_max_age=60)
    if _db_url:
        cfg = dj_database_url.parse(_db_url, conn_max_age=60)
        cfg["NAME"] = f"{cfg['NAME']}_jobs"
        return cfg
    return _sqlite("jobs")


DATABASES["jobs"] = _jobs_database()
# Which app's tables live in which database (core.dbrouter). Everything else is "default".
# core's only table is the job progress record; django_tasks_database is the task queue.
APP_DATABASES = {"linkage": "linkage", "core": "jobs", "django_tasks_database": "jobs"}
DATABASE_ROUTERS = ["kenshin.core.dbrouter.AppDatabaseRouter"]

# 番号連携サーバ (docs/linkage.md). Keys never come from SECRET_KEY or the database: from the
# environment (KENSHIN_LINKAGE_KEYS="1:<base64>,2:<base64>", KENSHIN_LINKAGE_ACTIVE_KEY,
# KENSHIN_LINKAGE_INDEX_KEY) or from a key file readable only by its owner.
LINKAGE_KEY_FILE = os.environ.get("KENSHIN_LINKAGE_KEY_FILE", "") or (
    str(VAR_DIR / "keys" / "linkage-keys.json") if (DEBUG or DEMO_MODE) else ""
)
# Empty: the in-process adapter (the embedded default). Otherwise the base URL of a
# `kenshin linkage serve` process, e.g. https://linkage.internal:8443/
LINKAGE_URL = os.environ.get("KENSHIN_LINKAGE_URL", "").strip()
# This system's credential towards the linkage server, from the environment or a file.
LINKAGE_CREDENTIAL = os.environ.get("KENSHIN_LINKAGE_CREDENTIAL", "").strip()
LINKAGE_CREDENTIAL_FILE = os.environ.get("KENSHIN_LINKAGE_CREDENTIAL_FILE", "") or (
    str(VAR_DIR / "keys" / "linkage-credential") if (DEBUG or DEMO_MODE) else ""
)
LINKAGE_SYSTEM_CODE = "kenshin"
# The 事務 this system performs (番号法 別表): 健康増進法による健康増進事業の実施に関する事務.
LINKAGE_JIMU = "kenko_zoshin"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# Argon2id (AUTH-04; ASVS V11.4.2). PBKDF2 stays second only to read hashes made before.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Length >= 12, no composition rules, common passwords and context words refused (AUTH-03).
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "kenshin.accounts.passwords.ContextWordValidator"},
]
# 0 = passwords do not expire (the default; docs/security.md says why). Forced change after a
# suspected compromise works whatever this is.
PASSWORD_MAX_AGE_DAYS = int(os.environ.get("KENSHIN_PASSWORD_MAX_AGE_DAYS", "0"))
TEMP_PASSWORD_HOURS = 24

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Passwords from the user table; permissions only from role assignments (never from
    # is_superuser or Django's own permission tables).
    "kenshin.accounts.backends.RoleBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Sessions (SESS-01..03): server-side rows, new id at login, 12 h absolute, idle limits below.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 12 * 60 * 60
SESSION_ABSOLUTE_SECONDS = 12 * 60 * 60
SESSION_IDLE_SECONDS = 30 * 60
SESSION_IDLE_SECONDS_MYNUMBER = 15 * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not (DEBUG or DEMO_MODE) and (
    os.environ.get("KENSHIN_INSECURE_COOKIES") != "1"
)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if SESSION_COOKIE_SECURE:
    # __Host- cookies cannot be set by a sibling host or for another path (ASVS V3.3.3).
    SESSION_COOKIE_NAME = "__Host-kenshin_session"
    CSRF_COOKIE_NAME = "__Host-kenshin_csrf"
# Step-up: a fresh TOTP is asked again before sensitive actions (ACL-05).
STEP_UP_SECONDS = 5 * 60
OTP_TOTP_ISSUER = "Kenshin"

# Throttling and lockout (AUTH-05): by user name and address together, so nobody can lock a
# colleague out from another terminal; a cool-off rather than a permanent lock.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "kenshin.accounts.views.lockout"
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_SENSITIVE_PARAMETERS = ["username", "password", "otp_token"]

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Production sits behind TLS: redirect plain http and pin HTTPS (check --deploy is clean).
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE and os.environ.get("KENSHIN_SSL_REDIRECT", "1") == "1"
SECURE_HSTS_SECONDS = 31_536_000 if SESSION_COOKIE_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SESSION_COOKIE_SECURE
SECURE_HSTS_PRELOAD = False
if os.environ.get("KENSHIN_BEHIND_PROXY") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SILENCED_SYSTEM_CHECKS = ["security.W021"]  # HSTS preload is a per-domain decision

# Content Security Policy: nothing inline, nothing from elsewhere (SESS-05).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Background jobs (core.jobs): django-tasks with its database backend; `kenshin db_worker`
# runs them (docs/operations.md). Under pytest they run inline, at enqueue, so a test sees the
# finished job; tests of the queue itself switch to the database backend.
TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend"
        if "pytest" in sys.modules
        else "django_tasks_db.DatabaseBackend",
    }
}

# Error reports (ADMINS mail, debug page) never show POST values or local variables.
DEFAULT_EXCEPTION_REPORTER_FILTER = "kenshin.core.errors.NoPersonalDataFilter"

# The audit API (core.audit.record) hands each entry to this writer; no fallback.
KENSHIN_AUDIT_WRITER = "kenshin.audit.services.append"
# Office hours for the access review's "outside office hours" report.
OFFICE_HOURS = (
    os.environ.get("KENSHIN_OFFICE_OPEN", "08:00"),
    os.environ.get("KENSHIN_OFFICE_CLOSE", "18:30"),
)

# Initial and reset passwords go to the user, never to the administrator (AUTH-07). Mail is
# the channel; the demo and tests write it to files under var/mail/.
EMAIL_BACKEND = os.environ.get(
    "KENSHIN_EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if (DEBUG or DEMO_MODE)
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "mail"

# Result intake (issue 7; security.md IMP-01): uploaded files are kept outside the web root
# under random names until committed or discarded; the limits refuse a file before any row.
INTAKE_DIR = VAR_DIR / "intake"
INTAKE_MAX_BYTES = int(os.environ.get("KENSHIN_INTAKE_MAX_BYTES", 100 * 1024 * 1024))
INTAKE_MAX_ROWS = int(os.environ.get("KENSHIN_INTAKE_MAX_ROWS", 500_000))
INTAKE_MAX_COLUMNS = 200
INTAKE_MAX_XLSX_EXPANDED = 256 * 1024 * 1024
INTAKE_MAX_ZIP_RATIO = 100
# Above this many new or corrected rows, a second person approves before the commit.
# The columnar fast path of staging (intake/columnar.py); off only to compare it with the
# row-by-row path (intake/tests/test_columnar.py) or to look into a file's staging.
INTAKE_COLUMNAR = os.environ.get("KENSHIN_INTAKE_COLUMNAR", "1") == "1"
# The fast path asks for the vouchers and their holders on a second connection while it
# checks the cells (when staging runs outside a transaction of its caller); off: in order.
INTAKE_LOOK_UP_APART = os.environ.get("KENSHIN_INTAKE_LOOK_UP_APART", "1") == "1"
INTAKE_APPROVAL_ROWS = int(os.environ.get("KENSHIN_INTAKE_APPROVAL_ROWS", 1_000))
EMAIL_HOST = os.environ.get("KENSHIN_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("KENSHIN_EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("KENSHIN_EMAIL_FROM", "kenshin@localhost")

LANGUAGE_CODE = "ja"
TIME_ZONE = "Asia/Tokyo"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("KENSHIN_LOG_LEVEL", "INFO")},
    # WeasyPrint narrates every step of every PDF at INFO; its warnings are what matter.
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
