"""The documented sample files read as the format page says (docs/formats/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kenshin.intake import readers
from kenshin.intake.layout import BY_KEY

DOCS = Path(__file__).resolve().parents[4] / "docs" / "formats" / "samples"


def _rows(name: str, profile: readers.Profile | None = None):
    source = readers.open_file(DOCS / name, profile)
    return source, list(source.rows)


def test_csv_and_workbook_samples_hold_the_same_rows():
    csv_source, csv_rows = _rows("kenshin-results.csv")
    xlsx_source, xlsx_rows = _rows("kenshin-results.xlsx")
    assert (csv_source.kind, csv_source.facts.encoding) == ("csv", "utf-8-sig")
    assert xlsx_source.kind == "xlsx" and not csv_source.ignored and not xlsx_source.ignored
    assert [r.cells["method"] for r in csv_rows] == ["マンモグラフィ", "fecal_occult_blood",
                                                     "chest_xray", "cytology", "hpv_primary"]  # fmt: skip
    # The workbook's date cells read as ISO dates; the text cells as written.
    for a, b in zip(csv_rows, xlsx_rows, strict=True):
        assert {k: v for k, v in a.cells.items() if k != "exam_date"} == {
            k: v for k, v in b.cells.items() if k != "exam_date"
        }
    assert xlsx_rows[0].cells["exam_date"] == "2025-11-10"


def test_profile_sample_maps_only_known_keys():
    import tomllib

    data = tomllib.loads((DOCS / "profile-example.toml").read_text(encoding="utf-8"))
    assert set(data["columns"].values()) <= set(BY_KEY)
    assert set(data["values"]) <= set(BY_KEY)


@pytest.mark.parametrize("name", ["kenshin-results.csv", "kenshin-results.xlsx"])
def test_samples_have_every_required_header(name):
    from kenshin.intake.layout import BY_HEADER, REQUIRED_HEADERS

    source, rows = _rows(name)
    assert {BY_HEADER[h].key for h in REQUIRED_HEADERS} <= set(source.columns)
    assert source.header[: len(BY_HEADER)] == list(BY_HEADER)  # every column, in order
    assert len(rows) == 5 and all(r.row_no >= 2 for r in rows)
