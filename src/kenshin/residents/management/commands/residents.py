"""`kenshin residents import FILE...` and `kenshin residents link` — thin shells over
residents.services."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kenshin.linkage.contract import LinkageError
from kenshin.residents import services


class Command(BaseCommand):
    help = "住民記録の取り込み（kenshin residents import FILE ...）と統合宛名番号の連携（link）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="住民記録ファイル・年度別区分ファイルを取り込みます")
        imp.add_argument("files", nargs="+", type=Path)
        imp.add_argument("--errors-csv", type=Path, help="誤りの一覧を CSV に書き出します")
        imp.add_argument("--actor", default="cli", help="取込者として記録する名前")
        link = sub.add_parser(
            "link",
            help="統合宛名番号のない住民を番号連携サーバに登録します（中断しても続きから再開）",
        )
        link.add_argument("--batch-size", type=int, default=5_000)
        link.add_argument("--limit", type=int, default=None, help="この人数で止めます")
        link.add_argument("--actor", default="cli", help="操作者として記録する名前")

    def handle(self, *args, **options):
        if options["action"] == "link":
            try:
                report = services.link_residents(
                    actor=options["actor"],
                    batch_size=max(1, options["batch_size"]),
                    stop_after=options["limit"],
                    stdout=self.stdout,
                )
            except LinkageError as exc:
                raise CommandError(f"番号連携サーバに登録できませんでした（{exc}）") from None
            self.stdout.write(report.summary())
            return
        if options["action"] == "import":
            missing = [str(p) for p in options["files"] if not p.is_file()]
            if missing:
                raise CommandError(f"ファイルがありません: {', '.join(missing)}")
            reports = services.import_feed_files(
                options["files"], stdout=self.stdout, actor=options["actor"]
            )
            if options["errors_csv"] is not None:
                n = services.write_errors_csv(reports, options["errors_csv"])
                self.stdout.write(f"誤り {n:,} 件を {options['errors_csv']} に書き出しました")
            if any(r.errors for r in reports):
                raise CommandError("誤りのあるファイルがあるため、取り込みを中止しました")
