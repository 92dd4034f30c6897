"""Test helpers: a calling system and its credential in the current test database.

Why a helper and not fixtures in every app: residents, the staff pages and the contract suite
all need "this system may call the linkage server"; the root conftest.py provisions the
"kenshin" system for every database test with this function.
"""

from __future__ import annotations

from collections.abc import Sequence

from kenshin.linkage import actions, gateway


def provision(
    system_code: str = "kenshin",
    jimu_codes: Sequence[str] = ("kenko_zoshin",),
    *,
    name: str = "",
    actor: str = "test",
) -> str:
    """Create (or update) the system and issue a fresh credential; return its token."""
    actions.register_system(system_code, name or system_code, list(jimu_codes), actor=actor)
    gateway.forget_all()  # a system id may be reused after a rolled-back test
    return actions.issue_credential(system_code, actor=actor)
