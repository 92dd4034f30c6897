"""`kenshin linkage serve`: its own settings (no way to the main database), a real process on
loopback answering /healthz and a look-up, and an access log without personal data."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import date

import httpx
import pytest

from kenshin.core.mynumber import check_digit, find_all
from kenshin.linkage import contract, rules
from kenshin.linkage.contract import AtenaIn
from kenshin.linkage.http_client import HttpClient

PROBE = """
import json, django
from django.conf import settings
from django.db import connections
django.setup()
out = {"apps": settings.INSTALLED_APPS, "middleware": settings.MIDDLEWARE,
       "aliases": sorted(settings.DATABASES), "default_engine": connections["default"].settings_dict["ENGINE"],
       "linkage_name": str(settings.DATABASES["linkage"]["NAME"])}
try:
    connections["default"].cursor()
    out["default"] = "reachable"
except Exception as exc:
    out["default"] = type(exc).__name__
from django.apps import apps
from django.db import router
out["routed"] = sorted({router.db_for_read(m) for m in apps.get_app_config("linkage").get_models()})
print(json.dumps(out))
"""


def _synthetic_my_number(seed: int) -> str:
    first = f"{seed:011d}"
    return first + str(check_digit(first))


def test_server_settings_cannot_reach_the_main_database(tmp_path) -> None:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="kenshin.linkage.server_settings",
        KENSHIN_LINKAGE_DATABASE_URL=f"sqlite:///{tmp_path / 'linkage.sqlite3'}",
        KENSHIN_VAR_DIR=str(tmp_path / "var"),
    )
    env.pop("KENSHIN_SECRET_KEY", None)  # the server needs none of the main system's secrets
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["aliases"] == ["default", "linkage"]
    assert out["default_engine"] == "django.db.backends.dummy"
    assert out["default"] == "ImproperlyConfigured"
    assert out["linkage_name"] == str(tmp_path / "linkage.sqlite3")
    assert out["routed"] == ["linkage"]
    assert not {"django.contrib.auth", "django.contrib.sessions", "django.contrib.admin"} & set(
        out["apps"]
    )
    assert out["middleware"] == ["django.middleware.security.SecurityMiddleware"]


def test_serve_answers_healthz_and_nothing_of_the_staff_site(http_linkage_server) -> None:
    url = http_linkage_server.url
    health = httpx.get(url + "healthz", trust_env=False)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert httpx.get(url + "accounts/login/", trust_env=False).status_code == 404
    spec = httpx.get(url + "api/linkage/v1/openapi.json", trust_env=False).json()
    assert spec["openapi"].startswith("3.1")


def test_serve_registers_and_looks_up_by_my_number_and_logs_no_number(
    http_linkage_server, http_linkage_client, http_linkage_events
) -> None:
    number = _synthetic_my_number(random.SystemRandom().randrange(10**10, 10**11))
    last = (http_linkage_events() or [{"id": 0}])[-1]["id"]
    registered = http_linkage_client.register(
        AtenaIn(
            atena_no=f"S{number[-8:]}",
            name="試験　四郎",
            name_kana="シケン　シロウ",
            birth_date=date(1970, 5, 6),
            sex=1,
            address=f"広島県呉市起動確認町{number[-6:]}",
            my_number=number,
        ),
        actor="hokenshi1",
    )
    fullwidth = number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    found = http_linkage_client.find_by_my_number(fullwidth, actor="hokenshi1")
    assert found == registered.unified_atena_no
    events = http_linkage_events(last)
    assert [e["operation"] for e in events][-1] == "find_by_my_number"
    assert events[-1]["unified_atena_no"] == found
    assert events[-1]["actor"] == "hokenshi1" and events[-1]["jimu_code"] == "kenko_zoshin"
    assert not find_all(json.dumps(events, default=str, ensure_ascii=False))
    line = '"POST /api/linkage/v1/find-by-my-number" 200'
    deadline = time.monotonic() + 5  # gunicorn writes the access line after the response
    while True:
        log = http_linkage_server.log_path.read_text(encoding="utf-8", errors="replace")
        if line in log or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert line in log
    assert not find_all(log)


def test_http_client_raises_the_contract_errors_with_the_servers_message(
    http_linkage_server,
) -> None:
    with HttpClient(http_linkage_server.url, "kl_0123456789ab_" + "y" * 43, "kenko_zoshin") as c:
        with pytest.raises(contract.Refused, match="連携認証情報"):
            c.find_by_atena("T0000000001", actor="hokenshi1")
    with HttpClient(http_linkage_server.url, http_linkage_server.token, "kenko_zoshin") as c:
        with pytest.raises(contract.NotFound):
            c.person(rules.unified_atena_no(rules.MAX_SERIAL), actor="hokenshi1")


def test_unreachable_server_is_a_linkage_error() -> None:
    from kenshin.linkage.tests.http_server import free_port

    with HttpClient(f"http://127.0.0.1:{free_port()}", "kl_x_y", "kenko_zoshin", timeout=2) as c:
        with pytest.raises(contract.LinkageError, match="接続できません"):
            c.find_by_atena("T0000000001", actor="hokenshi1")


def test_actor_in_japanese_travels_in_the_header(http_linkage_client, http_linkage_events) -> None:
    last = (http_linkage_events() or [{"id": 0}])[-1]["id"]
    http_linkage_client.find_by_atena("T0000000002", actor="健診バッチ（夜間）")
    assert http_linkage_events(last)[-1]["actor"] == "健診バッチ（夜間）"
