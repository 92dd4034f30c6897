"""What the benchmark scripts share: where their scratch data lives, and how a child process
is pointed at one database (each measurement runs in a fresh process)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PG_URL = os.environ.get("KENSHIN_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/kenshin_bench")


def child_env(db: str) -> dict[str, str]:
    """Environment for a child process measuring `db` ("sqlite" or "postgres")."""
    env = dict(
        os.environ,
        KENSHIN_ALLOW_DEV_SECRET="1",
        DJANGO_SETTINGS_MODULE="kenshin.settings",
        PYTHONPATH=str(ROOT / "src"),
    )
    if db == "postgres":
        env["DATABASE_URL"] = PG_URL
    else:
        env.pop("DATABASE_URL", None)
        env["KENSHIN_VAR_DIR"] = str(OUT / "sqlite")
    # The embedded 番号連携サーバ: bench-only random keys (fresh databases every run) and this
    # system's credential in a file the child writes (linkage.services.ensure_embedded_setup).
    keys = [base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(2)]
    env.update(
        KENSHIN_LINKAGE_KEYS=f"1:{keys[0]}",
        KENSHIN_LINKAGE_ACTIVE_KEY="1",
        KENSHIN_LINKAGE_INDEX_KEY=keys[1],
        KENSHIN_LINKAGE_CREDENTIAL_FILE=str(OUT / f"linkage-credential-{db}"),
    )
    env.pop("KENSHIN_LINKAGE_CREDENTIAL", None)
    return env


def run_child(script: str, db: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `script --child ARGS` against `db` in a fresh process; return its last JSON line.

    ``env``: the child's environment when the script keeps its own databases (ledger.py)."""
    proc = subprocess.run(
        [sys.executable, script, "--child", *args],
        env=env if env is not None else child_env(db),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])
