"""The in-process adapter of the linkage contract (the embedded default).

The HTTP API (api.py) calls this same class inside the ``kenshin linkage serve`` process, so
both adapters share one code path: authentication and the access log (gateway), state changes
(actions), and the reads below.

Every method authenticates first (a refusal is logged by the gateway and raised as
contract.Refused), then does its work and writes one LinkageEvent. A call that fails for another
reason (bad input, unknown number, conflict) is logged too, with the error code as the result.

Reads use lean SQL on the ``linkage`` connection: a look-up by 個人番号 is one indexed query
plus the log INSERT (bench target ≥ 5,000/s in-process).

Merged numbers: look-ups by 個人番号 or 宛名番号 answer the surviving 統合宛名番号 (the data
moved there). ``person(absorbed)`` shows the absorbed number as it is, with ``merged_into``
naming the survivor; ``atenas_of``, ``masked_my_number`` and ``reveal_my_number`` follow
``merged_into`` to the survivor, because that is where the person's data now lives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import connections

from kenshin.core import mynumber as core_mynumber
from kenshin.linkage import actions, crypto, gateway, mynumber, rules
from kenshin.linkage.contract import (
    AtenaIn,
    AtenaRef,
    CandidateView,
    InvalidInput,
    LinkageError,
    MergeView,
    NotFound,
    PersonView,
    Refused,
    Registration,
)
from kenshin.linkage.models import DuplicateCandidate, MergeRequest

DB = gateway.DB
PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,31}")
T = TypeVar("T")


# Hot-path statements (plain SQL: one indexed read each, no ORM overhead). Table and column
# names are the models' (checked by test_actions.test_lean_sql_names_match_the_models).
SQL_BY_NUMBER = (
    "SELECT p.id, p.unified_atena_no, p.merged_into_id FROM linkage_mynumber m "
    "JOIN linkage_person p ON p.id = m.person_id WHERE m.blind_index = %s"
)
SQL_BY_ATENA = (
    "SELECT p.id, p.unified_atena_no, p.merged_into_id FROM linkage_atena a "
    "JOIN linkage_person p ON p.id = a.person_id WHERE a.system_id = %s AND a.atena_no = %s"
)
SQL_SYSTEM_ID = "SELECT id FROM linkage_businesssystem WHERE code = %s"
SQL_PERSON = "SELECT id, unified_atena_no, merged_into_id FROM linkage_person WHERE id = %s"
SQL_ATENAS = (
    "SELECT s.code, a.atena_no FROM linkage_atena a "
    "JOIN linkage_businesssystem s ON s.id = a.system_id WHERE a.person_id = %s ORDER BY 1, 2"
)
SQL_CIPHERTEXT = "SELECT ciphertext FROM linkage_mynumber WHERE person_id = %s"


def _one(sql: str, params: Sequence[object]) -> tuple | None:
    with connections[DB].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _all(sql: str, params: Sequence[object]) -> list[tuple]:
    with connections[DB].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _survivor(row: tuple | None) -> tuple | None:
    """Follow ``merged_into`` to the active person (merges may chain)."""
    seen = 0
    while row is not None and row[2] is not None and seen < 64:
        row = _one(SQL_PERSON, (row[2],))
        seen += 1
    return row


class InProcessClient:
    """contract.LinkageClient in this process: ``InProcessClient(token, "kenko_zoshin")``."""

    def __init__(self, credential: str, jimu: str) -> None:
        self._credential = credential
        self._jimu = jimu

    def __repr__(self) -> str:  # never the credential
        return f"<InProcessClient jimu={self._jimu}>"

    # -- plumbing

    def _caller(self, actor: str, operation: str) -> gateway.Caller:
        return gateway.authenticate(self._credential, self._jimu, actor, operation)

    def _run(self, caller: gateway.Caller, operation: str, work: Callable[[], T]) -> T:
        """Run ``work``; a failure other than a refusal is logged with its error code."""
        try:
            return work()
        except Refused:
            raise
        except LinkageError as e:
            gateway.record(caller, operation, "", e.code)
            raise
        except (crypto.DecryptError, crypto.KeysUnavailable) as e:
            # A row that does not decrypt is a tampering signal (or a lost key): log it, and
            # answer with the contract's error instead of an unexplained failure.
            gateway.record(caller, operation, "", "error", reason=type(e).__name__)
            raise LinkageError(
                "個人番号を復号できませんでした。番号連携サーバの管理者に連絡してください"
            ) from None

    # -- registration

    def register(self, atena: AtenaIn, *, actor: str) -> Registration:
        caller = self._caller(actor, "register")
        return self._run(caller, "register", lambda: actions.register(caller, atena))

    def register_many(self, atenas: Sequence[AtenaIn], *, actor: str) -> list[Registration]:
        caller = self._caller(actor, "register")
        return self._run(caller, "register", lambda: actions.register_many(caller, list(atenas)))

    # -- look-ups

    def find_by_my_number(self, my_number: str, *, actor: str) -> str | None:
        caller = self._caller(actor, "find_by_my_number")
        return self._run(
            caller, "find_by_my_number", lambda: self._find_by_number(caller, my_number)
        )

    @staticmethod
    def _find_by_number(caller: gateway.Caller, my_number: str) -> str | None:
        try:
            digits = mynumber.normalize(my_number)
        except mynumber.InvalidMyNumber as e:
            raise InvalidInput(str(e)) from None
        if not core_mynumber.is_valid(digits):
            raise InvalidInput("個人番号の検査用数字が正しくありません")
        row = _one(SQL_BY_NUMBER, (crypto.keyring().blind_index(digits),))
        if row is not None and row[2] is not None:
            row = _survivor(row)
        unified = row[1] if row else None
        gateway.record(caller, "find_by_my_number", unified or "", "ok" if row else "not_found")
        return unified

    def find_by_atena(self, atena_no: str, *, actor: str, system_code: str = "") -> str | None:
        caller = self._caller(actor, "find_by_atena")

        def work() -> str | None:
            system_id = caller.system_id
            if system_code and system_code != caller.system_code:
                found = _one(SQL_SYSTEM_ID, (system_code,))
                if found is None:
                    raise NotFound("連携システムが登録されていません")
                system_id = found[0]
            row = _survivor(_one(SQL_BY_ATENA, (system_id, (atena_no or "").strip())))
            unified = row[1] if row else None
            gateway.record(
                caller, "find_by_atena", unified or "", "ok" if row else "not_found",
                system=system_code or caller.system_code,
            )  # fmt: skip
            return unified

        return self._run(caller, "find_by_atena", work)

    def _resolve(self, unified_atena_no: str, *, follow: bool) -> tuple:
        row = _one(SQL_PERSON, (rules.serial_of(unified_atena_no),))
        if row is None:
            raise NotFound("団体内統合宛名番号が見つかりません")
        return _survivor(row) if follow else row

    def atenas_of(self, unified_atena_no: str, *, actor: str) -> list[AtenaRef]:
        caller = self._caller(actor, "atenas_of")

        def work() -> list[AtenaRef]:
            row = self._resolve(unified_atena_no, follow=True)
            refs = [AtenaRef(code, no) for code, no in _all(SQL_ATENAS, (row[0],))]
            gateway.record(caller, "atenas_of", row[1], "ok", count=len(refs))
            return refs

        return self._run(caller, "atenas_of", work)

    def person(self, unified_atena_no: str, *, actor: str) -> PersonView:
        caller = self._caller(actor, "person")

        def work() -> PersonView:
            row = self._resolve(unified_atena_no, follow=False)
            final = _survivor(row) if row[2] is not None else None
            view = PersonView(
                unified_atena_no=row[1],
                merged_into=final[1] if final else None,
                has_my_number=_one(SQL_CIPHERTEXT, (row[0],)) is not None,
                atenas=[AtenaRef(code, no) for code, no in _all(SQL_ATENAS, (row[0],))],
            )
            gateway.record(caller, "person", row[1], "ok")
            return view

        return self._run(caller, "person", work)

    def _plain_number(self, unified_atena_no: str) -> tuple[str, str | None]:
        row = self._resolve(unified_atena_no, follow=True)
        found = _one(SQL_CIPHERTEXT, (row[0],))
        if found is None:
            return row[1], None
        return row[1], crypto.keyring().decrypt(found[0], row[0])

    def masked_my_number(self, unified_atena_no: str, *, actor: str) -> str | None:
        caller = self._caller(actor, "masked_my_number")

        def work() -> str | None:
            unified, plain = self._plain_number(unified_atena_no)
            gateway.record(caller, "masked_my_number", unified, "ok" if plain else "not_found")
            return rules.mask(plain) if plain else None

        return self._run(caller, "masked_my_number", work)

    def reveal_my_number(self, unified_atena_no: str, *, actor: str, purpose: str) -> str | None:
        caller = self._caller(actor, "reveal_my_number")

        def work() -> str | None:
            if not PURPOSE.fullmatch(purpose or ""):
                raise InvalidInput("利用目的コードを指定してください（半角英小文字・数字・_）")
            unified, plain = self._plain_number(unified_atena_no)
            gateway.record(
                caller, "reveal_my_number", unified, "ok" if plain else "not_found",
                purpose=purpose,
            )  # fmt: skip
            return plain

        return self._run(caller, "reveal_my_number", work)

    # -- duplicates and merges

    def duplicate_candidates(self, *, actor: str) -> list[CandidateView]:
        caller = self._caller(actor, "duplicate_candidates")

        def work() -> list[CandidateView]:
            rows = (
                DuplicateCandidate.objects.using(DB)
                .filter(resolved_at=None)
                .order_by("found_at", "id")
                .values_list("id", "person_a_id", "person_b_id", "basis")
            )
            views = [
                CandidateView(pk, rules.unified_atena_no(a), rules.unified_atena_no(b), basis)
                for pk, a, b, basis in rows
            ]
            gateway.record(caller, "duplicate_candidates", "", "ok", count=len(views))
            return views

        return self._run(caller, "duplicate_candidates", work)

    def request_merge(self, survivor: str, absorbed: str, *, actor: str, reason: str) -> MergeView:
        caller = self._caller(actor, "merge_request")
        return self._run(
            caller,
            "merge_request",
            lambda: actions.request_merge(caller, survivor, absorbed, reason),
        )

    def request_unmerge(self, merge_id: int, *, actor: str, reason: str) -> MergeView:
        caller = self._caller(actor, "unmerge_request")
        return self._run(
            caller, "unmerge_request", lambda: actions.request_unmerge(caller, merge_id, reason)
        )

    def decide_merge(self, request_id: int, *, actor: str, approve: bool) -> MergeView:
        caller = self._caller(actor, "merge_decide")
        return self._run(
            caller, "merge_decide", lambda: actions.decide_merge(caller, request_id, approve)
        )

    def merges(self, *, actor: str, unified_atena_no: str = "") -> list[MergeView]:
        caller = self._caller(actor, "merges")

        def work() -> list[MergeView]:
            qs = MergeRequest.objects.using(DB).order_by("-requested_at", "-id")
            if unified_atena_no:
                serial = rules.serial_of(unified_atena_no)
                qs = qs.filter(survivor_id=serial) | qs.filter(absorbed_id=serial)
            views = [actions.merge_view(req) for req in qs]
            gateway.record(
                caller, "merges", unified_atena_no.strip() if unified_atena_no else "", "ok",
                count=len(views),
            )  # fmt: skip
            return views

        return self._run(caller, "merges", work)
