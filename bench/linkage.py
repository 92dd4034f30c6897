"""番号連携サーバ: look-ups per second by 個人番号 through each adapter, and rotate-key rows/s.

    uv run python bench/linkage.py --rows 100000
    uv run python bench/linkage.py --rows 100000 --db sqlite postgres
    uv run python bench/linkage.py --rows 100000 --rotate-rows 1000000 --skip-lookups

A fresh linkage database (SQLite file bench/out/linkage/linkage.sqlite3; PostgreSQL database
`kenshin_bench_linkage`, or --pg-url) is set up the way an operator would: `kenshin linkage
migrate`, `system add`, `credential issue`, every step under the server's own settings
(kenshin.linkage.server_settings) with bench-only random keys in the environment. Then:

- seed: N persons with a synthetic 個人番号 through ``InProcessClient.register_many`` in batches
  of --batch (the feed's path: validation, 名寄せ, encryption, blind index, events);
- in-process: --lookups random ``find_by_my_number`` calls in one thread (each: credential
  check (cached), normalise, HMAC, one indexed SELECT, one LinkageEvent INSERT);
- HTTP: the same through ``HttpClient`` against `kenshin linkage serve --workers 2 --threads 4`
  on loopback, with 1 and with 4 client threads (each its own keep-alive connection);
- raw: the indexed SELECT alone (blind index precomputed, sqlite3 / psycopg directly) on the
  same table — the floor. The ratio ours / raw is time per look-up;
- rotate: activate key 2, ``rotation.rotate_all()`` over every row (rows beyond N are added
  directly as Person + MyNumber rows, encrypted under key 1, when --rotate-rows > N), then a
  full pass that decrypts every row under the new key (the issue's "every row decrypts").

Each measurement runs in a fresh process (a child of this script); look-up figures are the
median of --runs runs with min–max. The machine has 2 cores: in the HTTP runs the client
threads and the server's workers share them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

from _common import OUT, PG_URL, ROOT

VAR = OUT / "linkage"
LINKAGE_PG_URL = PG_URL + "_linkage"
JIMU = "kenko_zoshin"
ACTOR = "bench"
STEP = 7919  # coprime with 10**11: i -> i*STEP+OFFSET is a permutation of the 11-digit bodies
OFFSET = 104_729


# ---------------------------------------------------------------- synthetic data


def my_number(i: int) -> str:
    """A synthetic 個人番号 (valid check digit) for person i; distinct for distinct i."""
    from kenshin.core.mynumber import check_digit

    body = f"{(i * STEP + OFFSET) % 10**11:011d}"
    return body + str(check_digit(body))


def atena(i: int):
    from datetime import date

    from kenshin.linkage.contract import AtenaIn

    return AtenaIn(
        atena_no=f"B{i:010d}",
        name=("山田　太郎", "佐藤　花子", "鈴木　一郎", "高橋　和子")[i % 4],
        name_kana=("ヤマダ　タロウ", "サトウ　ハナコ", "スズキ　イチロウ", "タカハシ　カズコ")[
            i % 4
        ],
        birth_date=date(1930 + i % 80, 1 + i % 12, 1 + i % 28),
        sex=1 + i % 2,
        address=f"広島県呉市ベンチ町{i}番地",
        my_number=my_number(i),
    )


# ---------------------------------------------------------------- child side


def _setup() -> None:
    import django

    django.setup()


def child_seed(rows: int, batch: int) -> dict:
    from kenshin.linkage.clients import InProcessClient

    client = InProcessClient(os.environ["KENSHIN_BENCH_TOKEN"], JIMU)
    started = time.perf_counter()
    for start in range(0, rows, batch):
        client.register_many(
            [atena(i) for i in range(start, min(rows, start + batch))], actor=ACTOR
        )
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _sample(rows: int, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [my_number(rng.randrange(rows)) for _ in range(n)]


def child_inprocess(rows: int, lookups: int, seed: int) -> dict:
    from kenshin.linkage.clients import InProcessClient

    client = InProcessClient(os.environ["KENSHIN_BENCH_TOKEN"], JIMU)
    for number in _sample(rows, 300, seed + 1):  # warm-up: connection, caches
        client.find_by_my_number(number, actor=ACTOR)
    numbers = _sample(rows, lookups, seed)
    started = time.perf_counter()
    misses = sum(client.find_by_my_number(n, actor=ACTOR) is None for n in numbers)
    seconds = time.perf_counter() - started
    return {"lookups": lookups, "seconds": seconds, "misses": misses}


def child_raw(rows: int, lookups: int, seed: int, db_url: str) -> dict:
    from kenshin.linkage import crypto

    ring = crypto.keyring()
    indexes = [ring.blind_index(n) for n in _sample(rows, lookups, seed)]
    sql = "SELECT person_id FROM linkage_mynumber WHERE blind_index = %s"
    if db_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        cur = conn.cursor()
        q = sql.replace("%s", "?")
        for ix in indexes[:300]:
            cur.execute(q, (ix,)).fetchone()
        started = time.perf_counter()
        misses = sum(cur.execute(q, (ix,)).fetchone() is None for ix in indexes)
    else:
        import psycopg

        conn = psycopg.connect(db_url, autocommit=True, prepare_threshold=0)
        cur = conn.cursor()
        for ix in indexes[:300]:
            cur.execute(sql, (ix,)).fetchone()
        started = time.perf_counter()
        misses = sum(cur.execute(sql, (ix,)).fetchone() is None for ix in indexes)
    seconds = time.perf_counter() - started
    conn.close()
    return {"lookups": lookups, "seconds": seconds, "misses": misses}


def child_http(rows: int, lookups: int, seed: int, url: str, threads: int) -> dict:
    from kenshin.linkage.http_client import HttpClient

    token = os.environ["KENSHIN_BENCH_TOKEN"]
    per = lookups // threads
    samples = [_sample(rows, per, seed + t) for t in range(threads)]
    clients = [HttpClient(url, token, JIMU) for _ in range(threads)]
    for c in clients:  # warm-up: connections, the server's caches
        for n in _sample(rows, 100, seed + 99):
            c.find_by_my_number(n, actor=ACTOR)
    misses = [0] * threads
    start = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        start.wait()
        misses[t] = sum(clients[t].find_by_my_number(n, actor=ACTOR) is None for n in samples[t])

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    start.wait()
    started = time.perf_counter()
    for th in pool:
        th.join()
    seconds = time.perf_counter() - started
    for c in clients:
        c.close()
    return {"lookups": per * threads, "seconds": seconds, "misses": sum(misses)}


def child_extra(first: int, last: int) -> dict:
    """Persons first..last-1 (by index) with a 個人番号 under key 1, written directly: rotation
    needs rows, not the register path (which the seed phase measures)."""
    from django.conf import settings
    from django.db import connections, transaction

    from kenshin.core import clock
    from kenshin.linkage import crypto, rules
    from kenshin.linkage.models import MyNumber, NumberCounter, Person

    ring = crypto.keyring()
    counter = NumberCounter.objects.using("linkage").get(name="unified_atena_no")
    serial = counter.last
    now = clock.now()
    started = time.perf_counter()
    chunk = 10_000
    for start in range(first, last, chunk):
        persons, numbers = [], []
        for i in range(start, min(last, start + chunk)):
            serial += 1
            n = my_number(i)
            persons.append(
                Person(
                    id=serial,
                    municipality_code=settings.MUNICIPALITY_CODE,
                    unified_atena_no=rules.unified_atena_no(serial),
                    created_at=now,
                )
            )
            numbers.append(
                MyNumber(
                    person_id=serial,
                    key_id=1,
                    ciphertext=ring.encrypt(n, serial, 1),
                    blind_index=ring.blind_index(n),
                    updated_at=now,
                )
            )
        with transaction.atomic(using="linkage"):
            Person.objects.using("linkage").bulk_create(persons, batch_size=2000)
            MyNumber.objects.using("linkage").bulk_create(numbers, batch_size=2000)
            NumberCounter.objects.using("linkage").filter(name="unified_atena_no").update(
                last=serial
            )
    connections["linkage"].close()
    return {"rows": last - first, "seconds": time.perf_counter() - started}


def child_rotate(batch: int) -> dict:
    """Rotate every row to the active key, then read every row back: each must be under the
    active key and decrypt (for its own row id) to a valid 個人番号 (check digit). Any row that
    does not is a failed rotation, and the run exits non-zero — a figure for a rotation that
    broke rows is no figure."""
    from kenshin.core.mynumber import is_valid
    from kenshin.linkage import crypto, rotation
    from kenshin.linkage.models import MyNumber

    before = rotation.key_usage()
    result = rotation.rotate_all(batch_size=batch, actor=ACTOR)
    after = rotation.key_usage()
    # Every row decrypts under the new key (and says which key it is under).
    crypto.reset_keyring()
    ring = crypto.keyring()
    started = time.perf_counter()
    checked = failed = old_key = 0
    last = -1
    while True:
        rows = list(
            MyNumber.objects.using("linkage")
            .filter(person_id__gt=last)
            .order_by("person_id")
            .values_list("person_id", "key_id", "ciphertext")[:20_000]
        )
        if not rows:
            break
        for pid, key_id, blob in rows:
            checked += 1
            old_key += key_id != ring.active_key_id or bytes(blob[:1])[0] != ring.active_key_id
            try:
                ok = is_valid(ring.decrypt(blob, pid))
            except crypto.DecryptError:
                ok = False
            failed += not ok
        last = rows[-1][0]
    if failed or old_key or result.remaining or checked != sum(after.values()):
        # The message never carries a value: counts only.
        raise SystemExit(
            f"rotate: verification failed — {failed:,} of {checked:,} rows did not decrypt to a "
            f"valid 個人番号, {old_key:,} rows are still under an old key, "
            f"{result.remaining:,} reported remaining"
        )
    return {
        "before": before,
        "after": after,
        "rows": result.rows,
        "seconds": result.seconds,
        "remaining": result.remaining,
        "verified": checked,
        "failed": failed,
        "old_key": old_key,
        "verify_seconds": time.perf_counter() - started,
    }


def child_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", required=True)
    p.add_argument("--rows", type=int, default=0)
    p.add_argument("--lookups", type=int, default=0)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--last", type=int, default=0)
    p.add_argument("--url", default="")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    _setup()
    db_url = os.environ["KENSHIN_LINKAGE_DATABASE_URL"]
    result = {
        "seed": lambda: child_seed(a.rows, a.batch),
        "inprocess": lambda: child_inprocess(a.rows, a.lookups, a.seed),
        "raw": lambda: child_raw(a.rows, a.lookups, a.seed, db_url),
        "http": lambda: child_http(a.rows, a.lookups, a.seed, a.url, a.threads),
        "extra": lambda: child_extra(a.first, a.last),
        "rotate": lambda: child_rotate(a.batch),
    }[a.child]()
    print(json.dumps(result))


# ---------------------------------------------------------------- parent side


def bench_keys() -> dict[str, str]:
    """Random keys for this run only (two encryption keys: rotation goes from 1 to 2)."""

    def k() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    return {
        "KENSHIN_LINKAGE_KEYS": f"1:{k()},2:{k()}",
        "KENSHIN_LINKAGE_ACTIVE_KEY": "1",
        "KENSHIN_LINKAGE_INDEX_KEY": k(),
    }


def env_for(db_url: str, keys: dict[str, str], **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="kenshin.linkage.server_settings",
        KENSHIN_LINKAGE_DATABASE_URL=db_url,
        KENSHIN_VAR_DIR=str(VAR / "var"),
        PYTHONPATH=str(ROOT / "src"),
        KENSHIN_LOG_LEVEL="WARNING",
    )
    env.pop("KENSHIN_LINKAGE_KEY_FILE", None)
    env.update(keys)
    env.update(extra)
    return env


def child(env: dict[str, str], phase: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", phase, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "kenshin.cli", "linkage", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"kenshin linkage {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def fresh_database(db: str, pg_url: str) -> str:
    if db == "sqlite":
        folder = VAR / "db"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return f"sqlite:///{folder / 'linkage.sqlite3'}"
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    log = (VAR / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kenshin.cli", "linkage", "serve", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads),
         "--access-log", str(VAR / "access.log")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("kenshin linkage serve exited; see bench/out/linkage/serve.log")
        try:
            if httpx.get(url + "healthz", timeout=1, trust_env=False).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("kenshin linkage serve did not start")


def rate(r: dict) -> float:
    return r["lookups"] / r["seconds"]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def run_db(db: str, a: argparse.Namespace) -> dict:
    keys = bench_keys()
    db_url = fresh_database(db, a.pg_url)
    env = env_for(db_url, keys)
    print(f"\n== {db}: {db_url.rsplit('/', 1)[-1]}", flush=True)
    cli(env, "migrate")
    cli(env, "system", "add", "kenshin", "--name", "健康管理（ベンチ）", "--jimu", JIMU)
    token = cli(env, "credential", "issue", "kenshin").strip().splitlines()[-1]
    env["KENSHIN_BENCH_TOKEN"] = token
    out: dict = {"db": db}

    seed = child(env, "seed", "--rows", str(a.rows), "--batch", str(a.batch))
    out["seed"] = seed
    print(
        f"seed (register_many, batches of {a.batch:,}): {a.rows:,} persons in "
        f"{seed['seconds']:.1f} s = {a.rows / seed['seconds']:,.0f} rows/s",
        flush=True,
    )

    if not a.skip_lookups:
        common = ["--rows", str(a.rows), "--lookups", str(a.lookups)]
        inproc, raw, http1, http4 = [], [], [], []
        for run in range(a.runs):
            s = str(run + 10)
            r = child(env, "inprocess", *common, "--seed", s)
            assert r["misses"] == 0, r
            inproc.append(rate(r))
            r = child(env, "raw", *common, "--seed", s)
            assert r["misses"] == 0, r
            raw.append(rate(r))
        server, url = start_server(env, a.workers, a.server_threads)
        try:
            http_common = ["--rows", str(a.rows), "--lookups", str(a.http_lookups), "--url", url]
            for run in range(a.runs):
                s = str(run + 20)
                r = child(env, "http", *http_common, "--threads", "1", "--seed", s)
                assert r["misses"] == 0, r
                http1.append(rate(r))
                r = child(env, "http", *http_common, "--threads", "4", "--seed", s)
                assert r["misses"] == 0, r
                http4.append(rate(r))
        finally:
            server.terminate()
            server.wait(timeout=30)
        raw_m = statistics.median(raw)
        print(f"\nlook-ups by 個人番号 over {a.rows:,} persons, median of {a.runs} (min–max):")
        print(f"  {'':34} {'look-ups/s':>22} {'µs each':>8} {'ours/raw':>9}")
        for label, values in (
            ("raw indexed SELECT (floor)", raw),
            ("in-process (InProcessClient)", inproc),
            ("HTTP, 1 client thread", http1),
            ("HTTP, 4 client threads", http4),
        ):
            m = statistics.median(values)
            print(f"  {label:34} {summary(values):>22} {1e6 / m:8.0f} {raw_m / m:9.1f}")
        out.update(inprocess=inproc, raw=raw, http1=http1, http4=http4)

    if a.rotate_rows:
        if a.rotate_rows > a.rows:
            extra = child(env, "extra", "--first", str(a.rows), "--last", str(a.rotate_rows))
            print(
                f"\nrotation rows beyond the seed: {extra['rows']:,} added directly in "
                f"{extra['seconds']:.1f} s",
                flush=True,
            )
        renv = dict(env, KENSHIN_LINKAGE_ACTIVE_KEY="2")
        r = child(renv, "rotate", "--batch", str(a.rotate_batch))
        out["rotate"] = r
        print(
            f"\nrotate-key 1 → 2 (batches of {a.rotate_batch:,}): {r['rows']:,} rows in "
            f"{r['seconds']:.1f} s = {r['rows'] / r['seconds']:,.0f} rows/s; "
            f"keys before {r['before']}, after {r['after']}, remaining {r['remaining']}"
        )
        print(
            f"verify: {r['verified']:,} rows decrypted under key 2 in "
            f"{r['verify_seconds']:.1f} s, failures {r['failed']}"
        )
    return out


def main() -> None:
    if "--child" in sys.argv:
        child_main(sys.argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000, help="persons seeded (default 100k)")
    p.add_argument("--batch", type=int, default=1000, help="register_many batch size")
    p.add_argument("--lookups", type=int, default=20_000, help="in-process and raw look-ups")
    p.add_argument("--http-lookups", type=int, default=6_000, help="HTTP look-ups per scenario")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="serve --workers")
    p.add_argument("--server-threads", type=int, default=4, help="serve --threads")
    p.add_argument("--rotate-rows", type=int, default=None, help="rows to rotate (default N)")
    p.add_argument("--rotate-batch", type=int, default=5000)
    p.add_argument("--skip-lookups", action="store_true")
    p.add_argument("--db", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    p.add_argument("--pg-url", default=LINKAGE_PG_URL)
    a = p.parse_args()
    if a.rotate_rows is None:
        a.rotate_rows = a.rows
    VAR.mkdir(parents=True, exist_ok=True)
    results = [run_db(db, a) for db in a.db]
    (VAR / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
