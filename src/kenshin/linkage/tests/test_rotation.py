"""Key rotation and the key-file lifecycle (MN-04: rotation procedure tested).

rotate-key re-encrypts every row under the active key, in batches, resumable after an
interruption; the old key can be retired only once no row uses it; retired ids are never
reused; the key file is always 0600 and never shows its keys in status.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext

from kenshin.linkage import cli_vault, crypto, keys, rotation
from kenshin.linkage.models import LinkageEvent, MyNumber
from kenshin.linkage.tests.vault_rows import store, synthetic_numbers

pytestmark = pytest.mark.django_db(databases=["default", "linkage"])


@pytest.fixture
def fresh_keyring():
    crypto.reset_keyring()
    yield
    crypto.reset_keyring()


@pytest.fixture
def key_file(monkeypatch, settings, tmp_path, fresh_keyring):
    """Keys from a key file (the environment's test keys taken away)."""
    for name in crypto.ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "keys" / "linkage-keys.json"
    settings.LINKAGE_KEY_FILE = str(path)
    return path


def activate_env_key(monkeypatch, key_id: int) -> None:
    monkeypatch.setenv(crypto.ENV_ACTIVE, str(key_id))
    crypto.reset_keyring()


def all_decrypt(numbers: list[str], ids: list[int]) -> bool:
    ring = crypto.keyring()
    stored = dict(MyNumber.objects.values_list("person_id", "ciphertext"))
    return all(ring.decrypt(stored[pid], pid) == n for pid, n in zip(ids, numbers, strict=True))


def rotation_events() -> list[LinkageEvent]:
    return list(LinkageEvent.objects.filter(operation="rotate_key").order_by("id"))


def test_rotation_of_2000_rows_survives_an_interruption(monkeypatch, fresh_keyring):
    numbers = synthetic_numbers(2000)
    ids = store(numbers)
    assert rotation.key_usage() == {1: 2000}

    activate_env_key(monkeypatch, 2)
    # The old key cannot go while rows use it.
    with pytest.raises(keys.KeyFileError) as err:
        keys.retire(1)
    assert "2,000 件" in str(err.value)

    first = rotation.rotate_all(batch_size=300, stop_after=3, actor="cli:operator")
    assert (first.rows, first.remaining, first.batches) == (900, 1100, 3)
    assert rotation.key_usage() == {1: 1100, 2: 900}
    assert all_decrypt(numbers, ids)  # half-way, both keys' rows read

    second = rotation.rotate_all(batch_size=300, actor="cli:operator")
    assert (second.rows, second.remaining) == (1100, 0)
    assert rotation.key_usage() == {2: 2000}
    assert all_decrypt(numbers, ids)
    # The key id is the blob's first byte (crypto.Keyring.encrypt).
    assert {bytes(b)[0] for b in MyNumber.objects.values_list("ciphertext", flat=True)} == {2}

    # Nothing left under key 1: retiring it is allowed (environment: the operator removes it).
    assert keys.retire(1) == "environment"

    events = rotation_events()
    assert [(e.result, e.detail["rows"], e.detail["remaining"]) for e in events] == [
        ("stopped", 900, 1100),
        ("ok", 1100, 0),
    ]
    assert all(e.system_code == "linkage" and e.actor == "cli:operator" for e in events)
    assert events[0].detail["from_keys"] == [1] and events[0].detail["to_key"] == 2
    for event in events:  # never a number in the log
        assert not any(n in json.dumps(event.detail) for n in numbers)


def test_a_crash_inside_a_batch_rolls_that_batch_back_and_a_rerun_finishes(
    monkeypatch, fresh_keyring
):
    numbers = synthetic_numbers(500, seed=11)
    ids = store(numbers)
    activate_env_key(monkeypatch, 2)
    ring = crypto.keyring()
    real_encrypt = ring.encrypt
    calls = {"n": 0}

    def failing_encrypt(plaintext, row_id, key_id=None):
        calls["n"] += 1
        if calls["n"] == 250:  # in the middle of the second batch
            raise RuntimeError("power cut")
        return real_encrypt(plaintext, row_id, key_id)

    monkeypatch.setattr(ring, "encrypt", failing_encrypt)
    monkeypatch.setattr(crypto, "reset_keyring", lambda: None)  # keep the patched ring
    with pytest.raises(RuntimeError):
        rotation.rotate_all(batch_size=200)
    assert rotation.key_usage() == {1: 300, 2: 200}  # first batch kept, second rolled back
    assert rotation_events()[-1].result == "error"

    monkeypatch.setattr(ring, "encrypt", real_encrypt)
    result = rotation.rotate_all(batch_size=200)
    assert (result.rows, result.remaining) == (300, 0)
    assert all_decrypt(numbers, ids)


def test_rotation_writes_set_based_batches(monkeypatch, fresh_keyring):
    store(synthetic_numbers(1000, seed=12))
    activate_env_key(monkeypatch, 2)
    with CaptureQueriesContext(connections["linkage"]) as queries:
        result = rotation.rotate_all(batch_size=250)
    assert result.rows == 1000
    # Per batch: a SELECT and one UPDATE statement (or executemany), plus the savepoint-free
    # transaction; not one statement per row.
    assert len(queries) < 40


def test_rotation_stops_on_a_row_it_cannot_decrypt(monkeypatch, fresh_keyring):
    store(synthetic_numbers(10, seed=13))
    activate_env_key(monkeypatch, 2)
    pid = MyNumber.objects.order_by("person_id").values_list("person_id", flat=True)[3]
    # Ciphertext moved from another row: the AD check catches it and rotation stops there.
    other = MyNumber.objects.get(person_id=pid + 1).ciphertext
    MyNumber.objects.filter(person_id=pid).update(ciphertext=other)
    with pytest.raises(crypto.DecryptError):
        rotation.rotate_all(batch_size=100)
    assert rotation.key_usage() == {1: 10}


def test_nothing_to_rotate_is_a_quick_ok(fresh_keyring):
    result = rotation.rotate_all()
    assert (result.rows, result.remaining, result.batches) == (0, 0, 0)
    assert rotation_events()[-1].result == "ok"


def test_progress_line_is_written_to_the_stream(monkeypatch, fresh_keyring):
    import io

    store(synthetic_numbers(300, seed=14))
    activate_env_key(monkeypatch, 2)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    monkeypatch.setattr("kenshin.core.progress.time.monotonic", iter(range(0, 10_000, 2)).__next__)
    rotation.rotate_all(batch_size=100, progress=stream)
    assert "鍵の切り替え" in stream.getvalue()
    assert "100%" in stream.getvalue()


# ------------------------------------------------------------------------- key file


def test_key_file_lifecycle_new_rotate_retire(key_file):
    path = keys.init()
    assert path == key_file
    assert (key_file.stat().st_mode & 0o777) == 0o600
    data = json.loads(key_file.read_text())
    assert data["active"] == 1 and list(data["keys"]) == ["1"] and data["retired"] == []
    assert data["index_key"] not in data["keys"].values()

    numbers = synthetic_numbers(300, seed=21)
    ids = store(numbers)
    index_before = crypto.keyring().blind_index(numbers[0])

    assert keys.new_key(activate=True, actor="cli:op") == 2
    assert crypto.keyring().active_key_id == 2
    with pytest.raises(keys.KeyFileError):
        keys.retire(1, actor="cli:op")
    with pytest.raises(keys.KeyFileError):
        keys.retire(2, actor="cli:op")  # the active key

    rotation.rotate_all(batch_size=128, actor="cli:op")
    assert keys.retire(1, actor="cli:op") == "file"

    data = json.loads(key_file.read_text())
    assert list(data["keys"]) == ["2"] and data["retired"] == [1] and data["active"] == 2
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert crypto.keyring().key_ids == {2}
    assert all_decrypt(numbers, ids)
    assert crypto.keyring().blind_index(numbers[0]) == index_before  # index key never rotates

    # A retired id is never issued again.
    assert keys.new_key(actor="cli:op") == 3
    ops = list(
        LinkageEvent.objects.filter(operation__startswith="key_").values_list("operation", "detail")
    )
    assert ops == [
        ("key_new", {"key_id": 2, "activated": True}),
        ("key_retire", {"key_id": 1}),
        ("key_new", {"key_id": 3, "activated": False}),
    ]


def test_init_refuses_to_overwrite(key_file):
    keys.init()
    before = key_file.read_bytes()
    with pytest.raises(keys.KeyFileError) as err:
        keys.init()
    assert "既にあります" in str(err.value)
    assert key_file.read_bytes() == before


def test_activate_unknown_key_is_refused(key_file):
    keys.init()
    with pytest.raises(keys.KeyFileError):
        keys.activate(7)
    keys.new_key()
    keys.activate(2)
    assert crypto.keyring().active_key_id == 2


def test_key_file_changes_are_refused_when_keys_come_from_the_environment(fresh_keyring):
    with pytest.raises(keys.KeyFileError) as err:
        keys.new_key()
    assert "環境変数" in str(err.value)


def test_status_never_shows_key_material(key_file):
    keys.init()
    store(synthetic_numbers(5, seed=22))
    st = keys.status()
    assert (st.source, st.active_key_id, st.key_ids, st.rows) == ("file", 1, [1], {1: 5})
    data = json.loads(key_file.read_text())
    out = _Out()
    assert cli_vault.handle({"action": "keys", "keys_action": "status"}, out, out) == 0
    text = out.text()
    assert "使用中の鍵: 1" in text and "5 件" in text
    for secret in [data["index_key"], *data["keys"].values()]:
        assert secret not in text


# ------------------------------------------------------------------------- command line


class _Out:
    def __init__(self):
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "\n".join(self.lines)


def test_cli_rotate_key_prints_a_japanese_summary(monkeypatch, fresh_keyring):
    store(synthetic_numbers(50, seed=23))
    activate_env_key(monkeypatch, 2)
    out, err = _Out(), _Out()
    code = cli_vault.handle(
        {"action": "rotate-key", "batch": 20, "limit_batches": 1, "actor": ""}, out, err
    )
    assert code == 0
    assert "20 件を暗号化し直しました" in out.text()
    assert "30 件残っています" in out.text()
    code = cli_vault.handle(
        {"action": "rotate-key", "batch": 20, "limit_batches": None, "actor": ""}, out, err
    )
    assert "keys retire 1" in out.text()
    assert rotation_events()[-1].actor.startswith("cli:")


def test_cli_refusal_is_a_message_and_exit_code_1(monkeypatch, fresh_keyring):
    store(synthetic_numbers(3, seed=24))
    activate_env_key(monkeypatch, 2)
    out, err = _Out(), _Out()
    code = cli_vault.handle({"action": "keys", "keys_action": "retire", "key_id": 1}, out, err)
    assert code == 1
    assert "3 件残っています" in err.text()


def test_management_command_dispatches_to_the_vault(key_file, capsys):
    """Through `kenshin linkage keys …` as an operator types it."""
    from io import StringIO

    out = StringIO()
    call_command("linkage", "keys", "init", stdout=out)
    assert key_file.exists()
    call_command("linkage", "keys", "new", "--activate", stdout=out)
    call_command("linkage", "keys", "status", stdout=out)
    assert "使用中の鍵: 2" in out.getvalue()
