"""Building result files for the intake tests: rows by column key, written as a clinic would."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from kenshin.intake import actions
from kenshin.intake.layout import COLUMNS, header_row
from kenshin.intake.models import ImportBatch

INSTITUTION = "3410000001"


def exam_row(**values: str) -> dict[str, str]:
    """A valid-looking row (keys are layout keys); override what the test is about."""
    row = {"institution_code": INSTITUTION, "setting": "1", "exam_date": "2025-11-10"}
    row.update(values)
    return row


def csv_bytes(rows: list[dict[str, str]], *, encoding: str = "utf-8-sig",
              header: list[str] | None = None) -> bytes:  # fmt: skip
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header or header_row())
    for row in rows:
        writer.writerow([row.get(c.key, "") for c in COLUMNS])
    return buf.getvalue().encode(encoding)


def upload(data: bytes, *, name: str = "results.csv", fiscal_year: int = 2025,
           actor: str = "uketsuke", sender: str = "", profile: str = "") -> ImportBatch:  # fmt: skip
    return actions.receive_file(
        actor, io.BytesIO(data), name, fiscal_year=fiscal_year, sender_institution=sender,
        profile=profile,
    )  # fmt: skip


def staged(data: bytes, **kwargs: str) -> ImportBatch:
    batch = upload(data, **kwargs)
    return actions.stage_batch("uketsuke", batch.pk)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
