"""Deploy checks for the 番号連携サーバ (`kenshin check --deploy`).

Why checks and not documentation only: the separation the assessment relies on (MN-01, MN-04)
is a matter of configuration — which role reaches which database, where the keys are — and a
wrong value looks exactly like a right one until the day of an incident.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@register(Tags.security, deploy=True)
def check_linkage_deployment(app_configs, **kwargs) -> list:  # type: ignore[no-untyped-def]
    """Keys present where they are used, a separate database role, TLS to a remote server."""
    problems: list = []
    main = settings.DATABASES.get("default", {})
    linkage = settings.DATABASES.get("linkage", {})
    if (
        "postgresql" in linkage.get("ENGINE", "")
        and "postgresql" in main.get("ENGINE", "")
        and linkage.get("USER") == main.get("USER")
    ):
        problems.append(
            Warning(
                "番号連携サーバのデータベースに本体と同じロールで接続しています。",
                hint="KENSHIN_LINKAGE_DATABASE_URL に番号連携専用のロールを指定し、"
                "`kenshin linkage grant-roles` で本体のロールの権限を外してください"
                "（docs/linkage.md）。",
                id="linkage.W001",
            )
        )
    if settings.LINKAGE_URL:
        parts = urlsplit(settings.LINKAGE_URL)
        if parts.scheme != "https" and (parts.hostname or "") not in LOOPBACK:
            problems.append(
                Warning(
                    "番号連携サーバへの接続が暗号化されていません（https ではありません）。",
                    hint="KENSHIN_LINKAGE_URL は https:// で指定してください（DATA-01）。",
                    id="linkage.W002",
                )
            )
    else:
        # In-process: this process encrypts and decrypts, so it needs the keys.
        from kenshin.linkage import crypto

        try:
            crypto.keyring()
        except crypto.KeysUnavailable as exc:
            problems.append(Error(str(exc), id="linkage.E001"))
    serving = getattr(settings, "LINKAGE_SERVER", False)  # `kenshin linkage serve` itself
    if not serving and not (settings.LINKAGE_CREDENTIAL or settings.LINKAGE_CREDENTIAL_FILE):
        problems.append(
            Error(
                "番号連携サーバの認証情報が設定されていません。",
                hint="KENSHIN_LINKAGE_CREDENTIAL または KENSHIN_LINKAGE_CREDENTIAL_FILE を"
                "設定してください（`kenshin linkage credential issue kenshin`）。",
                id="linkage.E002",
            )
        )
    return problems
