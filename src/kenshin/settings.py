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

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "kenshin.core",
    "kenshin.accounts",
    "kenshin.residents",
    "kenshin.web",
    "kenshin.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "kenshin.web.middleware.NoStoreMiddleware",
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_AGE = 12 * 60 * 60
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not (DEBUG or DEMO_MODE) and (
    os.environ.get("KENSHIN_INSECURE_COOKIES") != "1"
)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

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
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
