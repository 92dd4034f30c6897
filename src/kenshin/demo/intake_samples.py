"""A clinic's result file for the demo city, to try the intake with (結果ファイル取込).

Why: staff trying Kenshin should be able to take in a realistic monthly file at once — real
demo residents with their FY2026 受診券番号, CP932 as most clinic systems write it, and the
mistakes files really carry: a few rows with a value outside the vocabulary, an impossible
date, a 受診日 outside the contract year, and a few whose birth date was mistyped so the
match waits in quarantine. Deterministic from the seed, like the rest of the demo city.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date
from pathlib import Path

from kenshin.core.fiscal import fy_end_age
from kenshin.intake.layout import COLUMNS, header_row
from kenshin.residents import services as residents
from kenshin.screening import services as screening

FISCAL_YEAR = 2026
INSTITUTION = "3410000001"  # デモの医療機関（呉中央クリニック）
ROWS = 300


def _row(p: dict, voucher: str, rng: random.Random, n: int) -> dict[str, str]:
    day = date(2026, 11, 2 + n % 18)
    lung = fy_end_age(p["birth_date"], FISCAL_YEAR) >= 40 and n % 3 == 0
    values = {
        "voucher_no": voucher, "name_kana": p["name_kana"], "sex": str(p["sex"]),
        "birth_date": p["birth_date"].isoformat(), "exam_date": day.isoformat(),
        "institution_code": INSTITUTION, "setting": "1",
    }  # fmt: skip
    if lung:
        judgement = rng.choices(["B", "C", "D2", "E1"], [80, 14, 5, 1])[0]
        values.update(method="胸部エックス線検査", judgement=judgement,
                      smoking_index=str(rng.choice([0, 0, 200, 400, 700])))  # fmt: skip
    else:
        day2 = "陽性" if rng.random() < 0.06 else "陰性"
        values.update(method="便潜血検査（免疫法・2日法）", day1="陰性", day2=day2)
    return values


def write_result_file(path: Path, seed: int = 1) -> int:
    """Write the sample file (CP932) and return how many rows it has."""
    rng = random.Random(f"kenshin-demo-intake:{seed}")  # noqa: S311  # nosec B311 - synthetic data
    people = [p for p in residents.register_as_of(date(2026, 11, 1))
              if fy_end_age(p["birth_date"], FISCAL_YEAR) >= 40]  # fmt: skip
    vouchers = screening.vouchers_for([p["atena_no"] for p in people], FISCAL_YEAR)
    taken = {(e.atena_no, e.method) for e in screening.exams_on_record(vouchers, FISCAL_YEAR)}
    chosen = [p for p in people if p["atena_no"] in vouchers
              and (p["atena_no"], "fecal_occult_blood") not in taken
              and (p["atena_no"], "chest_xray") not in taken]  # fmt: skip
    rng.shuffle(chosen)
    rows = [_row(p, vouchers[p["atena_no"]], rng, n) for n, p in enumerate(chosen[:ROWS])]

    # The mistakes of a real month: each kind twice, at fixed places (fewer in a small city).
    def at(*places: int) -> list[int]:
        return [n for n in places if n < len(rows)]

    for n in at(10, 110):
        rows[n]["exam_date"] = "2026-11-31"  # no such day
    for n in at(20, 120):
        rows[n]["day1" if "day1" in rows[n] else "judgement"] = "要再検"  # not in the vocabulary
    for n in at(30, 130):
        rows[n]["exam_date"] = "2026-03-20"  # the previous fiscal year
    for n in at(40, 140):
        b = date.fromisoformat(rows[n]["birth_date"])
        rows[n]["birth_date"] = b.replace(day=28 if b.day != 28 else 27).isoformat()  # mistyped
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header_row())
    for row in rows:
        writer.writerow([row.get(c.key, "") for c in COLUMNS])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode("cp932", "replace"))
    return len(rows)
