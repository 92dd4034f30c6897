"""`manage.py check --deploy` is clean with production settings (SESS-05, issue 3 §3).

Run in a subprocess because settings are read from the environment once, at start-up: the
production values (secure cookies, HSTS, SSL redirect) cannot be switched on inside the test
process, which runs with the test settings.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def production_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KENSHIN_", "DJANGO_")) and k != "DATABASE_URL"
    }
    env.update(
        {
            "KENSHIN_SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters, random
            "KENSHIN_ALLOWED_HOSTS": "kenshin.example.lg.jp",
            "KENSHIN_VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "kenshin.settings",
            # The in-process 番号連携サーバ needs its keys and this system its credential.
            "KENSHIN_LINKAGE_KEYS": "1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "KENSHIN_LINKAGE_ACTIVE_KEY": "1",
            "KENSHIN_LINKAGE_INDEX_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "KENSHIN_LINKAGE_CREDENTIAL": "kl_" + secrets.token_urlsafe(8),
        }
    )
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_notices_insecure_cookies(tmp_path):
    """The check is live: plain-http cookies in production make it fail."""
    env = production_env(tmp_path) | {"KENSHIN_INSECURE_COOKIES": "1"}
    result = check_deploy(env)
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stdout + result.stderr


def test_check_deploy_refuses_linkage_without_keys(tmp_path):
    """The in-process vault cannot start without its keys (MN-04): an error, not a fallback."""
    env = production_env(tmp_path)
    del env["KENSHIN_LINKAGE_KEYS"]
    result = check_deploy(env)
    assert result.returncode != 0
    assert "linkage.E001" in result.stdout + result.stderr


def test_check_deploy_warns_when_linkage_shares_the_main_role(tmp_path):
    """One PostgreSQL role for both databases defeats MN-01; a role of its own is clean."""
    env = production_env(tmp_path) | {
        "DATABASE_URL": "postgres://kenshin_app@db.example.lg.jp:5432/kenshin"
    }
    shared = check_deploy(env)
    assert shared.returncode != 0
    assert "linkage.W001" in shared.stdout + shared.stderr
    env["KENSHIN_LINKAGE_DATABASE_URL"] = "postgres://kenshin_linkage@db.example.lg.jp:5432/linkage"
    separate = check_deploy(env)
    assert "linkage.W001" not in separate.stdout + separate.stderr


def test_check_deploy_wants_tls_to_a_remote_linkage_server(tmp_path):
    env = production_env(tmp_path) | {"KENSHIN_LINKAGE_URL": "http://linkage.example.lg.jp:8100/"}
    result = check_deploy(env)
    assert "linkage.W002" in result.stdout + result.stderr
