"""`kenshin programs load|show|copy|export|history` — thin shells over programs.services.

load   FILE…       store each file as its year's next version (all files valid, or nothing);
                   without files, the shipped defaults for years that have no catalogue yet
show   --fy YEAR   the year's catalogue as a table
copy   --from YEAR the year's catalogue as the first version of the next year
export --fy YEAR   a stored version as TOML on stdout (to review, keep under version control,
                   edit and load again)
history            every stored version
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kenshin.core import audit, clock
from kenshin.programs import services
from kenshin.programs.catalogue import describe, describe_fees


def _width(text: str) -> int:
    """Columns a string takes on a terminal: East Asian wide and full-width characters take 2."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def table(header: list[str], rows: list[list[str] | str]) -> list[str]:
    """Rows as aligned columns (two spaces apart), with a rule under the header.

    A row given as a plain string is a heading line between rows (not aligned).
    """
    cells = [r for r in rows if not isinstance(r, str)]
    widths = [max(_width(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out.extend(r if isinstance(r, str) else line(r) for r in rows)
    return out


class Command(BaseCommand):
    help = "検診事業の定義（年度ごと）の取り込み・表示・翌年度への複写・書き出し"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser(
            "load",
            help="定義ファイル（TOML）を新しい版として取り込みます。"
            "ファイルを指定しないと、同梱の既定の定義を、定義のない年度にだけ取り込みます",
        )
        load.add_argument("files", nargs="*", type=Path)
        load.add_argument("--note", default="", help="変更理由として記録する文")
        load.add_argument("--actor", default="cli", help="操作者として記録する名前")
        show = sub.add_parser("show", help="年度の定義を表にして表示します")
        show.add_argument("--fy", type=int, required=True, help="年度（西暦、例: 2025）")
        show.add_argument("--version", type=int, default=None, help="版（省略時は最新）")
        copy = sub.add_parser("copy", help="年度の定義を翌年度の第1版として複写します")
        copy.add_argument("--from", dest="from_year", type=int, required=True, help="複写元の年度")
        copy.add_argument("--note", default="", help="変更理由として記録する文")
        copy.add_argument("--actor", default="cli", help="操作者として記録する名前")
        export = sub.add_parser("export", help="保存されている定義を TOML で標準出力に書き出します")
        export.add_argument("--fy", type=int, required=True, help="年度（西暦、例: 2025）")
        export.add_argument("--version", type=int, default=None, help="版（省略時は最新）")
        sub.add_parser("history", help="保存されている版の一覧を表示します")

    def handle(self, *args, **options):
        action = options["action"]
        try:
            getattr(self, f"_{action}")(options)
        except services.CatalogueMissing as exc:
            raise CommandError(str(exc)) from None

    def _load(self, options) -> None:
        actor = audit.Actor.system(options["actor"])
        if not options["files"]:
            for fiscal_year, outcome in services.load_shipped(actor):
                self.stdout.write(f"{fiscal_year}年度: {outcome}")
            return
        missing = [str(p) for p in options["files"] if not p.is_file()]
        if missing:
            raise CommandError(f"ファイルがありません: {', '.join(missing)}")
        outcomes = services.load_files(options["files"], actor, note=options["note"])
        for outcome in outcomes:
            (self.stderr if outcome.error else self.stdout).write(str(outcome))
        if any(o.error for o in outcomes):
            raise CommandError("誤りのあるファイルがあるため、どのファイルも取り込みませんでした")

    def _show(self, options) -> None:
        stored = services.stored_version(options["fy"], options["version"])
        info, cat = stored.info, stored.catalogue
        exemptions, early = describe_fees(cat.fees)
        write = self.stdout.write
        write(f"{cat.fiscal_year}年度 {cat.title} — 第{info.version}版")
        write(
            f"出所: {info.source_label}　作成: {info.created_by} "
            f"{info.created_at.astimezone(clock.JST):%Y-%m-%d %H:%M}"
            + (f"　変更理由: {info.note}" if info.note else "")
        )
        write(f"自己負担の免除（判定の順）: {exemptions}")
        write(f"前年度の課税区分で判定する受診月: {early}")
        names = {p.code: p.name for p in cat.programmes}
        header = ["検査方法", "性別", "対象年齢", "受診間隔", "節目年齢", "偶数・奇数", "方式",
                  "自己負担", "委託料単価", "クーポン", "実施", "条件"]  # fmt: skip
        rows: list[list[str] | str] = []
        for programme in cat.programmes:
            one = "（同じ年度に受けられる検査方法は1つ）" if programme.one_method_per_year else ""
            rows.append(f"■ {programme.name}{one}")
            for m in programme.methods:
                s = describe(m, names)
                rows.append([s.name, s.sex, s.ages, s.interval, s.milestones, s.cohort,
                             s.settings, s.copay, s.unit_price,
                             f"{m.coupon.turned_age}歳（{m.coupon.prefix}）" if m.coupon else "—",
                             s.enabled, s.extra or "—"])  # fmt: skip
        write("")
        for line in table(header, rows):
            write(line)

    def _copy(self, options) -> None:
        from_year = options["from_year"]
        try:
            catalogue = services.copy_forward(
                audit.Actor.system(options["actor"]), from_year, note=options["note"]
            )
        except services.CatalogueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{from_year}年度の定義を {catalogue.fiscal_year}年度 第1版として複写しました"
            f"（{catalogue.title}）"
        )

    def _export(self, options) -> None:
        self.stdout.write(services.export_toml(options["fy"], options["version"]), ending="")

    def _history(self, options) -> None:
        rows = [
            [f"{v.fiscal_year}年度", f"第{v.version}版", v.source_label, v.created_by,
             f"{v.created_at.astimezone(clock.JST):%Y-%m-%d %H:%M}", v.note or "—"]
            for v in services.history()
        ]  # fmt: skip
        if not rows:
            self.stdout.write(
                "保存されている定義はありません（kenshin programs load で取り込みます）"
            )
            return
        for line in table(["年度", "版", "出所", "作成者", "作成日時", "変更理由"], rows):
            self.stdout.write(line)
