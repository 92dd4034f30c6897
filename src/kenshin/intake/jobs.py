"""Background jobs of the intake: checking a file (stage) and committing it, with progress.

The screen starts them (queued for ``kenshin db_worker``; a progress bar while they run) and
``kenshin intake import`` runs the same jobs inline with a progress line, so both leave the
same record. Both kinds are ``unique`` per batch: a double click runs once.
"""

from __future__ import annotations

from typing import Any

from kenshin.core import audit, jobs
from kenshin.intake import actions
from kenshin.intake.models import BatchState
from kenshin.intake.permissions import COMMIT, IMPORT

STAGE = "intake.stage"
COMMIT_JOB = "intake.commit"

STAGE_LABELS = {
    "rows": "行数",
    "new": "新規",
    "updated": "更新",
    "unchanged": "変更なし",
    "error": "エラー",
    "quarantined": "照合保留",
    "flagged": "注意（数式のような値）",
}
COMMIT_LABELS = {"written": "登録した受診", "revised": "訂正した受診", "left": "取り込まなかった行"}


def _progress(reporter: jobs.JobReporter) -> Any:
    def progress(stage: str, done: int, total: int) -> None:
        if stage != reporter.stage_text or reporter.total != total:
            reporter.stage(stage, total)
        reporter.set(done)

    return progress


def stage_summary(batch: Any) -> str:
    c = batch.counts or {}
    return (
        f"確認が終わりました。{c.get('rows', 0):,} 行のうち 新規 {c.get('new', 0):,}、"
        f"更新 {c.get('updated', 0):,}、変更なし {c.get('unchanged', 0):,}、"
        f"エラー {c.get('error', 0):,}、照合保留 {c.get('quarantined', 0):,}。"
    )


@jobs.job(STAGE, label="検診結果ファイルの確認", function=IMPORT, unique=True,
          result_labels=STAGE_LABELS)  # fmt: skip
def stage(reporter: jobs.JobReporter, *, batch_id: int) -> dict[str, int]:
    """Read, check and match the file; a file that cannot be read fails the job with why."""
    actor = audit.Actor(None, reporter.requested_by)
    try:
        batch = actions.stage_batch(actor, batch_id, _progress(reporter))
    except actions.IntakeError as exc:
        raise jobs.JobError(str(exc)) from None
    if batch.state == BatchState.REFUSED:
        raise jobs.JobError(batch.message)
    result = {k: int(batch.counts.get(k, 0)) for k in STAGE_LABELS}
    reporter.finish(result, stage_summary(batch))
    return result


@jobs.job(COMMIT_JOB, label="検診結果の確定", function=COMMIT, unique=True,
          result_labels=COMMIT_LABELS)  # fmt: skip
def commit(reporter: jobs.JobReporter, *, batch_id: int, mode: str) -> dict[str, int]:
    """Write the batch's exams in one transaction (all or nothing)."""
    actor = audit.Actor(None, reporter.requested_by)
    try:
        counts = actions.commit_batch(actor, batch_id, mode, _progress(reporter))
    except actions.IntakeError as exc:
        raise jobs.JobError(str(exc)) from None
    result = {"written": counts.written, "revised": counts.revised, "left": counts.left}
    reporter.finish(
        result,
        f"確定しました。登録 {counts.written:,} 件、訂正 {counts.revised:,} 件、"
        f"取り込まなかった行 {counts.left:,} 行。",
    )
    return result
