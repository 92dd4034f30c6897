"""The one contract between business systems and the 番号連携サーバ.

Two adapters implement it — ``clients.InProcessClient`` (the embedded default) and
``clients.HttpClient`` (a ``kenshin linkage serve`` process) — and one test suite
(tests/test_contract.py) runs against both, so a city can move the linkage server to its own
machine without any business system noticing.

Every call carries the calling system's credential and a 事務 code (given when the client is
made) and the name of the person acting (``actor``: a staff user name, or a job name). The
server checks both, does the work, and writes one LinkageEvent; a refused call is logged too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol


class LinkageError(Exception):
    """Base of every error the contract raises. ``str(e)`` is Japanese and never holds a
    個人番号; ``code`` is stable for programs."""

    code = "error"
    http_status = 500


class Refused(LinkageError):
    """Bad, revoked or expired credential, or a 事務 code this system may not use."""

    code = "refused"
    http_status = 403


class InvalidInput(LinkageError):
    """The request itself is wrong (個人番号 check digit, missing item, unknown number)."""

    code = "invalid"
    http_status = 422


class NotFound(LinkageError):
    """The 統合宛名番号 or request named does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(LinkageError):
    """The change would break an invariant (one 個人番号 per person, four eyes, …)."""

    code = "conflict"
    http_status = 409


ERRORS: dict[str, type[LinkageError]] = {
    cls.code: cls for cls in (LinkageError, Refused, InvalidInput, NotFound, Conflict)
}


@dataclass(frozen=True)
class AtenaIn:
    """One 宛名 as a business system registers it. ``my_number`` is optional; it goes into
    the vault and is never echoed back."""

    atena_no: str
    name: str
    name_kana: str
    birth_date: date
    sex: int  # 住基 code: 1 男, 2 女
    address: str
    my_number: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Registration:
    """What registering one 宛名 did.

    outcome: "issued" (a new 統合宛名番号), "linked_my_number" (the 個人番号 was known),
    "linked_five_items" (one person matched on all five items), "existing" (this 宛名番号
    was registered before; items updated if they changed).
    """

    atena_no: str
    unified_atena_no: str
    outcome: str
    duplicate_suspected: bool = False


@dataclass(frozen=True)
class AtenaRef:
    """A business system's 宛名番号 linked to a 統合宛名番号 (reverse look-up)."""

    system_code: str
    atena_no: str


@dataclass(frozen=True)
class PersonView:
    """A 統合宛名番号 as staff see it: never the 個人番号 itself, only whether one is held."""

    unified_atena_no: str
    merged_into: str | None
    has_my_number: bool
    atenas: list[AtenaRef]


@dataclass(frozen=True)
class CandidateView:
    """A suspected duplicate (two numbers that may be one person)."""

    id: int
    unified_a: str
    unified_b: str
    basis: str


@dataclass(frozen=True)
class MergeView:
    """A merge or unmerge request and its state."""

    id: int
    kind: str  # "merge" | "unmerge"
    survivor: str
    absorbed: str
    status: str  # "pending" | "applied" | "rejected"
    requested_by: str
    decided_by: str
    reason: str


class LinkageClient(Protocol):
    """What a business system may ask the linkage server."""

    def register(self, atena: AtenaIn, *, actor: str) -> Registration:
        """Register or update one 宛名; issue a 統合宛名番号 when the person has none."""
        ...

    def register_many(self, atenas: Sequence[AtenaIn], *, actor: str) -> list[Registration]:
        """The same as ``register`` for a batch (feed imports), in one transaction."""
        ...

    def find_by_my_number(self, my_number: str, *, actor: str) -> str | None:
        """統合宛名番号 of the person holding this 個人番号 (any spelling), or None."""
        ...

    def find_by_atena(self, atena_no: str, *, actor: str, system_code: str = "") -> str | None:
        """統合宛名番号 linked to a business 宛名番号 (of the caller's system by default)."""
        ...

    def atenas_of(self, unified_atena_no: str, *, actor: str) -> list[AtenaRef]:
        """Reverse look-up: every business 宛名番号 linked to a 統合宛名番号."""
        ...

    def person(self, unified_atena_no: str, *, actor: str) -> PersonView:
        """The 統合宛名番号 with its links (NotFound if unknown)."""
        ...

    def masked_my_number(self, unified_atena_no: str, *, actor: str) -> str | None:
        """The 個人番号 masked as ``**** **** 3214``, or None if none is held."""
        ...

    def reveal_my_number(self, unified_atena_no: str, *, actor: str, purpose: str) -> str | None:
        """The 個人番号 in full. The business system must have checked the actor's right and
        a fresh second factor; the server records the purpose with the event."""
        ...

    def duplicate_candidates(self, *, actor: str) -> list[CandidateView]:
        """Open suspected duplicates, oldest first."""
        ...

    def request_merge(self, survivor: str, absorbed: str, *, actor: str, reason: str) -> MergeView:
        """Ask to fold ``absorbed`` into ``survivor``; someone else must approve."""
        ...

    def request_unmerge(self, merge_id: int, *, actor: str, reason: str) -> MergeView:
        """Ask to undo an applied merge; someone else must approve."""
        ...

    def decide_merge(self, request_id: int, *, actor: str, approve: bool) -> MergeView:
        """Approve (apply) or reject a pending request; never by the person who asked."""
        ...

    def merges(self, *, actor: str, unified_atena_no: str = "") -> list[MergeView]:
        """Merge history (all, or of one number), newest first."""
        ...
