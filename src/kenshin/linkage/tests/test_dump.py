"""A dump of the linkage database holds no plaintext 個人番号 (MN-04; issue 4 acceptance).

Whoever copies the database — the SQLite file, a ``pg_dump``, a backup — gets ciphertext and
a keyed index only. Transactional tests, so the rows are committed where the file image and
pg_dump can see them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from django.db import connections

from kenshin.linkage import crypto, testing
from kenshin.linkage.clients import InProcessClient
from kenshin.linkage.contract import AtenaIn
from kenshin.linkage.models import Person
from kenshin.linkage.tests.vault_rows import store, synthetic_numbers

pytestmark = pytest.mark.django_db(databases=["default", "linkage"], transaction=True)


def spellings(number: str) -> list[bytes]:
    """The ways a stored plaintext number would show up in raw bytes."""
    return [
        number.encode("ascii"),
        number.encode("utf-16-le"),
        number.encode("ascii").hex().encode("ascii"),  # bytea as pg_dump writes it
        "-".join([number[:4], number[4:8], number[8:]]).encode("ascii"),
        " ".join([number[:4], number[4:8], number[8:]]).encode("ascii"),
    ]


def assert_no_number(image: bytes, numbers: list[str], what: str) -> None:
    found = sum(1 for n in numbers for s in spellings(n) if s in image)
    assert found == 0, f"{what}: {found} plaintext 個人番号 spellings found"


@pytest.fixture(params=["vault_rows", "client"])
def stored(request, settings) -> list[str]:
    """200 stored numbers: written directly as vault rows, or through the real registration
    path (InProcessClient.register_many, then look-ups and a reveal, so the access log and the
    業務宛名 rows are in the image too)."""
    crypto.reset_keyring()
    numbers = synthetic_numbers(200, seed=31)
    if request.param == "vault_rows":
        store(numbers)
        return numbers
    client = InProcessClient(testing.provision(), "kenko_zoshin")
    atenas = [
        AtenaIn(
            atena_no=f"D{i:09d}",
            name="試験　太郎",
            name_kana="シケン　タロウ",
            birth_date=date(1960, 1, 1 + i % 28),
            sex=1,
            address=f"広島県呉市試験町{i}番地",
            my_number=number,
        )
        for i, number in enumerate(numbers, start=1)
    ]
    regs = client.register_many(atenas, actor="dump-test")
    for number in numbers[:20]:
        assert client.find_by_my_number(number, actor="dump-test")
    client.reveal_my_number(regs[0].unified_atena_no, actor="dump-test", purpose="inquiry")
    return numbers


def last_unified_no() -> bytes:
    """A value known to be stored in plain (a 統合宛名番号): proves the scan reads row data."""
    return Person.objects.order_by("-id").values_list("unified_atena_no", flat=True)[0].encode()


def sqlite_image(alias: str) -> bytes:
    conn = connections[alias]
    conn.ensure_connection()
    image = conn.connection.serialize()
    name = str(conn.settings_dict["NAME"])
    if "mode=memory" not in name and name != ":memory:":
        for suffix in ("", "-wal", "-journal"):
            path = Path(name + suffix)
            if path.exists():
                image += path.read_bytes()
    return image


def test_sqlite_file_bytes_hold_no_plaintext_number(stored):
    if connections["linkage"].vendor != "sqlite":
        pytest.skip("SQLite の検査（PostgreSQL では pg_dump を検査します）")
    image = sqlite_image("linkage")
    assert last_unified_no() in image  # the scan sees row data
    assert_no_number(image, stored, "linkage database image")
    assert_no_number(sqlite_image("default"), stored, "main database image")


def pg_dump(alias: str) -> bytes:
    s = connections[alias].settings_dict
    binary = shutil.which("pg_dump")
    assert binary, "pg_dump がありません（Debian: apt-get install postgresql-client）"
    env = dict(os.environ)
    if s.get("PASSWORD"):
        env["PGPASSWORD"] = s["PASSWORD"]
    args = [binary, "--no-owner", "--dbname", s["NAME"]]
    if s.get("HOST"):
        args += ["--host", s["HOST"]]
    if s.get("PORT"):
        args += ["--port", str(s["PORT"])]
    if s.get("USER"):
        args += ["--username", s["USER"]]
    return subprocess.run(args, env=env, check=True, capture_output=True, timeout=120).stdout


def test_pg_dump_holds_no_plaintext_number(stored):
    if connections["linkage"].vendor != "postgresql":
        pytest.skip("PostgreSQL の検査（SQLite ではファイルの内容を検査します）")
    dump = pg_dump("linkage")
    assert b"COPY public.linkage_mynumber" in dump
    assert last_unified_no() in dump  # the scan sees row data
    assert_no_number(dump, stored, "pg_dump of the linkage database")
    assert_no_number(pg_dump("default"), stored, "pg_dump of the main database")
