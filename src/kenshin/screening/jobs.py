"""Background jobs of the screening app: the roster build (対象者抽出) with its progress.

The screen starts it (queued for ``kenshin db_worker``, a progress bar while it runs) and
``kenshin roster build`` runs the same job inline with a progress line, so both leave the same
record and a build started twice (a double click, the CLI while the screen's run is going) runs
once: the kind is ``unique`` per fiscal year and base date.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from kenshin.core import audit, jobs
from kenshin.programs import services as programs
from kenshin.screening.build import RosterBuildError, build_roster, check_base_date
from kenshin.screening.permissions import BUILD_ROSTER

ROSTER_BUILD = "screening.roster_build"

RESULT_LABELS = {
    "rows": "名簿の人数（延べ）",
    "eligible": "対象者（延べ）",
    "inserted": "新たに載った",
    "changed": "判定などが変わった",
    "unchanged": "変わらない",
    "left": "対象から外れた（転出・死亡など）",
}


def label_for(fiscal_year: int, as_of: date | None) -> str:
    base = f"（基準日 {as_of.isoformat()}）" if as_of else ""
    return f"{fiscal_year}年度 対象者抽出{base}"


def summary(report: Any) -> str:
    """The build's report in one Japanese sentence (the job's message and the CLI's last line)."""
    return (
        f"{report.fiscal_year}年度の対象者抽出が終わりました（基準日 {report.as_of.isoformat()}、"
        f"事業定義 第{report.catalogue_version}版、{report.seconds:.1f}秒）。"
        f"追加 {report.inserted:,}件、変更 {report.changed:,}件、変更なし {report.unchanged:,}件、"
        f"対象から外れた {report.left:,}件。"
    )


@jobs.job(
    ROSTER_BUILD,
    label="対象者抽出",
    function=BUILD_ROSTER,
    unique=True,
    result_labels=RESULT_LABELS,
)
def roster_build(
    reporter: jobs.JobReporter, *, fiscal_year: int, as_of: str | None = None
) -> dict[str, int]:
    """Build the fiscal year's roster; each method is one step of the progress bar."""
    try:
        programs.catalogue_version(fiscal_year)
    except programs.CatalogueMissing as exc:
        raise jobs.JobError(str(exc)) from None
    base = date.fromisoformat(as_of) if as_of else None
    if base is not None:
        try:
            check_base_date(fiscal_year, base)
        except RosterBuildError as exc:
            raise jobs.JobError(str(exc)) from None

    def progress(stage: str, done: int, total: int) -> None:
        if stage != reporter.stage_text or reporter.total != total:
            reporter.stage(stage, total)
        reporter.set(done)

    report = build_roster(
        fiscal_year,
        as_of=base,
        actor=audit.Actor(None, reporter.requested_by),
        progress=progress,
    )
    result = {
        "build_id": report.build_id,
        "rows": sum(m["rows"] for m in report.per_method.values()),
        "eligible": sum(m["eligible"] for m in report.per_method.values()),
        "inserted": report.inserted,
        "changed": report.changed,
        "unchanged": report.unchanged,
        "left": report.left,
    }
    reporter.finish(result, summary(report))
    return result
