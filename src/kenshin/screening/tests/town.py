"""A small register imported through residents' real import path, for the roster's UI tests.

Each person is stated by what the rules read (sex, birth date, 住民状態); the feed files are
written on the fly with residents' published header, so the roster is built from the register
exactly as a city's would be.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kenshin.residents import services as residents
from kenshin.screening import services as screening

FULL_LOAD_DAY = "2024-04-01"


@dataclass(frozen=True)
class Person:
    atena_no: str
    sex: int
    birth: date
    name: str = "試験　花子"
    kana: str = "シケン　ハナコ"


# FY2025 (base date 2025-04-01), 年度末年齢 in brackets.
# HANAKO: マンモグラフィ last year (not eligible this year). TARO: 肝炎 tested in 2019.
HANAKO = Person("1000000001", 2, date(1980, 6, 1))  # [45] 乳・HPV節目・骨粗節目
TARO = Person("1000000002", 1, date(1960, 1, 15), "試験　太郎", "シケン　タロウ")  # [66]
MISAKI = Person(
    "1000000003", 2, date(2004, 10, 10), "試験　美咲", "シケン　ミサキ"
)  # [21] 頸クーポン
KEN = Person("1000000004", 1, date(1975, 4, 2), "試験　健", "シケン　ケン")  # [50] 歯周節目
FORMULA = Person("1000000005", 2, date(1970, 8, 8), "=HYPERLINK(1)", "シケン　イコール")  # [55]
GONE = Person(
    "1000000006", 1, date(1950, 3, 3), "試験　一郎", "シケン　イチロウ"
)  # died 2025-03-01
TOWN = (HANAKO, TARO, MISAKI, KEN, FORMULA, GONE)


def _row(p: Person, *, kind: str = "00", day: str = FULL_LOAD_DAY, status: str = "1") -> list:
    values = {
        "異動区分": kind,
        "異動日": day,
        "届出日": day,
        "宛名番号": p.atena_no,
        "氏名": p.name,
        "氏名カナ": p.kana,
        "性別": str(p.sex),
        "生年月日": p.birth.isoformat(),
        "郵便番号": "737-0051",
        "住所": "広島県呉市中央四丁目1番6号",
        "方書": "",
        "電話番号": "",
        "世帯番号": "2" + p.atena_no[1:],
        "続柄": "世帯主",
        "世帯主氏名": p.name,
        "住民状態": status,
    }
    return [values.get(c, "") for c in residents.RESIDENT_FEED_HEADER]


def _write(path: Path, header, rows) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return path


def import_town(tmp_path: Path, people=TOWN) -> None:
    """Full load on 2024-04-01, GONE dies on 2025-03-01, 課税区分 for FY2024 and FY2025."""
    files = [_write(tmp_path / "01-full.csv", residents.RESIDENT_FEED_HEADER,
                    [_row(p) for p in people])]  # fmt: skip
    if GONE in people:
        files.append(
            _write(
                tmp_path / "02-diff.csv",
                residents.RESIDENT_FEED_HEADER,
                [_row(GONE, kind="21", day="2025-03-01", status="3")],
            )
        )
    categories = []
    for fy in (2024, 2025):
        for p in people:
            # 生活保護 for HANAKO from FY2025 only (the April–June rule shows the difference).
            tax = "3" if (p is HANAKO and fy == 2025) else "1"
            categories.append([str(fy), p.atena_no, "1", tax])
    files.append(_write(tmp_path / "03-categories.csv", residents.CATEGORY_FEED_HEADER, categories))
    reports = residents.import_feed_files(files, stdout=None, actor="test")
    assert all(not r.errors for r in reports), [str(e) for r in reports for e in r.errors]
    # History: HANAKO had a mammogram last year (biennial: not eligible this year, still in the
    # population); TARO had the once-in-a-lifetime hepatitis test.
    history = []
    if HANAKO in people:
        history.append(screening.ExamFact(HANAKO.atena_no, "breast", "mammography",
                                          date(2024, 6, 10), "individual"))  # fmt: skip
    if TARO in people:
        history.append(screening.ExamFact(TARO.atena_no, "hepatitis", "hepatitis_test",
                                          date(2019, 9, 1), "individual"))  # fmt: skip
    screening.record_exam_history(history, actor="test")
