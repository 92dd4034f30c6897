"""Encryption of 個人番号 at rest: AES-256-GCM per row, and a keyed blind index (MN-04).

Why this shape:
- **AES-256-GCM, 256-bit keys only.** An authenticated cipher: a changed byte, a wrong key or
  ciphertext moved to another row fails to decrypt instead of yielding a wrong number. Strong
  encryption is also what keeps the 個人情報保護委員会 leak-report exemption available.
- **Blob = key-id byte || 12-byte random nonce || ciphertext+tag.** The key id travels with the
  ciphertext, so rows under an old key stay readable during a rotation (rotation.py) and a
  retired key is detected by its id, not by trial decryption.
- **The row id is the associated data** (``b"kenshin-mynumber:" + str(row_id)``): ciphertext
  copied to another person's row does not decrypt there.
- **Blind index = HMAC-SHA256(index key, 12 normalised digits)** under a key of its own, never
  one of the encryption keys: look-up by 個人番号 is one indexed equality, and the index alone
  reveals nothing without that key. (12 digits are few enough to enumerate, which is why the
  index is keyed at all.)
- **Keys live outside the database**: the environment (KENSHIN_LINKAGE_KEYS,
  KENSHIN_LINKAGE_ACTIVE_KEY, KENSHIN_LINKAGE_INDEX_KEY) or a key file readable only by its
  owner (settings.LINKAGE_KEY_FILE, managed by ``kenshin linkage keys``; keys.py). Never
  derived from SECRET_KEY: that one is shared with every web process and sits in other
  configuration; a leak of it must not open the vault. A dump or backup of the database alone
  therefore holds nothing readable.

Nothing in this module puts key material or a 個人番号 into an exception, a log or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kenshin.linkage import mynumber

KEY_BYTES = 32  # AES-256; the index key has the same length
NONCE_BYTES = 12
TAG_BYTES = 16
AD_PREFIX = b"kenshin-mynumber:"
MAX_KEY_ID = 255  # one byte in the blob; 0 is never issued

ENV_KEYS = "KENSHIN_LINKAGE_KEYS"
ENV_ACTIVE = "KENSHIN_LINKAGE_ACTIVE_KEY"
ENV_INDEX = "KENSHIN_LINKAGE_INDEX_KEY"
ENV_NAMES = (ENV_KEYS, ENV_ACTIVE, ENV_INDEX)

_HOW_TO = (
    "環境変数 KENSHIN_LINKAGE_KEYS・KENSHIN_LINKAGE_ACTIVE_KEY・KENSHIN_LINKAGE_INDEX_KEY を"
    "設定するか、鍵ファイル（KENSHIN_LINKAGE_KEY_FILE）を `kenshin linkage keys init` で"
    "作成してください（docs/linkage.md）"
)


class KeysUnavailable(RuntimeError):
    """The vault's keys are missing or unusable. Japanese message; never any key material."""


class DecryptError(Exception):
    """A blob did not decrypt: wrong row, wrong or missing key, or altered bytes. No data."""


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _decode_key(text: str, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        raise KeysUnavailable(f"{what}がBase64として読めません") from None
    if len(key) != KEY_BYTES:
        raise KeysUnavailable(
            f"{what}の長さが{len(key) * 8}ビットです。256ビット（32バイト）の鍵だけが使えます"
        )
    return key


def _key_id(text: str | int, what: str) -> int:
    try:
        key_id = int(str(text).strip())
    except ValueError:
        raise KeysUnavailable(f"{what}の鍵番号が数字ではありません") from None
    if not 1 <= key_id <= MAX_KEY_ID:
        raise KeysUnavailable(f"{what}の鍵番号は1〜{MAX_KEY_ID}で指定してください")
    return key_id


class Keyring:
    """The encryption keys by id, which one encrypts new data, and the blind-index key."""

    def __init__(
        self,
        keys: dict[int, bytes],
        active_key_id: int,
        index_key: bytes,
        *,
        retired: frozenset[int] = frozenset(),
        source: str = "",
    ) -> None:
        if not keys:
            raise KeysUnavailable("暗号鍵が1つもありません。" + _HOW_TO)
        for key_id, key in keys.items():
            if not 1 <= key_id <= MAX_KEY_ID:
                raise KeysUnavailable(f"鍵番号は1〜{MAX_KEY_ID}で指定してください")
            if len(key) != KEY_BYTES:
                raise KeysUnavailable(
                    f"鍵 {key_id} の長さが{len(key) * 8}ビットです。"
                    "256ビット（32バイト）の鍵だけが使えます"
                )
        if active_key_id not in keys:
            raise KeysUnavailable(f"使用中の鍵番号 {active_key_id} の鍵がありません")
        if len(index_key) != KEY_BYTES:
            raise KeysUnavailable(
                f"検索索引の鍵の長さが{len(index_key) * 8}ビットです。"
                "256ビット（32バイト）の鍵だけが使えます"
            )
        if any(hmac.compare_digest(index_key, key) for key in keys.values()):
            raise KeysUnavailable("検索索引の鍵は暗号鍵と別の鍵にしてください")
        if retired & keys.keys():
            raise KeysUnavailable("廃止済みの鍵番号が暗号鍵に含まれています")
        self.active_key_id = active_key_id
        self.key_ids = frozenset(keys)
        self.retired_key_ids = frozenset(retired)
        self.source = source
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._index_key = index_key

    def __repr__(self) -> str:
        return (
            f"<Keyring active={self.active_key_id} keys={sorted(self.key_ids)} "
            f"source={self.source or '-'}>"
        )

    @staticmethod
    def associated_data(row_id: int) -> bytes:
        return AD_PREFIX + str(int(row_id)).encode("ascii")

    def encrypt(self, plaintext: str, row_id: int, key_id: int | None = None) -> bytes:
        """Encrypt for the row ``row_id`` under ``key_id`` (the active key by default)."""
        key_id = self.active_key_id if key_id is None else key_id
        aead = self._aead.get(key_id)
        if aead is None:
            raise KeysUnavailable(f"鍵番号 {key_id} の鍵がありません")
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = aead.encrypt(nonce, plaintext.encode("utf-8"), self.associated_data(row_id))
        return bytes([key_id]) + nonce + sealed

    def decrypt(self, blob: bytes | memoryview, row_id: int) -> str:
        """The plaintext of ``blob`` stored in row ``row_id``; DecryptError on any mismatch."""
        data = bytes(blob)
        if len(data) < 1 + NONCE_BYTES + TAG_BYTES:
            raise DecryptError("暗号文の形式が正しくありません")
        key_id = data[0]
        aead = self._aead.get(key_id)
        if aead is None:
            raise DecryptError(f"鍵番号 {key_id} の鍵がないため復号できません")
        nonce, sealed = data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :]
        try:
            plain = aead.decrypt(nonce, sealed, self.associated_data(row_id))
        except InvalidTag:
            raise DecryptError(
                "復号できません（暗号文が改ざんされたか、別の行の暗号文か、鍵が違います）"
            ) from None
        return plain.decode("utf-8")

    def blind_index(self, normalized: str) -> bytes:
        """HMAC-SHA256 of the 12 digits under the index key (32 bytes).

        The value is normalised again (idempotent for 12 ASCII digits): a caller that forgot
        would otherwise miss the row silently. InvalidMyNumber for anything else.
        """
        digits = mynumber.normalize(normalized)
        return hmac.new(self._index_key, digits.encode("ascii"), hashlib.sha256).digest()


# ---------------------------------------------------------------------------------- loading


def _from_env() -> Keyring | None:
    values = {name: os.environ.get(name, "").strip() for name in ENV_NAMES}
    if not any(values.values()):
        return None
    if not values[ENV_KEYS]:
        raise KeysUnavailable(f"環境変数 {ENV_KEYS} が設定されていません。" + _HOW_TO)
    if not values[ENV_INDEX]:
        raise KeysUnavailable(
            f"環境変数 {ENV_INDEX}（検索索引の鍵）が設定されていません。" + _HOW_TO
        )
    keys: dict[int, bytes] = {}
    for item in values[ENV_KEYS].split(","):
        if not item.strip():
            continue
        number, sep, encoded = item.partition(":")
        if not sep:
            raise KeysUnavailable(f"{ENV_KEYS} は「鍵番号:Base64」をカンマで区切って指定します")
        key_id = _key_id(number, ENV_KEYS)
        if key_id in keys:
            raise KeysUnavailable(f"{ENV_KEYS} に鍵番号 {key_id} が2回あります")
        keys[key_id] = _decode_key(encoded, f"{ENV_KEYS} の鍵 {key_id} ")
    if values[ENV_ACTIVE]:
        active = _key_id(values[ENV_ACTIVE], ENV_ACTIVE)
    elif len(keys) == 1:
        active = next(iter(keys))
    else:
        raise KeysUnavailable(
            f"鍵が複数あるため、環境変数 {ENV_ACTIVE} で使用中の鍵を指定してください"
        )
    index_key = _decode_key(values[ENV_INDEX], f"{ENV_INDEX} ")
    return Keyring(keys, active, index_key, source="environment")


def check_file_mode(path: Path) -> None:
    """Refuse a key file that anyone but its owner may read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeysUnavailable(
            f"鍵ファイル {path} は所有者以外も読み書きできる権限（{stat.filemode(mode)}）に"
            f"なっています。`chmod 600 {path}` で所有者だけにしてください"
        )


def read_key_file(path: Path) -> dict:
    """The key file's JSON, after the permission check (keys.py writes it)."""
    if not path.exists():
        raise KeysUnavailable(f"鍵ファイル {path} がありません。" + _HOW_TO)
    check_file_mode(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise KeysUnavailable(
            f"鍵ファイル {path} を読み込めません（JSON形式ではありません）"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise KeysUnavailable(f"鍵ファイル {path} に keys がありません")
    return data


def keyring_from_file_data(data: dict, path: Path | str = "") -> Keyring:
    where = f"鍵ファイル {path} " if path else "鍵ファイルの"
    keys = {
        _key_id(number, where): _decode_key(str(encoded), f"{where}鍵 {number} ")
        for number, encoded in data["keys"].items()
    }
    if "active" not in data:
        raise KeysUnavailable(f"{where}に active（使用中の鍵番号）がありません")
    if not data.get("index_key"):
        raise KeysUnavailable(f"{where}に index_key（検索索引の鍵）がありません")
    active = _key_id(data["active"], where)
    index_key = _decode_key(str(data["index_key"]), f"{where}検索索引の鍵 ")
    retired = frozenset(_key_id(n, where) for n in data.get("retired", []))
    return Keyring(keys, active, index_key, retired=retired, source=f"file:{path}")


def key_file_path() -> Path | None:
    from django.conf import settings

    name = getattr(settings, "LINKAGE_KEY_FILE", "") or ""
    return Path(name) if name else None


def env_in_use() -> bool:
    """True when the environment supplies the keys (the key file is then not read)."""
    return any(os.environ.get(name, "").strip() for name in ENV_NAMES)


def _load() -> tuple[Keyring, tuple | None]:
    ring = _from_env()
    if ring is not None:
        return ring, None
    path = key_file_path()
    if path is None:
        raise KeysUnavailable("番号連携サーバの鍵が設定されていません。" + _HOW_TO)
    data = read_key_file(path)
    return keyring_from_file_data(data, path), _file_stamp(path)


def _file_stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


_lock = threading.Lock()
_cached: Keyring | None = None
_cached_stamp: tuple | None = None


def keyring() -> Keyring:
    """The process's keyring (cached).

    From a key file, the cache follows the file: ``kenshin linkage keys new --activate`` in
    another process takes effect here at the next call (one stat per call), so a running
    linkage server does not keep encrypting under a key that is about to be retired.
    """
    global _cached, _cached_stamp
    ring, stamp = _cached, _cached_stamp
    if ring is not None and (stamp is None or _file_stamp(Path(stamp[0])) == stamp):
        return ring
    with _lock:
        ring, stamp = _load()
        _cached, _cached_stamp = ring, stamp
        return ring


def reset_keyring() -> None:
    """Drop the cached keyring (tests; after keys.py changes the file)."""
    global _cached, _cached_stamp
    with _lock:
        _cached, _cached_stamp = None, None


def new_key() -> bytes:
    """A fresh random 256-bit key (keys.py)."""
    return secrets.token_bytes(KEY_BYTES)
