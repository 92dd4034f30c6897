"""Linking residents to the 番号連携サーバ: every 宛名 registered, its 統合宛名番号 kept here.

Why here and not in the linkage app: the register decides what a resident's five 名寄せ items
are; the linkage server only answers through its client (linkage.services, linkage.contract),
in-process or over HTTP, and must know nothing of this app (pyproject import contracts).

How an import links (actions.py calls these per batch, inside its transaction):
1. the batch's 宛名 (with the 個人番号 when the feed carried one) go to the linkage server in
   one ``register_many`` call — the server commits them in its own database at once;
2. the 統合宛名番号 it returns are written as ResidentLink rows, set-based, in the import's
   transaction on the main database.
If the import is rolled back later (an error further down the file), the linkage server keeps
the 宛名 it registered. That is harmless and safe to re-run: registering is idempotent (the same
宛名番号 gets the same 統合宛名番号 again), and the next import writes the links.

The 個人番号 passes through memory only: it is never written to the main database, a log, an
audit event or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TextIO

from django.conf import settings
from django.db import transaction

from kenshin.core import audit, clock
from kenshin.core.bulk import bulk_insert
from kenshin.core.progress import ProgressLine
from kenshin.linkage import services as linkage
from kenshin.linkage.contract import AtenaIn, LinkageClient, Registration
from kenshin.residents.models import ResidentLink, ResidentVersion

LINK_FIELDS = ("municipality_code", "atena_no", "unified_atena_no", "linked_at")
# 宛名 per register_many call: one linkage transaction (and, over HTTP, one request body of a
# few MB) per call; a 20,000-row import batch makes four calls.
CALL_SIZE = 5_000
_IN_CHUNK = (
    500  # 宛名番号 per IN (…) query (SQLite's variable limit is far above; plans stay short)
)


# The register's attributes in ResidentVersion order (a parsed row's rules.ATTRS, a version's
# attrs, actions.ATTR_FIELDS): the five 名寄せ items are read from these places.
ATENA_ATTR_FIELDS = (
    "name", "name_kana", "kana_key", "name_key", "sex", "birth_date", "postal_code", "address",
)  # fmt: skip


def atena_in(atena_no: str, attrs: Sequence, my_number: str = "") -> AtenaIn:
    """The 宛名 the linkage server needs, from a resident's attributes in ATENA_ATTR_FIELDS
    order (a parsed feed row's rules.ATTRS, a version's attrs, or a query of those fields).

    One builder for the import (full and diff) and `residents link`, so every path sends the
    same five items. The 住所 is the address without 方書: other systems keep the building name
    apart or not at all, and the five-item match must see the same 住所 from each of them.
    """
    birth = attrs[5]
    return AtenaIn(
        atena_no=atena_no,
        name=attrs[0],
        name_kana=attrs[1],
        birth_date=birth if isinstance(birth, date) else date.fromisoformat(birth),
        sex=attrs[4],
        address=attrs[7],
        my_number=my_number or None,
    )


class Linker:
    """One client for a whole import (over HTTP: one kept-alive connection), used per batch."""

    def __init__(self, municipality_code: str, actor: str):
        self.mc = municipality_code
        self.actor = actor
        self._client: LinkageClient | None = None
        self.registered = 0

    @property
    def client(self) -> LinkageClient:
        if self._client is None:
            self._client = linkage.client()
        return self._client

    def register(self, atenas: Sequence[AtenaIn]) -> dict[str, str]:
        """Register a batch with the linkage server → 宛名番号 → 統合宛名番号."""
        found: dict[str, str] = {}
        for i in range(0, len(atenas), CALL_SIZE):
            part = atenas[i : i + CALL_SIZE]
            regs: list[Registration] = self.client.register_many(part, actor=self.actor)
            found.update((r.atena_no, r.unified_atena_no) for r in regs)
            self.registered += len(part)
        return found

    def link(self, atenas: Sequence[AtenaIn], *, fresh: bool = False) -> int:
        """Register a batch and write its ResidentLink rows (in the caller's transaction).

        ``fresh``: no link can exist yet (a first full load), so the rows are appended
        without looking; otherwise new links are inserted and changed ones updated.
        """
        if not atenas:
            return 0
        found = self.register(atenas)
        write_links(self.mc, found, fresh=fresh)
        return len(found)


def link_lines(mc: str, found: dict[str, str], now: datetime | None = None) -> str:
    """ResidentLink rows as COPY text lines (PostgreSQL's first full load: see actions)."""
    at = (now or clock.now()).isoformat()
    return "".join(f"{mc}\t{a}\t{u}\t{at}\n" for a, u in found.items())


def write_links(mc: str, found: dict[str, str], *, fresh: bool = False) -> None:
    """Insert or update ResidentLink rows for 宛名番号 → 統合宛名番号 (set-based)."""
    if not found:
        return
    now = clock.now()
    if fresh:
        bulk_insert(ResidentLink, LINK_FIELDS, [(mc, a, u, now) for a, u in found.items()])
        return
    atenas = list(found)
    existing: dict[str, tuple[int, str]] = {}
    for i in range(0, len(atenas), _IN_CHUNK):
        for pk, a, u in ResidentLink.objects.filter(
            municipality_code=mc, atena_no__in=atenas[i : i + _IN_CHUNK]
        ).values_list("pk", "atena_no", "unified_atena_no"):
            existing[a] = (pk, u)
    inserts = [(mc, a, u, now) for a, u in found.items() if a not in existing]
    updates = [
        ResidentLink(pk=existing[a][0], unified_atena_no=u, linked_at=now)
        for a, u in found.items()
        if a in existing and existing[a][1] != u
    ]
    if updates:
        ResidentLink.objects.bulk_update(updates, ["unified_atena_no", "linked_at"], batch_size=500)
    if inserts:
        bulk_insert(ResidentLink, LINK_FIELDS, inserts)


def linked_atena_nos(mc: str, atenas: Iterable[str]) -> set[str]:
    """Which of these 宛名番号 already have a ResidentLink."""
    wanted = list(atenas)
    out: set[str] = set()
    for i in range(0, len(wanted), _IN_CHUNK):
        out.update(
            ResidentLink.objects.filter(
                municipality_code=mc, atena_no__in=wanted[i : i + _IN_CHUNK]
            ).values_list("atena_no", flat=True)
        )
    return out


# ---------------------------------------------------------------------------------------------
# `kenshin residents link`: residents imported before linkage existed (or whose link was lost)


@dataclass
class LinkReport:
    """What one `residents link` run did."""

    linked: int = 0
    remaining: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        text = f"統合宛名番号を {self.linked:,} 人に連携しました（{self.seconds:.1f}秒）"
        if self.remaining:
            text += f"。未連携が {self.remaining:,} 人残っています（もう一度実行すると続きから）"
        return text


def _unlinked(mc: str):
    """Current register records without a ResidentLink (one anti-join, in 宛名番号 order)."""
    from django.db.models import Exists, OuterRef

    linked = ResidentLink.objects.filter(municipality_code=mc, atena_no=OuterRef("atena_no"))
    return (
        ResidentVersion.objects.filter(municipality_code=mc, valid_to__isnull=True)
        .exclude(Exists(linked))
        .order_by("atena_no")
    )


def link_unlinked(
    *,
    actor: str,
    batch_size: int = 5_000,
    stop_after: int | None = None,
    stdout: TextIO | None = None,
    municipality_code: str | None = None,
) -> LinkReport:
    """Register every current resident that has no ResidentLink yet, batch by batch.

    Resumable: each batch commits its links on its own, and the next batch is chosen as
    "still without a link", so an interrupted run continues where it stopped. ``stop_after``
    (rows) lets tests and operators do part of the work. No 個人番号 is sent (the register does
    not hold any); the linkage server issues or finds the 統合宛名番号 on the five items.
    """
    started = time.monotonic()
    mc = municipality_code or settings.MUNICIPALITY_CODE
    report = LinkReport()
    total = _unlinked(mc).count()
    progress = ProgressLine("統合宛名番号を連携しています", total, stdout)
    linker = Linker(mc, actor)
    fields = ("atena_no", *ATENA_ATTR_FIELDS)
    while stop_after is None or report.linked < stop_after:
        size = batch_size if stop_after is None else min(batch_size, stop_after - report.linked)
        rows = list(_unlinked(mc).values_list(*fields)[:size])
        if not rows:
            break
        atenas = [atena_in(row[0], row[1:]) for row in rows]
        with transaction.atomic():
            linker.link(atenas)
            audit.record(
                audit.Event.UPDATE,
                audit.Actor.system(actor),
                audit.Subject("resident_link", mc),
                function="residents.link",
                linked=len(atenas),
            )
        report.linked += len(rows)
        progress.update(report.linked, report.linked)
    progress.finish(report.linked)
    report.remaining = _unlinked(mc).count()
    report.seconds = time.monotonic() - started
    return report
