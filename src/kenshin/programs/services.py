"""Public face of the programme catalogue: other apps read a year's rules only through here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from kenshin.core import clock
from kenshin.programs import actions
from kenshin.programs.catalogue import (
    EXEMPTIONS,
    Catalogue,
    CatalogueError,
    Change,
    Method,
    Programme,
    changes,
    load_file,
    parse,
    shipped_files,
    to_toml,
)
from kenshin.programs.models import CatalogueVersion
from kenshin.programs.rules import REASONS
from kenshin.programs.vocabularies import (
    MethodResults,
    ResultProblem,
    check_result,
    days_agree,
    days_problems,
    needs_seiken,
    results_of,
    seiken_of,
    seiken_result_labels,
    seiken_specs,
)

__all__ = [
    "EXEMPTIONS",
    "REASONS",
    "Catalogue",
    "CatalogueError",
    "CatalogueMissing",
    "Change",
    "FileOutcome",
    "Method",
    "MethodResults",
    "Programme",
    "ResultProblem",
    "StoredVersion",
    "VersionInfo",
    "catalogue",
    "catalogue_version",
    "changes",
    "check_result",
    "copy_forward",
    "days_agree",
    "days_problems",
    "document_of",
    "export_toml",
    "fiscal_years",
    "history",
    "latest_catalogues",
    "load_files",
    "load_shipped",
    "needs_seiken",
    "results_of",
    "seiken_of",
    "seiken_result_labels",
    "seiken_specs",
    "stored_version",
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


_PARSED: dict[tuple[int, str], Catalogue] = {}
_PARSED_MAX = 64


def _digest(document: Any) -> str:
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def _parsed(row: CatalogueVersion) -> Catalogue:
    """The row's document parsed, cached by row id *and* content.

    Why the content too: a rolled-back transaction (every test, an aborted request) can hand
    the same id to a different document later; a cache keyed by id alone would then answer
    with rules that were never stored.
    """
    key = (row.pk, _digest(row.document))
    found = _PARSED.get(key)
    if found is None:
        found = parse(row.document)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = found
    return found


def _missing(fiscal_year: int, version: int | None = None) -> CatalogueMissing:
    if version is not None:
        return CatalogueMissing(f"{fiscal_year}年度の検診事業の定義 第{version}版はありません")
    return CatalogueMissing(
        f"{fiscal_year}年度の検診事業の定義がありません（kenshin programs load で取り込みます）"
    )


def catalogue_version(fiscal_year: int) -> tuple[int, Catalogue]:
    """The latest stored version of a fiscal year's catalogue and its number."""
    row = _latest(fiscal_year)
    if row is None:
        raise _missing(fiscal_year)
    return row.version, _parsed(row)


def catalogue(fiscal_year: int) -> Catalogue:
    """The rules in force for a fiscal year (its latest version)."""
    return catalogue_version(fiscal_year)[1]


def latest_catalogues() -> dict[int, Catalogue]:
    """Every fiscal year's rules in force (latest version), from one query — for pages that
    name programmes and methods across all years (the person's ledger)."""
    out: dict[int, Catalogue] = {}
    rows = CatalogueVersion.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)
    for row in rows.order_by("fiscal_year", "-version"):
        if row.fiscal_year not in out:
            out[row.fiscal_year] = _parsed(row)
    return out


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


def document_of(fiscal_year: int, version: int | None = None) -> dict[str, Any]:
    """The stored document of a version (default: the latest), for export and copy-forward."""
    return stored_version(fiscal_year, version).document


@dataclass(frozen=True)
class VersionInfo:
    """One stored version without its document: what the history lists show."""

    fiscal_year: int
    version: int
    source: str
    note: str
    created_by: str
    created_at: datetime

    @property
    def source_label(self) -> str:
        """``file:kure-2025.toml`` → ファイル kure-2025.toml; ``copy:2024`` → 2024年度から複写."""
        kind, _, rest = self.source.partition(":")
        if kind == "file":
            return f"ファイル {rest}"
        if kind == "copy":
            return f"{rest}年度から複写"
        if kind == "edit":
            return f"画面で調整（{rest}）" if rest else "画面で調整"
        return self.source


@dataclass(frozen=True)
class StoredVersion:
    info: VersionInfo
    document: dict[str, Any]
    catalogue: Catalogue


_INFO_FIELDS = ("fiscal_year", "version", "source", "note", "created_by", "created_at")


def _info(row: Any) -> VersionInfo:
    return VersionInfo(**{f: getattr(row, f) for f in _INFO_FIELDS})


def history(fiscal_year: int | None = None) -> list[VersionInfo]:
    """Every stored version (of one fiscal year, or all), newest year and version first.

    One query, without the documents.
    """
    rows = CatalogueVersion.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)
    if fiscal_year is not None:
        rows = rows.filter(fiscal_year=fiscal_year)
    return [_info(r) for r in rows.only(*_INFO_FIELDS).order_by("-fiscal_year", "-version")]


def stored_version(fiscal_year: int, version: int | None = None) -> StoredVersion:
    """A stored version (default: the latest) with its document and parsed catalogue."""
    if version is None:
        row = _latest(fiscal_year)
    else:
        row = CatalogueVersion.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, fiscal_year=fiscal_year, version=version
        ).first()
    if row is None:
        raise _missing(fiscal_year, version)
    return StoredVersion(_info(row), dict(row.document), _parsed(row))


def export_toml(fiscal_year: int, version: int | None = None) -> str:
    """A stored version written back as a TOML file (comments say which version it is)."""
    stored = stored_version(fiscal_year, version)
    info = stored.info
    header = (
        f"{info.fiscal_year}年度 検診事業の定義 第{info.version}版"
        f"（kenshin programs export で書き出し）",
        f"出所: {info.source_label}　作成: {info.created_by} "
        f"{info.created_at.astimezone(clock.JST):%Y-%m-%d %H:%M}",
        *([f"変更理由: {info.note}"] if info.note else []),
        "項目の意味は docs/programmes.md を見てください。",
    )
    return to_toml(stored.document, header=header)


@dataclass(frozen=True)
class FileOutcome:
    """What ``load_files`` did with one file (or why it refused it)."""

    name: str
    message: str
    fiscal_year: int | None = None
    version: int | None = None
    error: bool = False

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def load_files(paths: Iterable[Path | str], actor: Any, *, note: str = "") -> list[FileOutcome]:
    """Store each catalogue file as the next version of its fiscal year — all or nothing.

    Every file is read and validated first; if any is refused, nothing is stored and the
    outcomes name each refused file with the place of its error. A file whose document equals
    its year's latest version is skipped, so loading the same file twice changes nothing.
    """
    read: list[tuple[Path, dict[str, Any], Catalogue]] = []
    refused: list[FileOutcome] = []
    for raw_path in paths:
        path = Path(raw_path)
        try:
            document, parsed = load_file(path)
        except (CatalogueError, OSError, UnicodeDecodeError) as exc:
            message = str(exc) if isinstance(exc, CatalogueError) else "ファイルを読めません"
            refused.append(FileOutcome(path.name, message, error=True))
            continue
        if parsed.municipality_code != settings.MUNICIPALITY_CODE:
            refused.append(
                FileOutcome(
                    path.name,
                    f"municipality_code: この定義は団体コード {parsed.municipality_code} のものです"
                    f"（このシステムは {settings.MUNICIPALITY_CODE}）",
                    parsed.fiscal_year,
                    error=True,
                )
            )
            continue
        read.append((path, document, parsed))
    if refused:
        return refused
    done: list[FileOutcome] = []
    with transaction.atomic():
        for path, document, parsed in read:
            latest = _latest(parsed.fiscal_year)
            if latest is not None and latest.document == document:
                done.append(
                    FileOutcome(
                        path.name,
                        f"{parsed.fiscal_year}年度 第{latest.version}版と同じ内容のため"
                        "取り込みません",
                        parsed.fiscal_year,
                        latest.version,
                    )
                )
                continue
            row, _ = actions.save_version(actor, document, source=f"file:{path.name}", note=note)
            done.append(
                FileOutcome(
                    path.name,
                    f"{parsed.fiscal_year}年度 第{row.version}版として取り込みました",
                    parsed.fiscal_year,
                    row.version,
                )
            )
    return done


def copy_forward(actor: Any, from_year: int, *, note: str = "") -> Catalogue:
    """Store the latest version of ``from_year`` as the first version of the next year.

    CatalogueMissing if ``from_year`` has none; CatalogueError if the next year has one already
    (it is then adjusted, not replaced).
    """
    return actions.copy_forward(actor, document_of(from_year), note=note)
