"""`kenshin audit verify` and `kenshin audit anchor` — thin shell over audit.verify (LOG-02)."""

from __future__ import annotations

import argparse
import getpass

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from kenshin.audit import verify as chain_verify
from kenshin.core import audit, clock
from kenshin.core.progress import ProgressLine


class Command(BaseCommand):
    help = "監査ログの検証（kenshin audit verify）と末尾ハッシュの控え（kenshin audit anchor）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        ver = sub.add_parser("verify", help="監査ログのハッシュの連鎖を先頭から確かめます")
        ver.add_argument(
            "--from-anchor",
            metavar="HASH@SEQ",
            help="kenshin audit anchor で控えたハッシュ@番号 と一致するかも確かめます",
        )
        ver.add_argument("--batch", type=int, default=chain_verify.BATCH, help=argparse.SUPPRESS)
        sub.add_parser(
            "anchor",
            help="末尾の番号・ハッシュ・日時を1行で表示します（データベースの外に保管してください）",
        )

    def handle(self, *args, **options):
        if options["action"] == "verify":
            self._verify(options)
        elif options["action"] == "anchor":
            self._anchor()

    def _verify(self, options) -> None:
        anchor = None
        if options.get("from_anchor"):
            try:
                anchor = chain_verify.Anchor.parse(options["from_anchor"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        bar: ProgressLine | None = None

        def progress(done: int, total: int, rows: int) -> None:
            nonlocal bar
            if bar is None:
                bar = ProgressLine("監査ログを検証中", total, self.stdout)
            bar.update(done, rows)

        report = chain_verify.verify(anchor=anchor, batch=options["batch"], progress=progress)
        if bar is not None:
            bar.finish(report.rows)
        if not report.ok:
            raise CommandError(f"監査ログに問題があります: {report.problem.message}")
        checked = f"番号 1〜{report.last_seq} の {report.rows:,} 行" if report.rows else "0 行"
        self.stdout.write(f"監査ログは正常です: {checked}を確認しました。")
        self.stdout.write(f"末尾のハッシュ: {report.last_hash}")
        if anchor is not None:
            self.stdout.write(f"アンカー（番号 {anchor.seq}）とも一致しました。")

    def _anchor(self) -> None:
        """Record that an anchor was taken, then print the head that includes that record."""
        actor = audit.Actor(None, f"cli:{getpass.getuser()}"[:150])
        with transaction.atomic():
            entry = audit.record(
                audit.Event.EXPORT, actor, function="audit.anchor", kind="audit_anchor"
            )
            seq, digest = chain_verify.head()
        at = entry.at.astimezone(clock.JST).isoformat(timespec="seconds")
        self.stdout.write(f"{seq} {digest} {at}")
        self.stderr.write(
            "この行をデータベースの外（紙・別のサーバー）に保管してください。"
            f"照合: kenshin audit verify --from-anchor {digest}@{seq}"
        )
