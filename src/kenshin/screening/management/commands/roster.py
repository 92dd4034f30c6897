"""`kenshin roster build|recount|explain` — thin shells over screening.services.

build   --fy YEAR [--as-of DATE]   build (or rebuild, or top up) the year's roster, with a
                                   progress line on stderr and a summary at the end
build   --today                    the daily top-up: base date today, in today's fiscal year
recount --fy YEAR                  count the stored 対象者数 table again from the roster (the
                                   remedy should it ever drift), and say how many cells differed
explain --fy YEAR --atena-no N     each programme's decision for one person and the rule that
                                   made it (recorded in the audit log with its purpose)

Dates may be written as 2025-04-01 or in 和暦 (令和7年4月1日, R7.4.1).
"""

from __future__ import annotations

import unicodedata
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from kenshin.core import audit, clock, jobs
from kenshin.core.fiscal import fiscal_year_of
from kenshin.core.purposes import Purpose
from kenshin.core.wareki import parse_date
from kenshin.programs import services as programs
from kenshin.screening import services
from kenshin.screening.jobs import ROSTER_BUILD, label_for


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return parse_date(text.strip())
    except ValueError as exc:
        raise CommandError(f"--as-of: {exc}") from None


def _yen(amount: int) -> str:
    return f"{amount:,}円"


def _width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


class Command(BaseCommand):
    help = "対象者抽出（kenshin roster build --fy 年度）と判定の説明（explain）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        build = sub.add_parser("build", help="年度の対象者名簿を作ります（作り直し・追加も同じ）")
        build.add_argument("--fy", type=int, help="年度（西暦。令和7年度なら 2025）")
        build.add_argument("--as-of", help="基準日（既定は4月1日。2025-06-01、令和7年6月1日 など）")
        build.add_argument(
            "--today",
            action="store_true",
            help="基準日を今日にします（毎日の追加抽出用。--fy を省くと今日の年度）",
        )
        build.add_argument("--actor", default="cli", help="実行者として記録する名前")
        recount = sub.add_parser(
            "recount", help="対象者数の表を名簿から数え直します（表がずれたときの手当て）"
        )
        recount.add_argument("--fy", type=int, help="年度（西暦）")
        recount.add_argument("--actor", default="cli", help="実行者として記録する名前")
        explain = sub.add_parser(
            "explain", help="ある方の各検診の判定と、その根拠の規則を表示します"
        )
        explain.add_argument("--fy", type=int, required=True, help="年度（西暦）")
        explain.add_argument("--atena-no", required=True, help="宛名番号")
        explain.add_argument("--as-of", help="基準日（既定は最後の対象者抽出の基準日）")
        explain.add_argument(
            "--purpose",
            default=Purpose.ELIGIBILITY.value,
            choices=Purpose.values,
            help="利用目的（監査ログに記録。既定は eligibility = 対象者確認・抽出）",
        )
        explain.add_argument("--actor", default="cli", help="閲覧者として記録する名前")

    def handle(self, *args, **options):
        if options["action"] == "build" and options["today"]:
            if options["as_of"]:
                raise CommandError("--today と --as-of は一緒に使えません")
            options["as_of"] = clock.today().isoformat()
            options["fy"] = options["fy"] or fiscal_year_of(clock.today())
        if options["fy"] is None:
            raise CommandError("--fy で年度を指定してください（毎日の追加抽出なら --today）")
        if options["fy"] not in programs.fiscal_years():
            raise CommandError(
                f"{options['fy']}年度の検診事業の定義がありません"
                "（kenshin programs load で取り込みます）"
            )
        if options["action"] == "build":
            self._build(options)
        elif options["action"] == "recount":
            result = services.recount(options["fy"], audit.Actor.system(options["actor"]))
            self.stdout.write(
                f"{options['fy']}年度の対象者数を数え直しました（{result.cells:,} 区分、"
                f"数が違っていた区分 {result.changed:,}）。"
            )
        else:
            self._explain(options)

    def _build(self, options) -> None:
        fy, as_of = options["fy"], _date(options["as_of"])
        params = {"fiscal_year": fy, "as_of": as_of.isoformat() if as_of else None}
        try:
            actor = audit.Actor.system(options["actor"])
            run = jobs.run_job(
                ROSTER_BUILD, label_for(fy, as_of), params, actor, stream=self.stderr
            )
        except jobs.JobError as exc:
            raise CommandError(exc.message) from None
        if run.status != "succeeded":
            raise CommandError(run.message)
        build = services.last_build(fy)
        names = services.methods_of(fy)
        out = self.stdout
        out.write(run.message)
        counts = build.counts if build is not None else {}
        per_method = counts.get("per_method", {})
        shown = [(names[m][0], per_method[m]) for m in names if m in per_method and names[m][2]]
        width = max((_width(name) for name, _ in shown), default=8)
        out.write(f"{_pad('検査方法', width)}  {' ' * 6}名簿  {' ' * 4}対象者")
        for name, row in shown:
            out.write(f"{_pad(name, width)}  {row['rows']:>10,}  {row['eligible']:>10,}")
        rows = sum(r["rows"] for r in per_method.values())
        eligible = sum(r["eligible"] for r in per_method.values())
        out.write(f"{_pad('計', width)}  {rows:>10,}  {eligible:>10,}")

    def _explain(self, options) -> None:
        fy = options["fy"]
        atena_no = options["atena_no"].strip()
        result = services.explain_for(
            audit.Actor.system(options["actor"]),
            fy,
            atena_no,
            purpose=options["purpose"],
            as_of=_date(options["as_of"]),
            function="screening.view_roster",
        )
        out = self.stdout
        if not result.found:
            raise CommandError(f"宛名番号 {atena_no} は住民記録にありません")
        build = (
            f"対象者抽出 #{result.build_id}（基準日 {result.build_as_of.isoformat()}）"
            if result.build_id
            else "対象者抽出はまだ行われていません"
        )
        out.write(f"{fy}年度 対象者の判定　宛名番号 {atena_no}")
        out.write(
            f"基準日 {result.as_of.isoformat()}　事業定義 第{result.catalogue_version}版　{build}"
        )
        out.write(
            f"性別 {result.sex_label}　年度末年齢 {result.fy_end_age}歳　"
            f"住民状態（基準日） {result.status_label}"
        )
        programme = None
        for x in result.methods:
            if x.programme != programme:
                programme = x.programme
                out.write("")
                line = x.programme_name
                if x.exclusion is not None:
                    line += f"　受診不要: {x.exclusion.reason_label}（{x.exclusion.reason}）"
                out.write(line)
            mark = "○ 対象" if x.decision.eligible else "× 対象外"
            out.write(f"  {x.method_name}: {mark}  規則 [{x.decision.reason}] {x.label}")
            if not x.rostered:
                out.write("    名簿: 作りません（同時に実施する検診の判定に従います）")
            elif x.entry is None:
                out.write("    名簿: 載っていません（対象年齢・性別の範囲外、または抽出前）")
            else:
                e = x.entry
                agree = "規則と一致" if x.agrees else "規則と不一致（抽出後に記録が変わりました）"
                stored = "対象" if e.eligible else "対象外"
                line = f"    名簿: {stored} [{e.reason}] {e.reason_label}（{agree}）"
                out.write(line)
                if e.override_eligible is not None:
                    out.write(
                        f"    職員の判断: {'対象' if e.override_eligible else '対象外'}"
                        f"（規則では [{e.computed_reason}] {e.computed_reason_label}）"
                    )
                extras = [f"免除 {e.exemption_label}"]
                if e.exemption_early != e.exemption:
                    extras.append(f"4〜6月の受診は免除 {e.exemption_early_label}")
                if e.coupon_no:
                    extras.append(f"クーポン番号 {e.coupon_no}")
                out.write("    " + "　".join(extras))
            fees = []
            for c in x.copays:
                text = f"{c.setting_label} {_yen(c.amount)}"
                if c.amount_early is not None:
                    text += f"（4〜6月 {_yen(c.amount_early)}）"
                fees.append(text)
            unit = "" if x.eligible else "（対象外のため委託単価）"
            out.write(f"    自己負担{unit}: " + "、".join(fees))
