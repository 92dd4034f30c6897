"""`kenshin demo-city`: generate the synthetic demo city's feed files and import them.

The files are ordinary resident feed files (docs/formats/resident-feed.md), so the demo goes
through exactly the same import path as a city's real files. `--no-import` only writes them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from kenshin.demo.city import DEFAULT_END, generate_city


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"日付は YYYY-MM-DD で指定してください: {value}") from exc


class Command(BaseCommand):
    help = "合成データのデモの街（住民記録の全件・異動・年度別区分ファイル）を生成し、取り込みます"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--residents", type=int, default=20_000, help="住民の人数")
        parser.add_argument("--seed", type=int, default=1, help="乱数の種（同じ種なら同じ街）")
        parser.add_argument(
            "--out", type=Path, default=None, help="出力先（既定: VAR_DIR/demo/feed）"
        )
        parser.add_argument(
            "--base-date", default="2023-04-01", help="全件ファイルの基準日（YYYY-MM-DD）"
        )
        parser.add_argument(
            "--end-date", default=DEFAULT_END.isoformat(), help="異動の最終日（YYYY-MM-DD）"
        )
        parser.add_argument(
            "--no-import", action="store_true", help="ファイルを書くだけで取り込まない"
        )

    def handle(self, *args: object, **options: object) -> None:
        residents = options["residents"]
        if not isinstance(residents, int) or residents < 1:
            raise CommandError("--residents は 1 以上にしてください")
        base = _iso_date(str(options["base_date"]))
        end = _iso_date(str(options["end_date"]))
        if end < base:
            raise CommandError("--end-date は --base-date 以降にしてください")
        if not options["no_import"] and end > timezone.localdate():
            # 届出日 may be as late as end_date, and the import refuses future dates.
            raise CommandError(
                "--end-date が未来の日付です（取り込めません）。--no-import なら書けます"
            )
        out = options["out"] or Path(settings.VAR_DIR) / "demo" / "feed"
        out = Path(str(out))

        self.stdout.write(f"住民 {residents:,} 人の街を生成しています…（seed {options['seed']}）")
        paths = generate_city(
            out,
            residents=residents,
            seed=int(str(options["seed"])),
            base_date=base,
            end_date=end,
            progress=lambda msg: self.stdout.write(f"  {msg}"),
        )
        self.stdout.write(f"{len(paths)} 個のファイルを {out} に書きました。")
        if options["no_import"]:
            self.stdout.write("取り込みは省きました（--no-import）。取り込む順番:")
            for path in paths:
                self.stdout.write(f"  {path.name}")
            return

        # Imported lazily: the residents app owns the import and may be absent in a bare setup.
        from kenshin.residents.services import import_feed_files

        self.stdout.write("住民記録に取り込んでいます…")
        reports = import_feed_files(paths, stdout=self.stdout)
        if any(getattr(r, "errors", None) for r in reports):
            raise CommandError("デモの街の取り込みに失敗しました（上の誤りを確認してください）")
        self.stdout.write(self.style.SUCCESS("デモの街を取り込みました。"))
