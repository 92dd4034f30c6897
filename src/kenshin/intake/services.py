"""Public face of the intake: what the screens, the CLI and other apps call.

Reads that show people (a quarantined row's candidates) record who looked and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator

from kenshin.core import audit, jobs
from kenshin.core.purposes import Purpose
from kenshin.core.wareki import parse_date
from kenshin.intake import actions, columnar, fhir, rules
from kenshin.intake.error_file import error_count, error_file
from kenshin.intake.jobs import COMMIT_JOB, STAGE, stage_summary
from kenshin.intake.layout import BY_KEY
from kenshin.intake.models import (
    BatchState,
    ColumnProfile,
    CommitMode,
    ImportBatch,
    RowStatus,
    StagedRow,
)
from kenshin.intake.permissions import RESOLVE
from kenshin.intake.pipeline import needs_approval, staged_rows
from kenshin.residents import services as residents
from kenshin.screening import services as screening

IntakeError = actions.IntakeError
receive_file = actions.receive_file
batch_of = actions.batch_of
approve = actions.approve
discard = actions.discard
resolve_row = actions.resolve_row
save_profile = actions.save_profile
PAGE_SIZE = 50

__all__ = [
    "COMMIT_JOB",
    "STAGE",
    "BatchState",
    "CommitMode",
    "IntakeError",
    "RowStatus",
    "approve",
    "batch_of",
    "discard",
    "error_count",
    "error_file",
    "fhir_export",
    "needs_approval",
    "preview_page",
    "profile_rows",
    "profiles",
    "receive_file",
    "recent_batches",
    "resolve_row",
    "rows_page",
    "save_profile",
    "stage_summary",
    "staged_rows",
    "start_commit",
    "start_stage",
]


def recent_batches(limit: int = 30) -> list[ImportBatch]:
    return list(
        ImportBatch.objects.filter(municipality_code=settings.MUNICIPALITY_CODE).order_by(
            "-uploaded_at"
        )[:limit]
    )


def profiles() -> list[ColumnProfile]:
    return list(
        ColumnProfile.objects.filter(municipality_code=settings.MUNICIPALITY_CODE).order_by("name")
    )


@dataclass(frozen=True)
class ProfileRow:
    name: str
    description: str
    columns: list[tuple[str, str]]  # (their header, our header)
    values: list[tuple[str, str]]  # (our header, "a→b, c→d")
    updated: str


def profile_rows() -> list[ProfileRow]:
    """The saved profiles as staff read them (our Japanese headers, not keys)."""
    out = []
    for p in profiles():
        header = {k: BY_KEY[k].header for k in BY_KEY}
        out.append(ProfileRow(
            p.name, p.description,
            [(theirs, header.get(ours, ours)) for theirs, ours in p.mapping.items()],
            [(header.get(k, k), "、".join(f"{a}→{b}" for a, b in v.items()))
             for k, v in (p.values or {}).items()],
            f"{p.updated_by} {p.updated_at:%Y-%m-%d %H:%M}",
        ))  # fmt: skip
    return out


def start_stage(batch: ImportBatch, actor: Any) -> jobs.JobRun:
    """Queue the 確認 (parse, check, match) of an uploaded batch."""
    run = jobs.start_job(STAGE, f"取込 {batch.pk} の確認",
                         {"batch_id": batch.pk}, actor)  # fmt: skip
    ImportBatch.objects.filter(pk=batch.pk).update(job_id=str(run.pk))
    return run


def start_commit(batch: ImportBatch, actor: Any, mode: str) -> jobs.JobRun:
    """Queue the commit after the checks a screen can make at once (so the user is told now)."""
    if mode not in CommitMode.values:
        raise IntakeError("確定の方法を選んでください")
    if batch.state != BatchState.STAGED:
        raise IntakeError("確認済みの取込だけ確定できます")
    if needs_approval(batch) and not batch.approved_by:
        raise IntakeError("この件数の取込は、確定の前に別の職員の承認が必要です")
    pending = batch.counts.get("error", 0) + batch.counts.get("quarantined", 0)
    if mode == CommitMode.ALL and pending:
        raise IntakeError(f"エラーまたは照合保留の行が {pending:,} 行あります。"
                          "「正しい行だけ」を選ぶか、直してから確定してください")  # fmt: skip
    run = jobs.start_job(COMMIT_JOB, f"取込 {batch.pk} の確定",
                         {"batch_id": batch.pk, "mode": mode}, actor)  # fmt: skip
    ImportBatch.objects.filter(pk=batch.pk).update(job_id=str(run.pk))
    return run


@dataclass(frozen=True)
class RowView:
    """A staged row for the preview tables: no names, only what the clinic's file said."""

    pk: int
    row_no: int
    status: str
    status_label: str
    method: str
    problems: list[dict[str, str]]
    flags: list[dict[str, str]]
    diff: list[tuple[str, Any, Any]]


def rows_page(batch: ImportBatch, status: str, page: int) -> Page:
    """One page of the batch's rows in a status (row order). New rows include the clean rows
    staged together (StagedFrame); only the page's rows are read out of it."""
    qs = StagedRow.objects.filter(batch=batch)
    qs = qs.filter(status=status) if status != "flagged" else qs.filter(flags__isnull=False)
    qs = qs.order_by("row_no", "method").only(
        "pk", "row_no", "status", "method", "problems", "flags", "diff"
    )
    clean = columnar.staged_frame(batch) if status == RowStatus.NEW else None
    entries: Any = qs
    if clean is not None:
        entries = sorted(
            [(r.row_no, r.method, r) for r in qs]
            + [(n, m, None) for n, m in clean.select("row_no", "method").iter_rows()],
            key=lambda e: (e[0], e[1]),
        )
    paginator = Paginator(entries, PAGE_SIZE)
    result = paginator.get_page(page)
    labels = dict(RowStatus.choices)
    views = []
    for entry in result.object_list:
        r = entry[2] if isinstance(entry, tuple) else entry
        if r is None:  # a clean row: new, nothing to show but where it is
            views.append(RowView(0, entry[0], RowStatus.NEW, labels[RowStatus.NEW], entry[1],
                                 [], [], []))  # fmt: skip
            continue
        views.append(
            RowView(
                r.pk,
                r.row_no,
                r.status,
                labels[r.status],
                r.method,
                r.problems or [],
                r.flags or [],
                [(_field_label(k), v[0], v[1]) for k, v in (r.diff or {}).items()],
            )
        )
    result.object_list = views
    return result


def _field_label(name: str) -> str:
    if name == "results":
        return "結果"
    return BY_KEY[name].header if name in BY_KEY else name


@dataclass(frozen=True)
class Candidate:
    atena_no: str
    name: str
    name_kana: str
    sex: str
    birth_date: str
    status: str
    agrees: dict[str, bool]
    by_search: bool = False  # found by kana + birth date (no hard key): judge with care
    address: str = ""  # to compare with the clinic's record (a name's reading is not enough)


@dataclass(frozen=True)
class Quarantined:
    row: StagedRow
    cells: list[tuple[str, str]]  # (header, value) as the file said
    candidates: list[Candidate]


def quarantined_row(request: Any, row_id: int, purpose: str = Purpose.RESULT_ENTRY) -> Quarantined:
    """A quarantined row beside its candidates; each candidate shown is an audited view."""
    row = StagedRow.objects.select_related("batch").filter(
        pk=row_id, batch__municipality_code=settings.MUNICIPALITY_CODE
    ).first()  # fmt: skip
    if row is None:
        raise IntakeError("この行はありません")
    cells_by_key = (row.fact or {}).get("cells") or {}
    shown = ("voucher_no", "atena_no", "name_kana", "birth_date", "sex", "exam_date",
             "institution_code", "method")  # fmt: skip
    cells = [(BY_KEY[k].header, cells_by_key.get(k, "")) for k in shown]
    wanted = list(row.candidates or [])
    found_by_search: set[str] = set()
    if not wanted:
        found_by_search = _search_candidates(request, cells_by_key, purpose)
        wanted = sorted(found_by_search)
    people = residents.names_of(wanted)
    out = []

    try:
        birth_given: Any = parse_date(cells_by_key.get("birth_date", ""))
    except ValueError:
        birth_given = None

    def same_birth(value: Any) -> bool:
        return birth_given == value

    sex_given = rules.SEX.get(cells_by_key.get("sex", ""))
    for atena_no in wanted:
        p = people.get(atena_no)
        if p is None:
            continue
        audit.record(audit.Event.VIEW, request, atena_no, purpose, function=RESOLVE,
                     batch=row.batch_id, row=row.row_no)  # fmt: skip
        out.append(
            Candidate(
                atena_no,
                p.name,
                p.name_kana,
                "男" if p.sex == 1 else "女",
                p.birth_date.isoformat(),
                p.status_label,
                {"birth_date": same_birth(p.birth_date), "sex": sex_given == p.sex},
                atena_no in found_by_search,
                _address_of(atena_no),
            )
        )
    return Quarantined(row, cells, out)


def _address_of(atena_no: str) -> str:
    record = residents.get_resident(atena_no)
    if record is None:
        return ""
    return f"{record.address} {record.address_annex}".strip()


def preview_page(request: Any, batch: ImportBatch, status: str, page: int) -> Page:
    """A page of the preview, recorded: its problems quote what the file says of people."""
    result = rows_page(batch, status, page)
    if result.object_list:
        audit.record(audit.Event.VIEW, request, audit.Subject("intake_batch", str(batch.pk)),
                     Purpose.RESULT_ENTRY, function="intake.import", tab=status,
                     page=result.number, rows=len(result.object_list))  # fmt: skip
    return result


def _search_candidates(request: Any, cells: dict[str, str], purpose: str) -> set[str]:
    """For a row with no hard key: people of the same birth date whose kana starts with the
    row's family name — candidates for a person to judge, never a match (IMP-05)."""
    family = (cells.get("name_kana", "").replace(" ", "\u3000").split("\u3000") or [""])[0]
    try:
        birth = parse_date(cells.get("birth_date", ""))
    except ValueError:
        return set()
    if not family:
        return set()
    try:
        found = residents.search_residents(kana=family, birth_date=birth, limit=10)
    except residents.SearchRejected:
        return set()
    audit.record(audit.Event.SEARCH, request, audit.Subject("intake_row", "kana+birth"), purpose,
                 function=RESOLVE, hits=len(found))  # fmt: skip
    return {r.atena_no for r in found}


def error_file_chunks(request: Any, batch: ImportBatch, encoding: str) -> Iterator[bytes]:
    """The error file, its download recorded (it holds what the clinic sent about people)."""
    audit.record(audit.Event.EXPORT, request, audit.Subject("intake_batch", str(batch.pk)),
                 Purpose.RESULT_ENTRY, function="intake.import", rows=error_count(batch),
                 encoding=encoding)  # fmt: skip
    return error_file(batch, encoding)


@dataclass(frozen=True)
class FhirExport:
    bundles: list[dict[str, Any]]
    skipped: list[tuple[int, str]]  # (exam id, why the national format cannot carry it)


def fhir_export(
    request: Any, atena_no: str, fiscal_year: int | None = None,
    purpose: str = Purpose.RESULT_ENTRY,
) -> FhirExport:  # fmt: skip
    """A person's exams as national 自治体検診 FHIR Bundles (docs/formats/fhir.md); exams whose
    results the national format has no code for are listed, not guessed. Recorded as an export."""
    person = residents.names_of([atena_no]).get(atena_no)
    if person is None:
        raise IntakeError("この宛名番号の住民記録がありません")
    bundles, skipped = [], []
    for e in screening.exams_for_export(atena_no, fiscal_year):
        exam = fhir.ExportExam(
            birth_date=person.birth_date, sex=person.sex, name_kana=person.name_kana,
            exam_date=e.exam_date, institution_code=e.institution_code, setting=e.setting,
            programme=e.programme, method=e.method, results=dict(e.results),
            smoking_index=e.smoking_index, seiken_date=e.seiken_date,
            seiken_result=e.seiken_result,
        )  # fmt: skip
        try:
            bundles.append(fhir.exam_bundle(exam, bundle_id=f"kenshin-exam-{e.exam_id}"))
        except fhir.FhirExportError as exc:
            skipped.append((e.exam_id, str(exc)))
    audit.record(audit.Event.EXPORT, request, atena_no, purpose, function="intake.import",
                 format="fhir", rows=len(bundles), skipped=len(skipped))  # fmt: skip
    return FhirExport(bundles, skipped)
