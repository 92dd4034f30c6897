"""The intake tests' shared town: the screening tests' small register, the shipped catalogues,
FY2025 vouchers for everyone, and the uploads kept under the test's own directory."""

from __future__ import annotations

import pytest

from kenshin.programs import services as programs
from kenshin.screening import services as screening
from kenshin.screening.tests.town import TOWN, import_town


@pytest.fixture
def town(tmp_path, settings):
    # Deep enough that ../../ from INTAKE_DIR is still inside tmp_path (test_hostile looks).
    settings.INTAKE_DIR = tmp_path / "var" / "kenshin" / "intake"
    settings.INTAKE_APPROVAL_ROWS = 1_000
    programs.load_shipped()
    import_town(tmp_path)
    screening.issue_vouchers("test", 2025, [p.atena_no for p in TOWN])
    return tmp_path
