"""Public face of the programme catalogue: other apps read a year's rules only through here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings

from kenshin.programs import actions
from kenshin.programs.catalogue import (
    Catalogue,
    CatalogueError,
    Method,
    Programme,
    load_file,
    parse,
    shipped_files,
)
from kenshin.programs.models import CatalogueVersion

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CatalogueMissing",
    "Method",
    "Programme",
    "catalogue",
    "catalogue_version",
    "fiscal_years",
    "load_shipped",
]


class CatalogueMissing(LookupError):
    """No catalogue is stored for the fiscal year (load one with `kenshin programs load`)."""


def _latest(fiscal_year: int) -> CatalogueVersion | None:
    return (
        CatalogueVersion.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year
        )
        .order_by("-version")
        .first()
    )


@lru_cache(maxsize=32)
def _parsed(pk: int) -> Catalogue:
    return parse(CatalogueVersion.objects.get(pk=pk).document)


def catalogue_version(fiscal_year: int) -> tuple[int, Catalogue]:
    """The latest stored version of a fiscal year's catalogue and its number."""
    row = _latest(fiscal_year)
    if row is None:
        raise CatalogueMissing(
            f"{fiscal_year}年度の検診事業の定義がありません（kenshin programs load で取り込みます）"
        )
    return row.version, _parsed(row.pk)


def catalogue(fiscal_year: int) -> Catalogue:
    """The rules in force for a fiscal year (its latest version)."""
    return catalogue_version(fiscal_year)[1]


def fiscal_years() -> list[int]:
    """Fiscal years that have a catalogue, newest first."""
    return sorted(
        set(
            CatalogueVersion.objects.filter(
                municipality_code=settings.MUNICIPALITY_CODE
            ).values_list("fiscal_year", flat=True)
        ),
        reverse=True,
    )


def load_shipped(actor: Any = None) -> list[tuple[int, str]]:
    """Store each shipped default catalogue whose fiscal year has none yet (never overwrites).

    Returns (fiscal year, what happened) per file. A city's own edits are never replaced: a
    later project release with a changed default file is shown to staff as a new file, not
    applied behind their back.
    """
    done: list[tuple[int, str]] = []
    for path in shipped_files():
        document, parsed = load_file(path)
        if parsed.municipality_code != settings.MUNICIPALITY_CODE:
            done.append((parsed.fiscal_year, "団体コードが違うため取り込みません"))
            continue
        if _latest(parsed.fiscal_year) is not None:
            done.append((parsed.fiscal_year, "定義があるため取り込みません"))
            continue
        actions.save_version(actor, document, source=f"file:{path.name}")
        done.append((parsed.fiscal_year, "取り込みました"))
    return done


def document_of(fiscal_year: int) -> dict[str, Any]:
    """The stored document of the latest version (for display, export and copy-forward)."""
    row = _latest(fiscal_year)
    if row is None:
        raise CatalogueMissing(f"{fiscal_year}年度の検診事業の定義がありません")
    return dict(row.document)
