"""Every change to the stored catalogue: a new version, with its audit event, in one transaction."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from kenshin.core import audit, clock
from kenshin.programs.catalogue import Catalogue, CatalogueError, parse
from kenshin.programs.models import CatalogueVersion


def save_version(
    actor: Any, document: dict[str, Any], *, source: str, note: str = ""
) -> tuple[CatalogueVersion, Catalogue]:
    """Validate ``document`` and store it as the next version of its fiscal year."""
    catalogue = parse(document)
    mc = settings.MUNICIPALITY_CODE
    if catalogue.municipality_code != mc:
        raise CatalogueError(
            f"municipality_code: この定義は団体コード {catalogue.municipality_code} のものです"
            f"（このシステムは {mc}）"
        )
    with transaction.atomic():
        mine = CatalogueVersion.objects.select_for_update().filter(
            municipality_code=mc, fiscal_year=catalogue.fiscal_year
        )
        last = mine.aggregate(v=Max("version"))["v"] or 0
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
            "programs.catalogue_saved",
            actor,
            audit.Subject("catalogue", f"{catalogue.fiscal_year}:{row.version}"),
            function="programs.edit",
            fiscal_year=catalogue.fiscal_year,
            version=row.version,
            source=row.source,
        )
    return row, catalogue


def copy_forward(actor: Any, document: dict[str, Any], *, note: str = "") -> Catalogue:
    """Store a copy of a year's catalogue as the first version of the next fiscal year."""
    new = copy.deepcopy(document)
    from_year = int(new["fiscal_year"])
    new["fiscal_year"] = from_year + 1
    title = str(new.get("title", ""))
    new["title"] = title.replace(f"{from_year}", f"{from_year + 1}") if title else title
    if CatalogueVersion.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=from_year + 1
    ).exists():
        raise CatalogueError(f"{from_year + 1}年度の定義はすでにあります。画面で調整してください")
    _row, catalogue = save_version(actor, new, source=f"copy:{from_year}", note=note)
    return catalogue
