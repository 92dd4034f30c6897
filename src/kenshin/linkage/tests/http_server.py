"""Fixtures: a real `kenshin linkage serve` process on loopback, for the contract suite over HTTP.

Contract (names agreed with tests/test_contract.py and linkage/tests/conftest.py, which imports
them with ``from kenshin.linkage.tests.http_server import *``):

``http_linkage_server`` (session)
    Starts once per session: its own database (SQLite: a temp file; PostgreSQL, when
    DATABASE_URL is postgres: a database ``test_<main>_http`` created here and dropped at the
    end), ``kenshin linkage migrate``, ``system add kenshin --jimu kenko_zoshin``,
    ``credential issue kenshin``, then ``kenshin linkage serve --bind 127.0.0.1:<free port>
    --workers 1 --threads 4``, every command with
    ``DJANGO_SETTINGS_MODULE=kenshin.linkage.server_settings`` and the test keys inherited from
    the environment (root conftest). Waits for /healthz. Terminated at the end of the session;
    what it logged after the last test's capture is then handed to the guard and scanned at
    once (the guard's own test has run by then): a hit fails the session's teardown.
    The server's database is *not* reset between tests: use unique 宛名番号 / 個人番号 per test.

``http_linkage_client`` (function; the server is shared)
    ``HttpClient(url, token, "kenko_zoshin")`` for the system "kenshin". After each test the
    server's new log lines (gunicorn access log, Django logs) go to the leak guard's capture,
    so a 個人番号 printed by the server fails the suite like one printed in-process.

``http_linkage_events`` (function)
    A callable: ``http_linkage_events(after_id=0) -> list[dict]`` — the server database's
    LinkageEvent rows (id, at, system_code, actor, jimu_code, operation, unified_atena_no,
    result, detail as a dict), oldest first, read directly with sqlite3 / psycopg.

``http_linkage_admin`` (function)
    Runs `kenshin linkage …` in the server's environment: ``add_system(code, jimu_codes,
    name=None)``, ``issue_credential(system) -> token``, ``revoke(prefix or token)`` (returns
    once the server can no longer accept it: the server caches a credential for
    gateway.CACHE_SECONDS), ``client(token, jimu) -> HttpClient``, ``cli(*args) -> stdout``,
    and ``url``. Each command is a new process (~1 s).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kenshin.linkage.http_client import HttpClient

__all__ = [
    "LinkageServer",
    "http_linkage_admin",
    "http_linkage_client",
    "http_linkage_events",
    "http_linkage_server",
]

SYSTEM = "kenshin"
JIMU = "kenko_zoshin"
SERVER_SETTINGS = "kenshin.linkage.server_settings"
START_SECONDS = 60
CLI_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LinkageServer:
    """A running server: its URL, environment, database and log file."""

    url: str
    env: dict[str, str]
    database_url: str
    log_path: Path
    token: str = ""
    process: subprocess.Popen | None = None
    log_offset: int = 0
    _admin_db: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`kenshin linkage ARGS` in the server's environment."""
        return run_cli(self.env, *args, check=check)

    def new_log(self) -> str:
        """Log text written since the last call."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        self.log_offset += len(data)
        return data.decode("utf-8", "replace")

    def events(self, after_id: int = 0) -> list[dict[str, Any]]:
        cols = "id, at, system_code, actor, jimu_code, operation, unified_atena_no, result, detail"
        sql = f"SELECT {cols} FROM linkage_linkageevent WHERE id > %s ORDER BY id"
        names = [c.strip() for c in cols.split(",")]
        if self.database_url.startswith("sqlite"):
            conn = sqlite3.connect(f"file:{sqlite_path(self.database_url)}?mode=ro", uri=True)
            try:
                rows = conn.execute(sql.replace("%s", "?"), (after_id,)).fetchall()
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as conn:
                rows = conn.execute(sql, (after_id,)).fetchall()
        out = []
        for row in rows:
            item = dict(zip(names, row, strict=True))
            if isinstance(item["detail"], str):
                item["detail"] = json.loads(item["detail"])
            out.append(item)
        return out


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def run_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "kenshin.cli", "linkage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"kenshin linkage {args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def server_env(database_url: str, var_dir: Path) -> dict[str, str]:
    """The environment of the server and its commands: the test keys (root conftest put them
    in os.environ), its own database, server settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=SERVER_SETTINGS,
        KENSHIN_LINKAGE_DATABASE_URL=database_url,
        KENSHIN_VAR_DIR=str(var_dir),
        KENSHIN_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.pop("KENSHIN_LINKAGE_URL", None)
    return env


def _postgres_database(main_url: str) -> tuple[str, str]:
    """(admin URL on the maintenance database, URL of a fresh test_<main>_http database)."""
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(main_url)
    name = f"test_{cfg['NAME']}_http"
    admin = main_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin, main_url.rsplit("/", 1)[0] + "/" + name


def _drop_postgres(admin: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(database_url: str, workdir: Path, *, workers: int = 1, threads: int = 4):
    """Migrate, provision the "kenshin" system, start serving; returns a LinkageServer."""
    env = server_env(database_url, workdir / "var")
    port = free_port()
    server = LinkageServer(
        url=f"http://127.0.0.1:{port}/",
        env=env,
        database_url=database_url,
        log_path=workdir / "server.log",
    )
    server.cli("migrate")
    if database_url.startswith("sqlite"):
        # WAL lets the test read events while the server writes (persistent in the file).
        with sqlite3.connect(sqlite_path(database_url)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    server.cli("system", "add", SYSTEM, "--name", "健康管理システム（試験）", "--jimu", JIMU)
    server.token = server.cli("credential", "issue", SYSTEM).stdout.strip().splitlines()[-1]
    log = server.log_path.open("ab")
    server.process = subprocess.Popen(
        [
            sys.executable, "-m", "kenshin.cli", "linkage", "serve",
            "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers),
            "--threads", str(threads),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + START_SECONDS
    while True:
        if server.process.poll() is not None:
            raise RuntimeError("kenshin linkage serve exited:\n" + server.log_path.read_text())
        try:
            if httpx.get(server.url + "healthz", timeout=1, trust_env=False).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError("kenshin linkage serve did not answer /healthz in time")
        time.sleep(0.2)


def stop_server(server: LinkageServer) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


LOG_SOURCE = "kenshin linkage serve"


def _capture_log(config: pytest.Config, server: LinkageServer) -> str:
    """Hand the server's new log lines to the leak guard (MN-03), as logs of this test.
    Returns them."""
    text = server.new_log()
    if not text:
        return ""
    try:
        from tests.plugins.leakguard import CAPTURE
    except ImportError:  # pragma: no cover - the guard is part of the suite
        return text
    config.stash[CAPTURE].add("log", LOG_SOURCE, text)
    return text


def _scan_last_lines(config: pytest.Config, text: str) -> list[str]:
    """Scan what the server wrote after the last test's capture (shutting down, or the tail
    of a test that used only ``http_linkage_server``).

    Why here and not only through the capture: this runs when the session's fixtures are torn
    down — after tests/test_zz_leak_guard.py has already scanned the capture. Masked findings.
    """
    if not text:
        return []
    from kenshin.core.leakguard import NameMatcher, scan

    try:
        from tests.plugins.leakguard import CAPTURE
    except ImportError:  # pragma: no cover - the guard is part of the suite
        names: set[str] = set()
    else:
        names = config.stash[CAPTURE].names
    hits = scan(text, NameMatcher(names), where=f"log [{LOG_SOURCE}] @ session end")
    return [str(hit) for hit in hits]


@pytest.fixture(scope="session")
def http_linkage_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LinkageServer]:
    workdir = tmp_path_factory.mktemp("linkage-http")
    main_url = os.environ.get("DATABASE_URL", "")
    admin = ""
    if main_url.startswith(("postgres://", "postgresql://")):
        admin, database_url = _postgres_database(main_url)
    else:
        database_url = f"sqlite:///{workdir / 'linkage.sqlite3'}"
    try:
        server = start_server(database_url, workdir)
    except BaseException:
        if admin:
            _drop_postgres(admin, database_url)
        raise
    try:
        yield server
    finally:
        stop_server(server)
        # Every line the server wrote reaches the leak guard, the last ones included.
        hits = _scan_last_lines(pytestconfig, _capture_log(pytestconfig, server))
        if admin:
            _drop_postgres(admin, database_url)
    if hits:
        pytest.fail(
            "個人番号または住民の氏名が番号連携サーバのログに出ています（値は伏せて表示）:\n"
            + "\n".join(hits[:50]),
            pytrace=False,
        )


@pytest.fixture
def http_linkage_client(
    http_linkage_server: LinkageServer, request: pytest.FixtureRequest
) -> Iterator[HttpClient]:
    client = HttpClient(http_linkage_server.url, http_linkage_server.token, JIMU)
    try:
        yield client
    finally:
        client.close()
        _capture_log(request.config, http_linkage_server)


@pytest.fixture
def http_linkage_events(http_linkage_server: LinkageServer):
    return http_linkage_server.events


class LinkageAdmin:
    """Administration of the running server through its CLI (other systems, credentials)."""

    def __init__(self, server: LinkageServer):
        self.server = server
        self.url = server.url

    def cli(self, *args: str) -> str:
        return self.server.cli(*args).stdout

    def add_system(self, code: str, jimu_codes, name: str | None = None) -> None:
        jimu = ",".join(jimu_codes) if not isinstance(jimu_codes, str) else jimu_codes
        self.cli("system", "add", code, "--name", name or f"試験システム {code}", "--jimu", jimu)

    def issue_credential(self, system: str, *, expires_days: int | None = None) -> str:
        args = ["credential", "issue", system]
        if expires_days is not None:
            args += ["--expires", str(expires_days)]
        return self.cli(*args).strip().splitlines()[-1]

    def revoke(self, prefix: str) -> None:
        """Revoke, then wait until the server's credential cache has let go of it."""
        from kenshin.linkage import gateway

        # The command itself reads a bare prefix, kl_<prefix> or a whole token.
        self.cli("credential", "revoke", prefix)
        time.sleep(gateway.CACHE_SECONDS + 0.5)

    def client(self, token: str, jimu: str = JIMU) -> HttpClient:
        return HttpClient(self.server.url, token, jimu)


@pytest.fixture
def http_linkage_admin(
    http_linkage_server: LinkageServer, request: pytest.FixtureRequest
) -> Iterator[LinkageAdmin]:
    yield LinkageAdmin(http_linkage_server)
    _capture_log(request.config, http_linkage_server)
