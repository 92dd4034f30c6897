"""`kenshin linkage …` — run and administer the 番号連携サーバ.

    kenshin linkage serve [--bind 127.0.0.1:8100] [--workers 2] [--threads 4]
    kenshin linkage migrate
    kenshin linkage system add CODE --name 名称 --jimu kenko_zoshin[,…]
    kenshin linkage system list
    kenshin linkage credential issue SYSTEM [--expires DAYS]
    kenshin linkage credential revoke PREFIX          (PREFIX, kl_PREFIX or the whole token)
    kenshin linkage credential rotate PREFIX [--revoke-old]
    kenshin linkage credential list [--system CODE]
    kenshin linkage keys | rotate-key | grant-roles      (the vault: cli_vault.py)

A thin shell: state changes go through linkage.actions (each writes its LinkageEvent), the
vault's sub-commands are cli_vault's. On the linkage server's own machine run these with
``DJANGO_SETTINGS_MODULE=kenshin.linkage.server_settings``: they need only the linkage database.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from kenshin.linkage import cli_vault, contract, server
from kenshin.linkage.cli_vault import default_actor

# What an operator can fix (unknown system, bad 事務 code …): shown without a traceback.
OPERATOR_ERRORS = (contract.LinkageError, ValueError, LookupError)


class Command(BaseCommand):
    help = "番号連携サーバの起動（serve）と管理（migrate, system, credential, 鍵）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)

        serve = sub.add_parser("serve", help="番号連携サーバ（HTTP API）を起動します")
        server.add_arguments(serve)

        sub.add_parser("migrate", help="番号連携データベースの表を作成・更新します")

        system = sub.add_parser("system", help="連携システムの登録と一覧")
        system_sub = system.add_subparsers(dest="system_action", required=True)
        add = system_sub.add_parser("add", help="連携システムを登録します")
        add.add_argument("code", help="システムコード（英数字）")
        add.add_argument("--name", required=True, help="名称")
        add.add_argument(
            "--jimu", required=True, help="許可する事務コード（カンマ区切り。例: kenko_zoshin）"
        )
        system_sub.add_parser("list", help="連携システムの一覧")

        cred = sub.add_parser("credential", help="連携システムの認証情報の発行・失効・一覧")
        cred_sub = cred.add_subparsers(dest="credential_action", required=True)
        issue = cred_sub.add_parser("issue", help="認証情報を発行します（1 回だけ表示）")
        issue.add_argument("system", help="システムコード")
        issue.add_argument("--expires", type=int, metavar="DAYS", help="有効期限（日数）")
        revoke = cred_sub.add_parser("revoke", help="認証情報を失効させます")
        which_help = "認証情報の識別子（一覧の表示のまま、kl_<識別子>、または認証情報そのもの）"
        revoke.add_argument("prefix", help=which_help)
        rotate = cred_sub.add_parser(
            "rotate", help="同じシステムの認証情報を新しく発行します（1 回だけ表示）"
        )
        rotate.add_argument("prefix", help=which_help)
        rotate.add_argument(
            "--revoke-old",
            action="store_true",
            help="古い認証情報を同時に失効させます（既定: 切替えが済むまで有効のまま）",
        )
        lst = cred_sub.add_parser("list", help="認証情報の一覧（秘密の部分は表示しません）")
        lst.add_argument("--system", default="", help="システムコードで絞り込み")

        cli_vault.add_arguments(sub)

    def handle(self, *args, **options):
        action = options["action"]
        if action == "serve":
            self._serve(options)
        elif action == "migrate":
            call_command(
                "migrate",
                database="linkage",
                interactive=False,
                verbosity=options["verbosity"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
        elif action == "system":
            self._system(options)
        elif action == "credential":
            self._credential(options)
        elif action in cli_vault.ACTIONS:
            code = cli_vault.handle(options, self.stdout, self.stderr)
            if code:
                raise CommandError(f"{action} は完了しませんでした。", returncode=code)

    # ------------------------------------------------------------ serve

    def _serve(self, options) -> None:
        argv = [sys.executable, "-m", "kenshin.linkage.server", *server.argv_of(options)]
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=server.SETTINGS)
        self.stderr.write(
            f"番号連携サーバを起動します: {options['bind']}"
            f"（ワーカー {options['workers']}、スレッド {options['threads']}）"
        )
        self.stdout.flush()
        self.stderr.flush()
        # Our own module under the same interpreter; no shell, no user-supplied program.
        os.execve(sys.executable, argv, env)  # noqa: S606  # nosec B606

    # ------------------------------------------------------------ systems

    def _system(self, options) -> None:
        from kenshin.linkage import actions
        from kenshin.linkage.models import BusinessSystem

        if options["system_action"] == "add":
            jimu = [j.strip() for j in options["jimu"].split(",") if j.strip()]
            try:
                actions.register_system(
                    options["code"], options["name"], jimu, actor=default_actor()
                )
            except OPERATOR_ERRORS as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                f"連携システム {options['code']} を登録しました（事務: {', '.join(jimu)}）。"
            )
            return
        rows = BusinessSystem.objects.order_by("code")
        if not rows:
            self.stdout.write("連携システムはまだありません。")
        for system in rows:
            state = "有効" if system.active else "無効"
            self.stdout.write(
                f"{system.code}\t{system.name}\t{state}\t事務: {', '.join(system.jimu_codes)}"
            )

    # ------------------------------------------------------------ credentials

    def _credential(self, options) -> None:
        from kenshin.core import clock
        from kenshin.linkage import actions

        which = options["credential_action"]
        try:
            if which == "issue":
                days = options.get("expires")
                if days is not None and days < 1:
                    raise CommandError("--expires は 1 以上の日数で指定してください。")
                expires = clock.now() + timedelta(days=days) if days else None
                token = actions.issue_credential(
                    options["system"], actor=default_actor(), expires_at=expires
                )
                self._show_token(token)
            elif which == "rotate":
                token = actions.rotate_credential(
                    options["prefix"], actor=default_actor(), revoke_old=options["revoke_old"]
                )
                self._show_token(token)
                old = actions.credential_prefix(options["prefix"])
                self.stderr.write(
                    f"古い認証情報 {old} は失効させました。"
                    if options["revoke_old"]
                    else f"古い認証情報 {old} は有効のままです。切り替えたら"
                    f" kenshin linkage credential revoke {old} で失効させてください。"
                )
            elif which == "revoke":
                prefix = actions.credential_prefix(options["prefix"])
                actions.revoke_credential(prefix, actor=default_actor())
                # The prefix only, even if a whole token was given: the secret is never echoed.
                self.stdout.write(f"認証情報 {prefix} を失効させました。")
            else:
                rows = actions.list_credentials(options["system"])
                if not rows:
                    self.stdout.write("認証情報はありません。")
                for row in rows:
                    self.stdout.write(_credential_line(row))
        except OPERATOR_ERRORS as exc:
            raise CommandError(str(exc)) from exc

    def _show_token(self, token: str) -> None:
        # The token alone on stdout (scripts read it); the advice on stderr.
        self.stdout.write(token)
        self.stderr.write(
            "この認証情報は今回だけ表示します。連携システムの設定"
            "（KENSHIN_LINKAGE_CREDENTIAL または認証情報ファイル）に保管してください。"
        )


def _credential_line(row: dict) -> str:
    def when(value) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else "—"

    state = "失効" if row.get("revoked") else "有効"
    return (
        f"{row['prefix']}\t{row['system']}\t{state}\t発行 {when(row.get('created'))}"
        f"\t期限 {when(row.get('expires'))}\t失効 {when(row.get('revoked'))}"
    )
