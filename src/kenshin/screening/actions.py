"""Every change staff make to a roster: 受診不要 and overrides, each with its audit event in the
same transaction (DESIGN.md: one action per state change).

Why the roster entry is updated here and not only at the next build: staff mark someone 受診不要
because an invitation is about to go out; the invitation list must drop them at once. The roster
build copies the same values again on every rebuild, so both paths agree.

The audit events name the resident (the subject) and the codes (fiscal year, programme or
method, reason code, the new decision) — never the note, which is free text and may hold what
the person said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from kenshin.core import audit, clock
from kenshin.core.purposes import Purpose
from kenshin.core.text import normalize_digits
from kenshin.programs import services as programs
from kenshin.programs.rules import OUT_OF_POPULATION, OVERRIDE_REASON
from kenshin.residents import services as residents
from kenshin.screening import lists
from kenshin.screening.build import lock_year
from kenshin.screening.models import Exclusion, ExclusionReason, RosterEntry
from kenshin.screening.permissions import EXCLUDE, OVERRIDE

NOTE_MAX = 200


class RosterActionError(ValueError):
    """The change was refused; the message (Japanese) says why and what to do."""


@dataclass(frozen=True)
class ExclusionInfo:
    """One 受診不要 declaration, as the pages and explain() show it."""

    fiscal_year: int
    programme: str
    atena_no: str
    reason: str
    reason_label: str
    note: str
    recorded_by: str
    recorded_at: datetime


def exclusion_info(row: Exclusion) -> ExclusionInfo:
    return ExclusionInfo(
        fiscal_year=row.fiscal_year,
        programme=row.programme,
        atena_no=row.atena_no,
        reason=row.reason,
        reason_label=row.get_reason_display(),
        note=row.note,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
    )


def _atena(atena_no: str) -> str:
    value = normalize_digits(atena_no or "").strip()
    if not value:
        raise RosterActionError("宛名番号を入力してください")
    return value


def _catalogue(fiscal_year: int):
    try:
        return programs.catalogue(fiscal_year)
    except programs.CatalogueMissing as exc:
        raise RosterActionError(str(exc)) from None


def _programme(fiscal_year: int, programme: str) -> str:
    catalogue = _catalogue(fiscal_year)
    try:
        return catalogue.programme(programme).name
    except KeyError:
        raise RosterActionError(
            f"検診事業 {programme!r} は{fiscal_year}年度の事業定義にありません"
        ) from None


def _note(note: str, *, required: bool) -> str:
    text = " ".join((note or "").split())
    if required and not text:
        raise RosterActionError("理由（備考）を入力してください。判断の根拠として記録されます")
    if len(text) > NOTE_MAX:
        raise RosterActionError(f"理由（備考）は{NOTE_MAX}文字以内で入力してください")
    return text


def _actor_name(actor: Any) -> str:
    return audit.actor_of(actor).username[:150]


def _programme_entries(fiscal_year: int, programme: str, atena_no: str):
    """A person's roster rows of one programme, found through the roster's key."""
    methods = [m.code for m in _catalogue(fiscal_year).programme(programme).methods]
    return RosterEntry.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE,
        fiscal_year=fiscal_year,
        method__in=methods,
        atena_no=atena_no,
    )


def set_exclusion(
    actor: Any,
    fiscal_year: int,
    programme: str,
    atena_no: str,
    reason: str,
    note: str = "",
    *,
    purpose: str = Purpose.ELIGIBILITY,
) -> ExclusionInfo:
    """Mark a person 受診不要 for a programme and fiscal year (or change the reason).

    The person stays in the roster (counted in the target population) and leaves the
    invitation list: the programme's roster entries carry the reason from now on.
    """
    atena_no = _atena(atena_no)
    _programme(fiscal_year, programme)
    if reason not in ExclusionReason.values:
        raise RosterActionError("受診不要の理由を選んでください")
    note = _note(note, required=reason == ExclusionReason.OTHER)
    if residents.get_resident(atena_no) is None:
        raise RosterActionError("この宛名番号は住民記録にありません")
    mc = settings.MUNICIPALITY_CODE
    with transaction.atomic():
        lock_year(fiscal_year)
        row, created = Exclusion.objects.select_for_update().get_or_create(
            municipality_code=mc,
            fiscal_year=fiscal_year,
            programme=programme,
            atena_no=atena_no,
            defaults={
                "reason": reason,
                "note": note,
                "recorded_by": _actor_name(actor),
                "recorded_at": clock.now(),
            },
        )
        previous = "" if created else row.reason
        if not created:
            row.reason, row.note = reason, note
            row.recorded_by, row.recorded_at = _actor_name(actor), clock.now()
            row.save(update_fields=["reason", "note", "recorded_by", "recorded_at"])
        mine = _programme_entries(fiscal_year, programme, atena_no)
        _count_exclusions(fiscal_year, mine, excluded=True)
        entries = mine.update(exclusion=reason)
        audit.record(
            audit.Event.CREATE if created else audit.Event.UPDATE,
            actor,
            atena_no,
            purpose,
            function=EXCLUDE,
            fiscal_year=fiscal_year,
            programme=programme,
            reason=reason,
            previous=previous,
            roster_entries=entries,
        )
    return exclusion_info(row)


def remove_exclusion(
    actor: Any,
    fiscal_year: int,
    programme: str,
    atena_no: str,
    note: str = "",
    *,
    purpose: str = Purpose.ELIGIBILITY,
) -> bool:
    """Withdraw a 受診不要 declaration: the person is invited again. False if there was none."""
    atena_no = _atena(atena_no)
    _programme(fiscal_year, programme)
    _note(note, required=False)
    mc = settings.MUNICIPALITY_CODE
    with transaction.atomic():
        lock_year(fiscal_year)
        row = (
            Exclusion.objects.select_for_update()
            .filter(
                municipality_code=mc,
                fiscal_year=fiscal_year,
                programme=programme,
                atena_no=atena_no,
            )
            .first()
        )
        if row is None:
            return False
        previous = row.reason
        row.delete()
        mine = _programme_entries(fiscal_year, programme, atena_no)
        _count_exclusions(fiscal_year, mine, excluded=False)
        entries = mine.update(exclusion="")
        audit.record(
            audit.Event.DELETE,
            actor,
            atena_no,
            purpose,
            function=EXCLUDE,
            fiscal_year=fiscal_year,
            programme=programme,
            previous=previous,
            roster_entries=entries,
        )
    return True


def _entry(fiscal_year: int, method: str, atena_no: str) -> RosterEntry:
    catalogue = _catalogue(fiscal_year)
    found = catalogue.methods_by_code.get(method)
    if found is None:
        raise RosterActionError(f"検査方法 {method!r} は{fiscal_year}年度の事業定義にありません")
    if not found.rostered:
        raise RosterActionError(
            f"{found.name}は対象者名簿を作らない検査です（同時に実施する検診の判定に従います）"
        )
    entry = (
        RosterEntry.objects.select_for_update()
        .filter(
            municipality_code=settings.MUNICIPALITY_CODE,
            fiscal_year=fiscal_year,
            method=method,
            atena_no=atena_no,
        )
        .first()
    )
    if entry is None:
        raise RosterActionError(
            f"この方は{fiscal_year}年度の{found.name}の対象者名簿にありません"
            "（対象者抽出の後に判断を変更できます。性別・年齢で対象外の方は名簿に載りません）"
        )
    return entry


def _count_exclusions(fiscal_year: int, entries, *, excluded: bool) -> None:
    """Adjust the stored table for the entries whose 受診不要 is about to change (before the
    update: the rows still show the old value). Only rows in the population count there."""
    for method, sex, age, computed_reason, exclusion in entries.values_list(
        "method", "sex", "age", "computed_reason", "exclusion"
    ):
        if computed_reason not in OUT_OF_POPULATION and bool(exclusion) != excluded:
            lists.adjust_count(fiscal_year, method, sex, age, excluded=1 if excluded else -1)


def _set_override(entry: RosterEntry, eligible: bool | None, note: str, by: str) -> None:
    """Set (or, with None, withdraw) a staff decision and adjust the entry's table cell."""
    was_eligible = entry.eligible
    entry.override_eligible = eligible
    entry.override_note = note
    entry.override_by = by
    entry.override_at = clock.now() if eligible is not None else None
    entry.eligible = entry.computed_eligible if eligible is None else eligible
    entry.reason = entry.computed_reason if eligible is None else OVERRIDE_REASON
    entry.save(
        update_fields=[
            "override_eligible", "override_note", "override_by", "override_at",
            "eligible", "reason",
        ]
    )  # fmt: skip
    if entry.eligible != was_eligible:
        lists.adjust_count(
            entry.fiscal_year, entry.method, entry.sex, entry.age,
            eligible=1 if entry.eligible else -1,
        )  # fmt: skip


def override(
    actor: Any,
    fiscal_year: int,
    method: str,
    atena_no: str,
    eligible: bool,
    note: str,
    *,
    purpose: str = Purpose.ELIGIBILITY,
) -> RosterEntry:
    """Staff decide eligibility themselves (with the reason); rebuilds keep the decision."""
    atena_no = _atena(atena_no)
    note = _note(note, required=True)
    eligible = bool(eligible)
    with transaction.atomic():
        lock_year(fiscal_year)
        entry = _entry(fiscal_year, method, atena_no)
        before = (entry.eligible, entry.reason)
        _set_override(entry, eligible, note, _actor_name(actor))
        audit.record(
            audit.Event.UPDATE,
            actor,
            atena_no,
            purpose,
            function=OVERRIDE,
            fiscal_year=fiscal_year,
            method=method,
            eligible=eligible,
            computed_eligible=entry.computed_eligible,
            computed_reason=entry.computed_reason,
            previous_eligible=before[0],
            previous_reason=before[1],
        )
    return entry


def clear_override(
    actor: Any,
    fiscal_year: int,
    method: str,
    atena_no: str,
    note: str = "",
    *,
    purpose: str = Purpose.ELIGIBILITY,
) -> RosterEntry:
    """Withdraw a staff decision: the rules' decision counts again."""
    atena_no = _atena(atena_no)
    _note(note, required=False)
    with transaction.atomic():
        lock_year(fiscal_year)
        entry = _entry(fiscal_year, method, atena_no)
        if entry.override_eligible is None:
            raise RosterActionError("この方の判定は職員の判断で変更されていません")
        previous = entry.override_eligible
        _set_override(entry, None, "", "")
        audit.record(
            audit.Event.UPDATE,
            actor,
            atena_no,
            purpose,
            function=OVERRIDE,
            fiscal_year=fiscal_year,
            method=method,
            cleared=True,
            previous_eligible=previous,
            eligible=entry.eligible,
            reason=entry.reason,
        )
    return entry
