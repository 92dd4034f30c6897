"""The error file: the rows a batch did not take in, as the clinic sent them, with why.

Why this shape: the clinic corrects and sends back the same rows. The file is the batch's
original header and rows, with five columns added at the end (row number, status, column,
value, what was expected). Those added columns are not columns of the result layout, so the
corrected file can be uploaded as it is: the intake reads the layout's columns and lists the
others as not read. Cells are formula-safe and the encoding is the user's choice (CP932 or
UTF-8 with BOM), so it opens cleanly in Excel.
"""

from __future__ import annotations

from collections.abc import Iterator

from kenshin.core.csvfile import csv_chunks
from kenshin.intake.models import ImportBatch, RowStatus, StagedRow

EXTRA = ("取込エラー 行", "取込エラー 状態", "取込エラー 列", "取込エラー 値", "取込エラー 内容")
LEFT_OUT = (RowStatus.ERROR, RowStatus.QUARANTINED, RowStatus.REJECTED)


def error_rows(batch: ImportBatch) -> Iterator[list[str]]:
    """One line per row left out: the original cells (padded to the header), then why."""
    width = len(batch.header)
    labels = dict(RowStatus.choices)
    rows = (
        StagedRow.objects.filter(batch=batch, status__in=LEFT_OUT)
        .order_by("row_no", "method")
        .values_list("row_no", "status", "raw", "problems")
        .iterator(chunk_size=2_000)
    )
    last = None
    for row_no, status, raw, problems in rows:
        if row_no == last:
            continue  # a FHIR Bundle of two methods: one line for the Bundle
        last = row_no
        cells = list(raw or [])[:width]
        cells += [""] * (width - len(cells))
        problems = problems or []
        yield [
            *cells,
            str(row_no),
            labels.get(status, status),
            "、".join(dict.fromkeys(p["column"] for p in problems if p["column"])),
            "、".join(p["value"] for p in problems if p["value"]),
            "／".join(p["message"] for p in problems),
        ]


def error_file(batch: ImportBatch, encoding: str) -> Iterator[bytes]:
    """The error file as CSV bytes in chunks (``cp932`` or ``utf-8-sig``)."""
    return csv_chunks([*batch.header, *EXTRA], error_rows(batch), encoding)


def error_count(batch: ImportBatch) -> int:
    return StagedRow.objects.filter(batch=batch, status__in=LEFT_OUT).count()
