"""Fixtures of the programs tests: a small valid catalogue document, the shipped catalogues
stored, and staff with the standard roles."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kenshin.core import audit

# A catalogue of two programmes, small enough to read in a test; each refusal test breaks
# exactly one thing in a copy of it.
SMALL: dict[str, Any] = {
    "format": 1,
    "fiscal_year": 2025,
    "municipality_code": "342025",
    "title": "呉市 令和7年度 テスト",
    "fees": {"early_months": [4, 5, 6], "exemptions": ["public_assistance", "coupon"]},
    "programmes": [
        {
            "code": "breast",
            "name": "乳がん検診",
            "methods": [
                {
                    "code": "mammography",
                    "name": "マンモグラフィ",
                    "sex": "female",
                    "min_age": 40,
                    "interval": "biennial",
                    "settings": ["individual", "group"],
                    "copay": {"individual": 1700, "group": 1000},
                    "unit_price": {"individual": 8800, "group": 6600},
                    "coupon": {"turned_age": 40, "prefix": "B", "name": "乳がん検診無料クーポン"},
                }
            ],
        },
        {
            "code": "periodontal",
            "name": "歯周疾患検診",
            "methods": [
                {
                    "code": "periodontal_exam",
                    "name": "歯周疾患検診",
                    "sex": "any",
                    "min_age": 20,
                    "max_age": 70,
                    "interval": "milestone",
                    "milestones": [20, 30, 40, 50, 60, 70],
                    "settings": ["individual"],
                    "copay": {"individual": 500},
                    "unit_price": {"individual": 5280},
                }
            ],
        },
    ],
}


def small() -> dict[str, Any]:
    return copy.deepcopy(SMALL)


SYSTEM = audit.Actor.system("test")


@pytest.fixture
def shipped(db):
    """FY2024–FY2026 as shipped, stored as version 1 each."""
    from kenshin.programs import services

    done = services.load_shipped(SYSTEM)
    assert [outcome for _fy, outcome in done] == ["取り込みました"] * 3
    return done
