"""The 番号連携サーバ process: gunicorn (gthread workers) serving server_urls under
server_settings. `kenshin linkage serve` execs ``python -m kenshin.linkage.server``.

Why a fresh process and not gunicorn inside the management command: `kenshin` has already set
Django up with the health system's settings (and their main database) by the time a command
runs. The server must start from server_settings, whose ``default`` database is a dummy, so it
cannot reach the main database even by mistake. Exec (not a child) so that the service manager's
signals go straight to the gunicorn master.

Access log: method, path, status, size and time — never the query string or a body (gunicorn
never logs bodies; the API carries no personal data in its paths).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

SETTINGS = "kenshin.linkage.server_settings"
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kenshin linkage serve", description="番号連携サーバを起動")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The serve options (shared with the management command's sub-parser)."""
    p.add_argument("--bind", default="127.0.0.1:8100", help="待ち受けるアドレス:ポート")
    p.add_argument("--workers", type=int, default=2, help="ワーカープロセス数")
    p.add_argument("--threads", type=int, default=4, help="ワーカーあたりのスレッド数")
    p.add_argument("--timeout", type=int, default=30, help="1 要求の上限（秒）")
    p.add_argument("--certfile", default="", help="TLS 証明書（PEM）。指定すると HTTPS")
    p.add_argument("--keyfile", default="", help="TLS 秘密鍵（PEM）")
    p.add_argument(
        "--access-log",
        default="-",
        help="アクセスログの出力先（- は標準エラー、none で出力しない）。本文と"
        "クエリ文字列は記録しません",
    )


def argv_of(options: dict[str, Any]) -> list[str]:
    """The command line of ``python -m kenshin.linkage.server`` for parsed serve options."""
    args = [
        "--bind", options["bind"],
        "--workers", str(options["workers"]),
        "--threads", str(options["threads"]),
        "--timeout", str(options["timeout"]),
        "--access-log", options["access_log"],
    ]  # fmt: skip
    if options.get("certfile"):
        args += ["--certfile", options["certfile"], "--keyfile", options["keyfile"]]
    return args


def gunicorn_options(ns: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bind": ns.bind,
        "workers": ns.workers,
        "threads": ns.threads,
        "worker_class": "gthread",
        "timeout": ns.timeout,
        "graceful_timeout": 10,
        "keepalive": 30,
        "proc_name": "kenshin-linkage",
        "errorlog": "-",
        # gunicorn's runtime control socket (one path per user) is not needed, and two
        # servers on one machine (tests, bench) would fight over it.
        "control_socket_disable": True,
        "accesslog": None if ns.access_log == "none" else ns.access_log,
        "access_log_format": ACCESS_LOG_FORMAT,
        # Proxies' forwarded headers are trusted only when told (KENSHIN_BEHIND_PROXY).
        "forwarded_allow_ips": "127.0.0.1" if os.environ.get("KENSHIN_BEHIND_PROXY") == "1" else "",
    }
    if ns.certfile:
        opts.update(certfile=ns.certfile, keyfile=ns.keyfile)
    return opts


def main(argv: list[str] | None = None) -> None:
    ns = parser().parse_args(argv)
    # Forced, not setdefault: this process must never run with the main settings.
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS

    from gunicorn.app.base import BaseApplication

    class LinkageServer(BaseApplication):
        def __init__(self, options: dict[str, Any]):
            self.options = options
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)

        def load(self):
            from django.core.wsgi import get_wsgi_application

            return get_wsgi_application()

    LinkageServer(gunicorn_options(ns)).run()


if __name__ == "__main__":
    main()
