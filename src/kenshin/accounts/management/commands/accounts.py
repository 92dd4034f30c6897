"""`kenshin accounts bootstrap-admin` — the first system administrator of a new installation.

Why a command and not a default account: no default or shared account may exist (AUTH-02).
The first administrator is created by the operator of the server, once, and receives a
temporary password by mail like everyone else — the operator never sees it (AUTH-07). After
that, administrators are created on the 利用者管理 screen.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from kenshin.accounts import services


class Command(BaseCommand):
    help = "最初のシステム管理者を作り、仮パスワードを本人のメールに送ります（初回だけ）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        boot = sub.add_parser("bootstrap-admin", help="最初のシステム管理者を作ります")
        boot.add_argument("username")
        boot.add_argument("--email", required=True, help="仮パスワードを送るメールアドレス")
        boot.add_argument("--display-name", default="", help="表示名")

    def handle(self, *args, **options):
        try:
            services.bootstrap_admin(
                options["username"], email=options["email"], display_name=options["display_name"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"システム管理者 {options['username']} を作りました。"
            "仮パスワードはメールで本人に送りました（24 時間・1 回限り）。"
            "最初のログインで認証アプリを登録します。"
        )
