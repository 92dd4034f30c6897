"""The key file's lifecycle: create, add a key, switch the active key, retire an old one.

Why a file managed by a command rather than keys typed into configuration: the file is
written only here, atomically (temp file + ``os.replace``), always with mode 0600, so a
half-written or world-readable key file never exists; retired key ids are remembered so an id
is never reused (a blob's first byte must name one key forever). The environment
(KENSHIN_LINKAGE_KEYS …) remains the alternative for deployments with a secret store; then
this module only reports and checks, and the operator edits the environment.

The lifecycle (docs/linkage.md): ``keys new --activate`` → ``rotate-key`` → ``keys retire <old>``.
Retiring refuses while any 個人番号 is still encrypted under that key: the key material is
removed from the file, and rows under it would be lost for good.

Nothing here prints or logs key material; ``status`` shows ids and row counts only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kenshin.linkage import crypto


class KeyFileError(RuntimeError):
    """A key-file operation was refused; Japanese message for the operator."""


@dataclass
class KeyStatus:
    source: str  # "environment" or "file"
    path: str
    active_key_id: int
    key_ids: list[int]
    retired_key_ids: list[int]
    rows: dict[int, int] = field(default_factory=dict)  # key id -> 個人番号 rows under it
    rows_error: str = ""


def _path(path: Path | str | None) -> Path:
    if path:
        return Path(path)
    found = crypto.key_file_path()
    if found is None:
        raise KeyFileError(
            "鍵ファイルの場所が設定されていません。環境変数 KENSHIN_LINKAGE_KEY_FILE を"
            "設定してください（docs/linkage.md）"
        )
    return found


def _refuse_when_environment() -> None:
    if crypto.env_in_use():
        raise KeyFileError(
            "鍵は環境変数（KENSHIN_LINKAGE_KEYS など）から読み込まれています。"
            "鍵ファイルは使われないため変更しません。環境変数の鍵を入れ替えてください"
            "（docs/linkage.md）"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One key-file change at a time (two operators, or a retry while one is running)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write(path: Path, data: dict) -> None:
    """Write atomically with mode 0600: readers see the old file or the new one, never a part."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(data, fh, ensure_ascii=False, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    crypto.reset_keyring()


def _read(path: Path) -> dict:
    try:
        data = crypto.read_key_file(path)
        crypto.keyring_from_file_data(data, path)  # refuse to build on a broken file
    except crypto.KeysUnavailable as exc:
        raise KeyFileError(str(exc)) from None
    data.setdefault("retired", [])
    return data


def init(path: Path | str | None = None) -> Path:
    """Create the key file with encryption key 1 (active) and a separate index key."""
    path = _path(path)
    with _locked(path):
        if path.exists():
            raise KeyFileError(
                f"鍵ファイル {path} は既にあります。上書きすると暗号化済みの個人番号が"
                "読めなくなるため、作成しません"
            )
        key, index_key = crypto.new_key(), crypto.new_key()
        while index_key == key:  # pragma: no cover  (2**-256)
            index_key = crypto.new_key()
        _write(
            path,
            {
                "active": 1,
                "keys": {"1": crypto.encode_key(key)},
                "index_key": crypto.encode_key(index_key),
                "retired": [],
            },
        )
    return path


def new_key(
    *, activate: bool = False, path: Path | str | None = None, actor: str = "system"
) -> int:
    """Add a key under the next unused id (never a retired one); optionally make it active."""
    _refuse_when_environment()
    path = _path(path)
    with _locked(path):
        data = _read(path)
        used = {int(n) for n in data["keys"]} | {int(n) for n in data["retired"]}
        key_id = max(used, default=0) + 1
        if key_id > crypto.MAX_KEY_ID:
            raise KeyFileError(f"鍵番号が上限（{crypto.MAX_KEY_ID}）に達しました")
        index_key = crypto._decode_key(data["index_key"], "検索索引の鍵")
        key = crypto.new_key()
        while key == index_key:  # pragma: no cover  (2**-256)
            key = crypto.new_key()
        data["keys"][str(key_id)] = crypto.encode_key(key)
        if activate:
            data["active"] = key_id
        _write(path, data)
    _event("key_new", actor, {"key_id": key_id, "activated": activate})
    return key_id


def activate(key_id: int, *, path: Path | str | None = None, actor: str = "system") -> None:
    """Make ``key_id`` the key new 個人番号 are encrypted under (then run rotate-key)."""
    _refuse_when_environment()
    path = _path(path)
    with _locked(path):
        data = _read(path)
        if str(key_id) not in data["keys"]:
            raise KeyFileError(f"鍵番号 {key_id} の鍵はありません")
        data["active"] = key_id
        _write(path, data)
    _event("key_activate", actor, {"key_id": key_id})


def retire(key_id: int, *, path: Path | str | None = None, actor: str = "system") -> str:
    """Remove ``key_id``'s material for good, once no 個人番号 row is encrypted under it.

    Returns "file" when the key was removed from the key file. With keys from the
    environment only the check is made and "environment" is returned: the operator then
    removes the key from KENSHIN_LINKAGE_KEYS.
    """
    from kenshin.linkage import rotation

    def refuse_if_used(active: int) -> None:
        if key_id == active:
            raise KeyFileError(
                f"鍵番号 {key_id} は使用中の鍵です。先に別の鍵を使用中にして"
                "（keys new --activate）、rotate-key を実行してください"
            )
        rows = rotation.key_usage().get(key_id, 0)
        if rows:
            raise KeyFileError(
                f"鍵番号 {key_id} で暗号化された個人番号が {rows:,} 件残っています。"
                "先に rotate-key で新しい鍵に切り替えてください"
            )

    if crypto.env_in_use():
        refuse_if_used(crypto.keyring().active_key_id)
        return "environment"
    path = _path(path)
    # The number counter's row lock is what every registration and merge holds while it
    # encrypts: holding it here, no batch can write a row under this key between the count
    # and the removal of the key from the file.
    from django.db import transaction

    from kenshin.linkage.models import NumberCounter

    with _locked(path), transaction.atomic(using="linkage"):
        list(NumberCounter.objects.using("linkage").select_for_update().values_list("name"))
        data = _read(path)
        if str(key_id) not in data["keys"]:
            raise KeyFileError(f"鍵番号 {key_id} の鍵はありません（廃止済みか未作成です）")
        refuse_if_used(int(data["active"]))
        del data["keys"][str(key_id)]
        data["retired"] = sorted({*map(int, data["retired"]), key_id})
        _write(path, data)
    _event("key_retire", actor, {"key_id": key_id})
    return "file"


def status(path: Path | str | None = None, *, count_rows: bool = True) -> KeyStatus:
    """Key ids, the active one, retired ids and rows per key — never any key material."""
    if crypto.env_in_use():
        try:
            ring = crypto.keyring()
        except crypto.KeysUnavailable as exc:
            raise KeyFileError(str(exc)) from None
        result = KeyStatus(
            source="environment",
            path="",
            active_key_id=ring.active_key_id,
            key_ids=sorted(ring.key_ids),
            retired_key_ids=[],
        )
    else:
        path = _path(path)
        data = _read(path)
        result = KeyStatus(
            source="file",
            path=str(path),
            active_key_id=int(data["active"]),
            key_ids=sorted(int(n) for n in data["keys"]),
            retired_key_ids=sorted(int(n) for n in data["retired"]),
        )
    if count_rows:
        from django.db import DatabaseError

        from kenshin.linkage import rotation

        try:
            result.rows = rotation.key_usage()
        except DatabaseError:
            result.rows_error = "番号連携データベースに接続できないため、件数は表示できません"
    return result


def _event(operation: str, actor: str, detail: dict) -> None:
    """The key change in the linkage server's own log (MN-04: key use is logged)."""
    from django.db import DatabaseError

    from kenshin.linkage import rotation

    try:
        rotation.record_event(operation, actor, "ok", detail)
    except DatabaseError:
        raise KeyFileError(
            "鍵ファイルは更新しましたが、番号連携ログに記録できませんでした"
            "（番号連携データベースを確認してください）"
        ) from None
