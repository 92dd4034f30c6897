"""`kenshin intake import|profile` — thin shells over intake.services.

import FILE [--profile P] [--fy YEAR] [--sender CODE] [--commit [--valid-only]] [--errors OUT]
    take in a result file (CSV, Excel or FHIR): check and match it with a progress line, print
    the same summary as the screen; with --commit write the results (all or nothing; with
    --valid-only the correct rows, the rest to the error file)
profile save NAME FILE   save a column profile from a TOML file ([columns] 見出し = "項目")
profile list             the saved profiles
export-fhir --atena-no N [--fy YEAR] OUT   a person's exams as national 自治体検診 FHIR Bundles
    (NDJSON), e.g. for a 転出先 city or a disclosure request; recorded with its purpose
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kenshin.core import audit, clock, jobs
from kenshin.core.fiscal import fiscal_year_of
from kenshin.core.purposes import Purpose
from kenshin.intake import services
from kenshin.intake.jobs import COMMIT_JOB, STAGE


class Command(BaseCommand):
    help = "検診結果ファイルの取込（kenshin intake import FILE --profile P）と列の対応表"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="検診結果ファイルを確認し、--commit で確定します")
        imp.add_argument("file", help="CSV・Excel（.xlsx）・FHIR（.json / .ndjson）")
        imp.add_argument("--profile", default="", help="列の対応表の名前（医療機関独自の列のとき）")
        imp.add_argument("--fy", type=int, help="契約年度（西暦。既定は今日の年度）")
        imp.add_argument("--sender", default="", help="送付元の医療機関コード（医師会なら省略）")
        imp.add_argument("--commit", action="store_true", help="確認のあと確定（登録）します")
        imp.add_argument("--valid-only", action="store_true", help="正しい行だけ確定します")
        imp.add_argument("--errors", help="エラーファイルの書き出し先（CSV）")
        imp.add_argument("--encoding", default="cp932", choices=["cp932", "utf-8-sig"],
                         help="エラーファイルの文字コード（既定 cp932）")  # fmt: skip
        imp.add_argument("--actor", default="cli", help="実行者として記録する名前")
        prof = sub.add_parser("profile", help="列の対応表")
        psub = prof.add_subparsers(dest="profile_action", required=True)
        save = psub.add_parser("save", help="TOML ファイルから対応表を保存します")
        save.add_argument("name")
        save.add_argument("file")
        save.add_argument("--actor", default="cli")
        psub.add_parser("list", help="保存されている対応表")
        exp = sub.add_parser(
            "export-fhir", help="ある方の受診を国の FHIR 様式（NDJSON）で出力します"
        )
        exp.add_argument("out", help="出力するファイル（.ndjson）")
        exp.add_argument("--atena-no", required=True, help="宛名番号")
        exp.add_argument("--fy", type=int, help="年度（西暦。省くとすべての年度）")
        exp.add_argument("--purpose", default=Purpose.DISCLOSURE.value, choices=Purpose.values,
                         help="利用目的（監査ログに記録。既定は開示請求対応）")  # fmt: skip
        exp.add_argument("--actor", default="cli", help="出力者として記録する名前")

    def handle(self, *args, **options):
        try:
            if options["action"] == "import":
                self._import(options)
            elif options["action"] == "export-fhir":
                self._export_fhir(options)
            elif options["profile_action"] == "save":
                self._save_profile(options)
            else:
                for p in services.profiles():
                    self.stdout.write(f"{p.name}\t{len(p.mapping)} 列\t{p.description}")
        except services.IntakeError as exc:
            raise CommandError(str(exc)) from None

    def _export_fhir(self, options) -> None:
        export = services.fhir_export(
            audit.Actor.system(options["actor"]), options["atena_no"], options["fy"],
            purpose=options["purpose"],
        )  # fmt: skip
        with open(options["out"], "w", encoding="utf-8") as out:
            for bundle in export.bundles:
                out.write(json.dumps(bundle, ensure_ascii=False) + "\n")
        self.stdout.write(f"{len(export.bundles)} 件の Bundle を書き出しました: {options['out']}")
        for exam_id, why in export.skipped:
            self.stdout.write(f"受診 {exam_id} は書き出せません: {why}")

    def _save_profile(self, options) -> None:
        try:
            data = tomllib.loads(Path(options["file"]).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CommandError(f"対応表のファイルを読めません: {exc}") from None
        services.save_profile(
            options["actor"], options["name"], dict(data.get("columns", {})),
            description=str(data.get("description", "")), values=data.get("values", {}),
        )  # fmt: skip
        self.stdout.write(f"対応表「{options['name']}」を保存しました。")

    def _import(self, options) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"ファイルがありません: {path}")
        actor = options["actor"]
        fy = options["fy"] or fiscal_year_of(clock.today())
        with path.open("rb") as fh:
            batch = services.receive_file(actor, fh, path.name, fiscal_year=fy,
                                          sender_institution=options["sender"],
                                          profile=options["profile"])  # fmt: skip
        if batch.state == services.BatchState.DUPLICATE:
            self.stdout.write(batch.message)
            return
        if batch.state != services.BatchState.STAGED:
            run = jobs.run_job(STAGE, f"取込 {batch.pk} の確認", {"batch_id": batch.pk}, actor,
                               stream=sys.stderr)  # fmt: skip
            batch = services.batch_of(batch.pk)
            if run.status == jobs.JobRun.Status.FAILED:
                raise CommandError(run.message or "確認できませんでした")
        self.stdout.write(f"取込 {batch.pk}: {services.stage_summary(batch)}")
        if batch.message:
            self.stdout.write(batch.message)
        if options["errors"] and services.error_count(batch):
            with open(options["errors"], "wb") as out:
                for chunk in services.error_file_chunks(
                    audit.Actor.system(actor), batch, options["encoding"]
                ):
                    out.write(chunk)
            self.stdout.write(f"エラーファイル: {options['errors']}")
        if not options["commit"]:
            return
        mode = services.CommitMode.VALID_ONLY if options["valid_only"] else services.CommitMode.ALL
        run = jobs.run_job(COMMIT_JOB, f"取込 {batch.pk} の確定", {"batch_id": batch.pk,
                           "mode": mode}, actor, stream=sys.stderr)  # fmt: skip
        if run.status == jobs.JobRun.Status.FAILED:
            raise CommandError(run.message or "確定できませんでした")
        self.stdout.write(run.message)
