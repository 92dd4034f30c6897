"""`kenshin jobs …` — look at and tidy the background jobs' records (core.jobs).

    kenshin jobs migrate              the jobs database's tables (the queue and the records)
    kenshin jobs list [--active] [--limit N]
    kenshin jobs abandon ID           close a run a killed worker left queued or running

The worker itself is `kenshin db_worker` (django-tasks-db; docs/operations.md).
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.timezone import localtime

from kenshin.core import jobs


class Command(BaseCommand):
    help = "バックグラウンド処理（ジョブ）の記録の一覧と整理（migrate, list, abandon）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("migrate", help="ジョブ用データベースの表を作成・更新します")
        lst = sub.add_parser("list", help="最近のジョブの一覧")
        lst.add_argument("--active", action="store_true", help="待機中・実行中だけ")
        lst.add_argument("--limit", type=int, default=20, help="表示する件数（既定 20）")
        abandon = sub.add_parser(
            "abandon", help="停止した作業プロセスが残した実行中のジョブを中断扱いにします"
        )
        abandon.add_argument("id", help="ジョブ番号（一覧の ID）")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "migrate":
            call_command("migrate", database=jobs.DB, interactive=False, verbosity=0)
            self.stdout.write("ジョブ用データベースの表を更新しました。")
        elif action == "list":
            runs = jobs.JobRun.objects.all()
            if options["active"]:
                runs = runs.filter(status__in=jobs.JobRun.ACTIVE)
            for run in runs[: max(options["limit"], 1)]:
                count = f"{run.done:,}" + (f"/{run.total:,}" if run.total is not None else "")
                created = localtime(run.created_at)
                self.stdout.write(
                    f"{run.pk}  {created:%Y-%m-%d %H:%M}  {run.get_status_display():4}  "
                    f"{run.kind}  {run.label}  {run.stage} {count}  ({run.requested_by})"
                )
        elif action == "abandon":
            run = jobs.get_run(options["id"])
            if run is None:
                raise CommandError("そのジョブ番号の記録はありません。")
            if not run.is_active:
                status = run.get_status_display()
                raise CommandError(f"このジョブはすでに終わっています（{status}）。")
            run = jobs.abandon(run.pk)
            self.stdout.write(f"中断として記録しました: {run.pk} {run.label}")
