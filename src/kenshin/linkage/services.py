"""What the rest of Kenshin calls to reach the 番号連携サーバ: one client, one setup step.

Why a factory: a business app must not care whether the linkage server runs in this process
(the embedded default) or as its own ``kenshin linkage serve`` process on another machine
(settings.LINKAGE_URL). Both adapters implement contract.LinkageClient; this module picks one
and hands it this system's credential and 事務 code (settings.LINKAGE_CREDENTIAL, or the file
settings.LINKAGE_CREDENTIAL_FILE; settings.LINKAGE_JIMU).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from django.conf import settings

from kenshin.linkage import contract

EMBEDDED_SYSTEM_NAME = "健康管理システム"


class NotConfigured(contract.Refused):
    """No credential towards the linkage server is configured (Japanese message)."""


def credential() -> str:
    """This system's linkage credential: the setting, else the credential file, else ""."""
    token = (getattr(settings, "LINKAGE_CREDENTIAL", "") or "").strip()
    if token:
        return token
    name = getattr(settings, "LINKAGE_CREDENTIAL_FILE", "") or ""
    if not name:
        return ""
    path = Path(name)
    try:
        st = path.stat()
    except OSError:
        return ""
    # Read the file again only when it changed (a new credential written by an operator or by
    # ensure_embedded_setup): a page that calls client() pays one stat, not one read.
    stamp = (name, st.st_ino, st.st_mtime_ns, st.st_size)
    with _lock:
        if _file_cache is not None and _file_cache[0] == stamp:
            return _file_cache[1]
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    _remember_file(stamp, token)
    return token


def _remember_file(stamp: tuple, token: str) -> None:
    global _file_cache
    with _lock:
        _file_cache = (stamp, token)


def client() -> contract.LinkageClient:
    """The linkage client for this system (HTTP if settings.LINKAGE_URL, else in-process).

    One client per process and configuration: over HTTP its connection pool is kept alive
    between calls (one TCP and TLS handshake per worker, not per page). The cache is keyed by
    (URL, credential, 事務), so a changed setting or credential file yields a new client, and the
    replaced one is closed. Both adapters are safe to share between threads.
    """
    token = credential()
    if not token:
        raise NotConfigured(
            "番号連携サーバの認証情報が設定されていません"
            "（KENSHIN_LINKAGE_CREDENTIAL または KENSHIN_LINKAGE_CREDENTIAL_FILE）"
        )
    jimu = settings.LINKAGE_JIMU
    url = (getattr(settings, "LINKAGE_URL", "") or "").strip()
    key = (url, token, jimu)
    global _client
    with _lock:
        if _client is not None and _client[0] == key:
            return _client[1]
    if url:
        from kenshin.linkage.http_client import HttpClient

        made: contract.LinkageClient = HttpClient(url, token, jimu)
    else:
        from kenshin.linkage.clients import InProcessClient

        made = InProcessClient(token, jimu)
    with _lock:
        old, _client = _client, (key, made)
    if old is not None:
        _close(old[1])
    return made


def reset_client() -> None:
    """Forget (and close) the cached client and credential file: tests, and after rotation of
    a credential that must take effect before the file's timestamp changes."""
    global _client, _file_cache
    with _lock:
        old, _client, _file_cache = _client, None, None
    if old is not None:
        _close(old[1])


def _close(client: object) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


_lock = threading.Lock()
_client: tuple[tuple[str, str, str], contract.LinkageClient] | None = None
_file_cache: tuple[tuple, str] | None = None


def keys_from_environment() -> bool:
    """True when the vault's keys come from the environment (KENSHIN_LINKAGE_KEYS,
    KENSHIN_LINKAGE_ACTIVE_KEY or KENSHIN_LINKAGE_INDEX_KEY): the key file is then not read,
    so setup must not create one."""
    from kenshin.linkage import crypto

    return crypto.env_in_use()


def group_my_number(number: str) -> str:
    """``1234 5678 9012``: a 個人番号 in three groups of four, as printed on the card, for the
    one page that shows it in full."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def ensure_embedded_setup(*, actor: str) -> None:
    """Embedded mode (demo, a single server): make sure this system may call the in-process
    linkage server — the system "kenshin" with its 事務, and a credential in
    settings.LINKAGE_CREDENTIAL_FILE (0600). Does nothing that is already in place; refuses to
    act when settings.LINKAGE_URL points at a separate server (its operator issues credentials).
    """
    from kenshin.linkage import actions, gateway
    from kenshin.linkage.models import BusinessSystem, SystemCredential

    if (getattr(settings, "LINKAGE_URL", "") or "").strip():
        raise contract.Conflict(
            "番号連携サーバが別のサーバにあるため、認証情報はその管理者が発行してください"
        )
    code, jimu = settings.LINKAGE_SYSTEM_CODE, settings.LINKAGE_JIMU
    system = BusinessSystem.objects.using(gateway.DB).filter(code=code).first()
    if system is None or jimu not in system.jimu_codes or not system.active:
        codes = sorted({*(system.jimu_codes if system else []), jimu})
        actions.register_system(code, EMBEDDED_SYSTEM_NAME, codes, actor=actor)
    token = credential()
    parsed = gateway.parse_token(token) if token else None
    if parsed is not None:
        prefix, secret = parsed
        cred = (
            SystemCredential.objects.using(gateway.DB)
            .filter(prefix=prefix, system__code=code, revoked_at=None)
            .values_list("secret_hash", "expires_at")
            .first()
        )
        if cred is not None and cred[0] == gateway.secret_hash(secret) and cred[1] is None:
            return
    if (getattr(settings, "LINKAGE_CREDENTIAL", "") or "").strip():
        # A credential from the environment wins over the file; writing a new file would
        # change nothing, so say what is wrong instead.
        raise NotConfigured(
            "KENSHIN_LINKAGE_CREDENTIAL の認証情報は番号連携サーバで使えません"
            "（失効・期限切れ・別のデータベース）。設定を外すか、発行し直してください"
        )
    name = getattr(settings, "LINKAGE_CREDENTIAL_FILE", "") or ""
    if not name:
        raise NotConfigured(
            "認証情報を保存するファイル（KENSHIN_LINKAGE_CREDENTIAL_FILE）が設定されていません"
        )
    token = actions.issue_credential(code, actor=actor)
    _write_private(Path(name), token)


def _write_private(path: Path, text: str) -> None:
    """Write a secret file readable only by its owner (created 0600, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (text + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
