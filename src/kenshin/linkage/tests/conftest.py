"""The contract suite's two sides: the in-process adapter and a real ``kenshin linkage serve``.

``linkage`` (parametrized "inprocess" / "http") is what tests/test_contract.py talks to: the
client of the system "kenshin", a way to add other systems and credentials, to revoke one, and
to read the server's LinkageEvent rows. In-process, all of that happens in the test database;
over HTTP, in the server's own database (through its CLI), which is shared by every test of the
session — so contract tests use unique synthetic 宛名番号 and 個人番号 (``synthetic``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from kenshin.core.mynumber import check_digit
from kenshin.linkage.contract import AtenaIn, LinkageClient
from kenshin.linkage.tests.http_server import (  # noqa: F401 - fixtures for the "http" side
    http_linkage_admin,
    http_linkage_client,
    http_linkage_events,
    http_linkage_server,
)

JIMU = "kenko_zoshin"
_rng = random.SystemRandom()


def synthetic_my_number() -> str:
    """A random 個人番号 with a valid check digit (never a real one: synthetic by construction)."""
    first = "".join(_rng.choice("0123456789") for _ in range(11))
    return first + str(check_digit(first))


def wrong_check_digit(number: str) -> str:
    return number[:11] + str((int(number[11]) + _rng.randint(1, 9)) % 10)


def synthetic_atena_no() -> str:
    """A random 宛名番号 ("T" + 10 digits: never a 12-digit run the leak guard would flag)."""
    return "T" + "".join(_rng.choice("0123456789") for _ in range(10))


def synthetic_atena(my_number: str | None = None, **items: Any) -> AtenaIn:
    """A 宛名 whose five items are unique to this call (the address carries a random number)."""
    values: dict[str, Any] = {
        "atena_no": synthetic_atena_no(),
        "name": "試験　花子",
        "name_kana": "シケン　ハナコ",
        "birth_date": date(1950 + _rng.randint(0, 60), _rng.randint(1, 12), _rng.randint(1, 28)),
        "sex": 2,
        "address": f"広島県呉市試験町{_rng.randint(1, 10**8)}番地",
        "my_number": my_number,
    }
    values.update(items)
    return AtenaIn(**values)


@dataclass
class LinkageSide:
    """One adapter under test and the means to arrange what the contract tests need."""

    kind: str
    client: LinkageClient
    add_system: Callable[[str, list[str]], None]
    issue: Callable[[str], str]
    revoke: Callable[[str], None]
    client_for: Callable[[str, str], LinkageClient]
    events: Callable[[int], list[dict[str, Any]]]

    def last_event_id(self) -> int:
        rows = self.events(0)
        return rows[-1]["id"] if rows else 0

    def new_system(self, jimu_codes: list[str] | None = None) -> tuple[str, LinkageClient]:
        """A fresh system (unique code) with its own credential and client."""
        code = "sys_" + "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))
        self.add_system(code, jimu_codes or [JIMU])
        token = self.issue(code)
        return code, self.client_for(token, (jimu_codes or [JIMU])[0])


def _inprocess_side(settings) -> LinkageSide:
    from kenshin.linkage import actions
    from kenshin.linkage.clients import InProcessClient
    from kenshin.linkage.models import LinkageEvent

    def events(after_id: int = 0) -> list[dict[str, Any]]:
        return list(
            LinkageEvent.objects.using("linkage")
            .filter(id__gt=after_id)
            .order_by("id")
            .values(
                "id", "at", "system_code", "actor", "jimu_code", "operation",
                "unified_atena_no", "result", "detail",
            )
        )  # fmt: skip

    return LinkageSide(
        kind="inprocess",
        client=InProcessClient(settings.LINKAGE_CREDENTIAL, JIMU),
        add_system=lambda code, jimu: actions.register_system(code, code, jimu, actor="test"),
        issue=lambda code: actions.issue_credential(code, actor="test"),
        revoke=lambda token: actions.revoke_credential(token.split("_")[1], actor="test"),
        client_for=InProcessClient,
        events=events,
    )


def _http_side(request: pytest.FixtureRequest) -> LinkageSide:
    admin = request.getfixturevalue("http_linkage_admin")
    return LinkageSide(
        kind="http",
        client=request.getfixturevalue("http_linkage_client"),
        add_system=lambda code, jimu: admin.add_system(code, jimu),
        issue=admin.issue_credential,
        revoke=admin.revoke,
        client_for=admin.client,
        events=request.getfixturevalue("http_linkage_events"),
    )


@pytest.fixture(params=["inprocess", "http"])
def linkage(request: pytest.FixtureRequest, settings) -> Iterator[LinkageSide]:
    """The adapter under test (both, by parametrization) with its arranging helpers."""
    if request.param == "inprocess":
        request.getfixturevalue("db")
        yield _inprocess_side(settings)
    else:
        yield _http_side(request)


@pytest.fixture
def linkage_client(linkage: LinkageSide) -> LinkageClient:
    """The client of the system "kenshin" (事務 kenko_zoshin) on the adapter under test."""
    return linkage.client
