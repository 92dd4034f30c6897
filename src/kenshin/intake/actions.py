"""Every change of an import batch, each with its audit event in the same transaction.

receive (upload) → stage (in a job) → resolve quarantined rows → approve (large batches, a
second person) → commit (in a job) — or discard. Audit events name the batch, never a
resident or a result: the batch's staged rows say whom the file was about, for whoever may
open the batch.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction

from kenshin.core import audit, clock
from kenshin.core.purposes import Purpose
from kenshin.intake import columnar, pipeline, rules
from kenshin.intake.layout import BY_KEY, SourceRow
from kenshin.intake.models import (
    BatchState,
    ColumnProfile,
    ImportBatch,
    RowStatus,
    StagedFrame,
    StagedRow,
)
from kenshin.intake.permissions import COMMIT, IMPORT, PROFILES, RESOLVE
from kenshin.intake.readers import FileRefused, Profile
from kenshin.residents import services as residents
from kenshin.screening import services as screening

IntakeError = pipeline.IntakeError
_OPEN = (BatchState.UPLOADED, BatchState.STAGING, BatchState.STAGED)


def _subject(batch: ImportBatch) -> audit.Subject:
    return audit.Subject("intake_batch", str(batch.pk))


def _name(actor: Any) -> str:
    return audit.actor_of(actor).username


def _safe_name(name: str) -> str:
    """The name shown to staff: the last path part only, no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:255] or "無題"


def file_path(batch: ImportBatch) -> Path:
    """Where the batch's file is kept (a random name under INTAKE_DIR; never the user's)."""
    return Path(settings.INTAKE_DIR) / batch.stored_name


def receive_file(
    actor: Any,
    data: IO[bytes],
    file_name: str,
    *,
    fiscal_year: int,
    sender_institution: str = "",
    profile: str = "",
) -> ImportBatch:
    """Keep an uploaded file and open its batch — or return the batch it already has.

    The same bytes committed before make a batch in state 取込済み that changes nothing; the
    same bytes still in progress return that batch (a double upload is one batch).
    """
    if (
        profile
        and not ColumnProfile.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, name=profile
        ).exists()
    ):
        raise IntakeError(f"列の対応表「{profile}」はありません")
    folder = Path(settings.INTAKE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16)
    target = folder / stored
    digest, size = hashlib.sha256(), 0
    with target.open("xb") as out:
        while chunk := data.read(1 << 20):
            size += len(chunk)
            if size > settings.INTAKE_MAX_BYTES:
                out.close()
                target.unlink()
                raise IntakeError(
                    f"ファイルが大きすぎます（上限 {settings.INTAKE_MAX_BYTES:,} バイト）。"
                    "分けて送ってください"
                )
            digest.update(chunk)
            out.write(chunk)
    sha = digest.hexdigest()
    mc = settings.MUNICIPALITY_CODE
    with transaction.atomic():
        earlier = ImportBatch.objects.filter(municipality_code=mc, sha256=sha)
        running = earlier.filter(state__in=_OPEN).first()
        if running is not None:
            target.unlink()
            return running
        done = earlier.filter(state=BatchState.COMMITTED).first()
        batch = ImportBatch.objects.create(
            municipality_code=mc, fiscal_year=fiscal_year,
            sender_institution=sender_institution, file_name=_safe_name(file_name),
            stored_name=stored, sha256=sha, size=size, kind="", profile=profile,
            uploaded_by=_name(actor), uploaded_at=clock.now(),
        )  # fmt: skip
        if done is not None:
            batch.state = BatchState.DUPLICATE
            batch.message = (
                f"同じ内容のファイルは取込 {done.pk}（{done.file_name}）で確定済みです。"
                "何も変えません"
            )
            batch.save(update_fields=["state", "message"])
            target.unlink()
        audit.record(
            audit.Event.CREATE, actor, _subject(batch), function=IMPORT,
            fiscal_year=fiscal_year, size=size, duplicate=done is not None,
        )  # fmt: skip
    return batch


def profile_of(name: str) -> Profile | None:
    if not name:
        return None
    row = ColumnProfile.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, name=name
    ).first()
    if row is None:
        raise IntakeError(f"列の対応表「{name}」はありません")
    return Profile(row.name, row.mapping, row.values)


def stage_batch(
    actor: Any, batch_id: int, progress: pipeline.Progress | None = None
) -> ImportBatch:
    """Read, check and match the batch's file (the 確認 step). A file that cannot be read
    leaves the batch refused with the reason, and no staged rows."""
    batch = batch_of(batch_id)
    if batch.state not in (BatchState.UPLOADED, BatchState.STAGED, BatchState.REFUSED):
        raise IntakeError(f"この取込は確認できません（状態: {batch.get_state_display()}）")

    def recorded(staged: ImportBatch) -> None:  # inside the staging's transaction
        audit.record(
            audit.Event.IMPORT, actor, _subject(staged), Purpose.RESULT_ENTRY,
            function=IMPORT, step="stage", **staged.counts,
        )  # fmt: skip

    try:
        pipeline.stage(batch, file_path(batch), profile_of(batch.profile), progress,
                       on_staged=recorded)  # fmt: skip
    except FileRefused as exc:
        with transaction.atomic():
            batch.state = BatchState.REFUSED
            batch.message = str(exc)
            batch.counts = {}
            batch.save(update_fields=["state", "message", "counts"])
            audit.record(
                audit.Event.IMPORT, actor, _subject(batch), function=IMPORT,
                result=audit.Result.FAILURE, step="stage",
            )  # fmt: skip
        return batch
    return batch


def batch_of(batch_id: int) -> ImportBatch:
    try:
        return ImportBatch.objects.get(pk=batch_id, municipality_code=settings.MUNICIPALITY_CODE)
    except ImportBatch.DoesNotExist:
        raise IntakeError("この取込はありません") from None


def approve(actor: Any, batch_id: int) -> ImportBatch:
    """A second person approves a large batch for commit (not the one who uploaded it)."""
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(
            pk=batch_id, municipality_code=settings.MUNICIPALITY_CODE
        )
        if batch.state != BatchState.STAGED:
            raise IntakeError("確認済みの取込だけ承認できます")
        if _name(actor) == batch.uploaded_by:
            raise IntakeError(
                "ファイルを受け付けた職員は承認できません。別の職員が承認してください"
            )
        batch.approved_by, batch.approved_at = _name(actor), clock.now()
        batch.save(update_fields=["approved_by", "approved_at"])
        audit.record(audit.Event.UPDATE, actor, _subject(batch), function=COMMIT,
                     step="approve")  # fmt: skip
    return batch


def commit_batch(
    actor: Any, batch_id: int, mode: str, progress: pipeline.Progress | None = None
) -> pipeline.CommitCounts:
    """Commit the batch (all or nothing, its audit event inside) and then remove its file."""

    def recorded(batch: ImportBatch, counts: pipeline.CommitCounts) -> None:
        audit.record(
            audit.Event.IMPORT, actor, _subject(batch), Purpose.RESULT_ENTRY,
            function=COMMIT, step="commit", mode=mode, written=counts.written,
            revised=counts.revised,
        )  # fmt: skip

    counts = pipeline.commit(batch_id, actor, mode, progress, on_committed=recorded)
    file_path(batch_of(batch_id)).unlink(missing_ok=True)
    return counts


def discard(actor: Any, batch_id: int) -> ImportBatch:
    """Give up a batch that is not committed: its staged rows and its file go."""
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(
            pk=batch_id, municipality_code=settings.MUNICIPALITY_CODE
        )
        if batch.state == BatchState.COMMITTED:
            raise IntakeError("確定済みの取込は取り消せません")
        StagedRow.objects.filter(batch=batch).delete()
        StagedFrame.objects.filter(batch=batch).delete()
        batch.state = BatchState.DISCARDED
        batch.save(update_fields=["state"])
        audit.record(audit.Event.DELETE, actor, _subject(batch), function=IMPORT)
    file_path(batch).unlink(missing_ok=True)
    return batch


def resolve_row(
    actor: Any,
    row_id: int,
    *,
    atena_no: str | None,
    reason: str,
    purpose: str = Purpose.RESULT_ENTRY,
) -> StagedRow:
    """Staff decide a quarantined row: the person it is about (``atena_no``), or not to take
    it in (None). Either way with a reason. The row is checked again for the chosen person;
    the decision is recorded on the resident it names."""
    reason = reason.strip()
    if not reason:
        raise IntakeError("判断の理由を入力してください")
    with transaction.atomic():
        row = (
            StagedRow.objects.select_for_update()
            .select_related("batch")
            .get(pk=row_id, batch__municipality_code=settings.MUNICIPALITY_CODE)
        )
        batch = row.batch
        if batch.state != BatchState.STAGED or row.status != RowStatus.QUARANTINED:
            raise IntakeError("この行は照合保留ではありません")
        now = clock.now()
        if atena_no is None:
            row.status = RowStatus.REJECTED
        else:
            row.status, row.atena_no, fact = _accepted(row, batch, atena_no)
            for name, value in zip(pipeline.EXAM_FIELDS, pipeline.exam_values(fact), strict=True):
                setattr(row, name, value)
        row.resolved_by, row.resolved_at = _name(actor), now
        row.problems = (row.problems or []) + [
            {"column": "", "value": "", "message": f"職員の判断: {reason[:200]}"}
        ]
        row.save()
        counts = dict(batch.counts)
        counts["quarantined"] = counts.get("quarantined", 0) - 1
        counts[row.status] = counts.get(row.status, 0) + 1
        batch.counts = counts
        # What was approved has changed: a large batch is approved again before its commit.
        batch.approved_by, batch.approved_at = "", None
        batch.save(update_fields=["counts", "approved_by", "approved_at"])
        audit.record(
            audit.Event.UPDATE, actor, atena_no or _subject(batch), purpose,
            function=RESOLVE, batch=batch.pk, row=row.row_no, accepted=atena_no is not None,
        )  # fmt: skip
    return row


def _accepted(row: StagedRow, batch: ImportBatch, atena_no: str) -> tuple[str, str, Any]:
    """The row checked again for the person staff chose: its values, the method's sex and age
    band and residence on the exam day (rules.eligibility_reasons — staff may overrule a
    mistyped birth date, not these), and not the same exam twice."""
    person = residents.identities_of([atena_no]).get(atena_no)
    if person is None:
        raise IntakeError("この宛名番号の住民記録がありません")
    cells = (row.fact or {}).get("cells") or {}
    ctx = pipeline.build_context(batch.fiscal_year)
    checked = rules.check_row(SourceRow(row.row_no, cells, row.raw or []), ctx)
    if checked.problems or checked.method is None or checked.exam_date is None:
        raise IntakeError("この行にはエラーがあり、取り込めません")
    refused = rules.eligibility_reasons(checked, person)
    if refused:
        raise IntakeError(refused[0].message + "。「取り込まない」を選んでください")
    key = (atena_no, checked.method.code, checked.exam_date, checked.hpv_follow_up)
    on_record = {
        (e.atena_no, e.method, e.exam_date, e.hpv_follow_up)
        for e in screening.exams_on_record([atena_no], batch.fiscal_year)
    }
    in_file = (
        StagedRow.objects.filter(
            batch=batch, atena_no=atena_no, method=checked.method.code,
            exam_date=checked.exam_date, hpv_follow_up=checked.hpv_follow_up,
            status__in=[RowStatus.NEW, RowStatus.UPDATED],
        )
        .exclude(pk=row.pk)
        .exists()
    ) or columnar.in_frame(batch, key)  # fmt: skip
    if key in on_record or in_file:
        raise IntakeError(
            "この人のこの受診はすでに記録されているか、同じファイルの別の行にあります"
        )
    return RowStatus.NEW, atena_no, rules.fact_of(checked, atena_no, person.birth_date)


def save_profile(
    actor: Any, name: str, mapping: dict[str, str], *, description: str = "",
    values: dict[str, dict[str, str]] | None = None,
) -> ColumnProfile:  # fmt: skip
    """Create or replace a named column profile (their header → our column key)."""
    name = name.strip()
    if not name or len(name) > 60:
        raise IntakeError("対応表の名前は 1〜60 文字です")
    unknown = sorted({k for k in mapping.values() if k not in BY_KEY})
    if unknown:
        raise IntakeError("知らない項目があります: " + "、".join(unknown))
    targets = list(mapping.values())
    doubled = sorted({k for k in targets if targets.count(k) > 1})
    if doubled:
        raise IntakeError("同じ項目に二つの見出しが割り当てられています: " + "、".join(doubled))
    values = values or {}
    unknown = sorted(k for k in values if k not in BY_KEY)
    if unknown:
        raise IntakeError("値の読み替えに知らない項目があります: " + "、".join(unknown))
    keys = ("voucher_no", "atena_no", "birth_date", "name_kana")
    if any(k in values for k in keys):
        # The hard keys and what confirms them are read as the clinic wrote them: a rewrite
        # could make a row name another person.
        raise IntakeError("受診券番号・宛名番号・生年月日・氏名カナの値は読み替えられません")
    if any("" in (rewrites or {}) for rewrites in values.values()):
        raise IntakeError("空欄を別の値に読み替えることはできません（空欄は空欄として確かめます）")
    with transaction.atomic():
        profile, _ = ColumnProfile.objects.update_or_create(
            municipality_code=settings.MUNICIPALITY_CODE, name=name,
            defaults={"description": description[:200], "mapping": mapping,
                      "values": values, "updated_by": _name(actor),
                      "updated_at": clock.now()},
        )  # fmt: skip
        audit.record(audit.Event.UPDATE, actor, audit.Subject("intake_profile", name),
                     function=PROFILES)  # fmt: skip
    return profile


__all__ = [
    "IntakeError",
    "approve",
    "commit_batch",
    "discard",
    "receive_file",
    "resolve_row",
    "save_profile",
    "stage_batch",
]
