"""Every change to the stored catalogue: a new version, with its audit event, in one transaction."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from kenshin.core import audit, clock
from kenshin.core.wareki import to_wareki
from kenshin.programs.catalogue import Catalogue, CatalogueError, adjusted, parse
from kenshin.programs.models import CatalogueVersion

STALE = (
    "{fy}年度の定義は、開いている間に別の変更（第{version}版）が保存されました。"
    "最新の定義を開き直して、もう一度変更してください"
)

CONFLICT = "{fy}年度の定義に同時に別の変更が保存されました。開き直して、もう一度変更してください"


def save_version(
    actor: Any,
    document: dict[str, Any],
    *,
    source: str,
    note: str = "",
    based_on: int | None = None,
) -> tuple[CatalogueVersion, Catalogue]:
    """Validate ``document`` and store it as the next version of its fiscal year.

    ``based_on`` is the version the editor started from: if another version was saved in the
    meantime, the save is refused (CatalogueError) instead of silently undoing that change.
    """
    catalogue = parse(document)
    mc = settings.MUNICIPALITY_CODE
    if catalogue.municipality_code != mc:
        raise CatalogueError(
            f"municipality_code: この定義は団体コード {catalogue.municipality_code} のものです"
            f"（このシステムは {mc}）"
        )
    try:
        with transaction.atomic():
            mine = CatalogueVersion.objects.select_for_update().filter(
                municipality_code=mc, fiscal_year=catalogue.fiscal_year
            )
            last = mine.aggregate(v=Max("version"))["v"] or 0
            if based_on is not None and last != based_on:
                raise CatalogueError(STALE.format(fy=catalogue.fiscal_year, version=last))
            row = CatalogueVersion.objects.create(
                municipality_code=mc,
                fiscal_year=catalogue.fiscal_year,
                version=last + 1,
                document=document,
                source=source[:200],
                note=note[:500],
                created_by=audit.actor_of(actor).username,
                created_at=clock.now(),
            )
            audit.record(
                audit.Event.CREATE,  # a new version of the year's catalogue
                actor,
                audit.Subject("catalogue", f"{catalogue.fiscal_year}:{row.version}"),
                function="programs.edit",
                fiscal_year=catalogue.fiscal_year,
                version=row.version,
                source=row.source,
            )
    except IntegrityError:
        # Two saves of the same year at once: the unique version number lets one through.
        raise CatalogueError(CONFLICT.format(fy=catalogue.fiscal_year)) from None
    return row, catalogue


def copy_forward(actor: Any, document: dict[str, Any], *, note: str = "") -> Catalogue:
    """Store a copy of a year's catalogue as the first version of the next fiscal year."""
    new = copy.deepcopy(document)
    from_year = int(new["fiscal_year"])
    new["fiscal_year"] = from_year + 1
    new["title"] = next_year_title(str(new.get("title", "")), from_year)
    if CatalogueVersion.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=from_year + 1
    ).exists():
        raise CatalogueError(f"{from_year + 1}年度の定義はすでにあります。画面で調整してください")
    _row, catalogue = save_version(actor, new, source=f"copy:{from_year}", note=note, based_on=0)
    return catalogue


def _era_year(fiscal_year: int) -> str:
    """令和7年度 for 2025: the 和暦 name of a fiscal year as titles write it."""
    return to_wareki(date(fiscal_year, 4, 1)).split("年")[0] + "年度"


def next_year_title(title: str, from_year: int) -> str:
    """The copied year's title: both ``2025`` and ``令和7年度`` move on by one year."""
    title = title.replace(f"{from_year}", f"{from_year + 1}")
    return title.replace(_era_year(from_year), _era_year(from_year + 1))


def adjust_method(
    actor: Any,
    document: dict[str, Any],
    method_code: str,
    values: dict[str, Any],
    *,
    note: str,
    based_on: int,
) -> tuple[CatalogueVersion, Catalogue]:
    """Store the year's next version with one method adjusted (never an edit in place).

    ``document`` is version ``based_on`` as the editor saw it; the new document is validated
    as a whole (CatalogueError names the place) and refused if nothing changed or if another
    version was saved meanwhile.
    """
    if not note.strip():
        raise CatalogueError("変更理由を書いてください")
    new, _catalogue = adjusted(document, method_code, values)
    return save_version(actor, new, source=f"edit:{method_code}", note=note.strip(),
                        based_on=based_on)  # fmt: skip
