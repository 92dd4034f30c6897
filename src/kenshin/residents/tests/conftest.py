"""Small feed files written on the fly, so each test states exactly the rows it needs."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from kenshin.core import clock
from kenshin.residents.rules import CATEGORY_HEADER, RESIDENT_HEADER

BASE = {
    "異動区分": "00",
    "異動日": "2024-04-01",
    "届出日": "2024-04-01",
    "宛名番号": "1000000001",
    "氏名": "山田　太郎",
    "氏名カナ": "ヤマダ　タロウ",
    "性別": "1",
    "生年月日": "1985-04-01",
    "郵便番号": "737-0051",
    "住所": "広島県呉市中央四丁目1番6号",
    "方書": "",
    "電話番号": "0823-25-3100",
    "世帯番号": "2000000001",
    "続柄": "世帯主",
    "世帯主氏名": "山田　太郎",
    "住民状態": "1",
}


def person(**changes: str) -> dict[str, str]:
    """A valid row with the given columns changed (keys are the Japanese column names)."""
    row = dict(BASE)
    row.update(changes)
    return row


@pytest.fixture(autouse=True)
def _fixed_today():
    with clock.frozen(clock_date()):
        yield


def clock_date():
    from datetime import date

    return date(2026, 11, 26)


@pytest.fixture
def feed_file(tmp_path: Path) -> Callable[..., Path]:
    """Write rows (dicts by column name, or raw lists) as a feed file and return its path."""
    counter = iter(range(1, 10_000))

    def write(
        rows: list[dict[str, str] | list[str]],
        *,
        encoding: str = "utf-8",
        header: tuple[str, ...] | list[str] = RESIDENT_HEADER,
        name: str | None = None,
    ) -> Path:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)
        path = tmp_path / (name or f"feed{next(counter)}.csv")
        path.write_bytes(buf.getvalue().encode(encoding))
        return path

    return write


@pytest.fixture
def category_file(feed_file):
    def write(rows: list[list[str]], **kw) -> Path:
        return feed_file(rows, header=CATEGORY_HEADER, **kw)

    return write
