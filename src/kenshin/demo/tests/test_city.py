"""The synthetic demo city: format, determinism, consistency and realism (no database)."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
import unicodedata
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from kenshin.demo.city import generate_city

# Spelled out here (not imported) so that a drift from docs/formats/resident-feed.md shows.
RESIDENT_HEADER = [
    "異動区分", "異動日", "届出日", "宛名番号", "氏名", "氏名カナ", "性別", "生年月日",
    "郵便番号", "住所", "方書", "電話番号", "世帯番号", "続柄", "世帯主氏名", "住民状態",
    "個人番号",
]  # fmt: skip
FISCAL_HEADER = ["年度", "宛名番号", "保険区分", "課税区分"]
BOM = b"\xef\xbb\xbf"
END = date(2026, 10, 31)
KANA = re.compile(r"[\u30a1-\u30fa\u30fc]+ [\u30a1-\u30fa\u30fc]+")
HARD = ("髙橋", "山﨑", "渡邉", "𠮷田", "齋藤", "濵田")


def read(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    if raw.startswith(BOM):
        text = raw[3:].decode("utf-8")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp932")
    return list(csv.reader(io.StringIO(text, newline="")))


def digest(paths: list[Path]) -> list[tuple[str, str]]:
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_city(tmp_path_factory.mktemp("small"), residents=500, seed=7)


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generate_city(tmp_path_factory.mktemp("town"), residents=5000, seed=1)


def test_same_arguments_give_byte_identical_files(small: list[Path], tmp_path: Path) -> None:
    again = generate_city(tmp_path / "again", residents=500, seed=7)
    assert digest(again) == digest(small)
    other = generate_city(tmp_path / "other", residents=500, seed=8)
    assert digest(other)[0] != digest(small)[0]


def test_files_and_import_order(small: list[Path]) -> None:
    names = [p.name for p in small]
    assert names[0] == "01-resident-full-20230401.csv"
    diffs = [n for n in names if n.startswith("02-")]
    assert diffs[0] == "02-resident-diff-202304.csv"
    assert diffs[-1] == "02-resident-diff-202610.csv"
    assert len(diffs) == 43
    assert names[-4:] == [f"03-fiscal-categories-FY{y}.csv" for y in (2023, 2024, 2025, 2026)]
    assert names == sorted(names)  # sorting by name gives the import order too


def test_headers_are_exact(small: list[Path]) -> None:
    for path in small:
        expected = FISCAL_HEADER if path.name.startswith("03-") else RESIDENT_HEADER
        assert read(path)[0] == expected, path.name


def test_full_load(town: list[Path]) -> None:
    rows = read(town[0])[1:]
    assert {r[0] for r in rows} == {"00"}
    assert {(r[1], r[2]) for r in rows} == {("2023-04-01", "2023-04-01")}
    ids = [r[3] for r in rows]
    assert len(ids) == len(set(ids))
    assert all(len(i) == 10 and i.isdigit() for i in ids)
    residents = [r for r in rows if r[15] == "1"]
    assert len(residents) == 5000
    non_resident = [r for r in rows if r[15] == "4"]
    assert 10 <= len(non_resident) <= 40  # about 0.5 %
    assert town[0].read_bytes().startswith(BOM)


def test_most_persons_carry_one_valid_synthetic_mynumber_of_their_own(town: list[Path]) -> None:
    from kenshin.core.mynumber import is_valid

    numbers: dict[str, str] = {}
    for path in town:
        if path.name.startswith("03-"):
            continue
        for row in read(path)[1:]:
            number = numbers.setdefault(row[3], row[16])
            assert number == row[16], "a person's number changed between files"
    given = [n for n in numbers.values() if n]
    assert 0.93 < len(given) / len(numbers) < 0.97
    assert all(is_valid(n) for n in given)
    assert len(set(given)) == len(given)


def test_age_pyramid_is_that_of_an_ageing_city(town: list[Path]) -> None:
    base = date(2023, 4, 1)
    residents = [r for r in read(town[0])[1:] if r[15] == "1"]
    ages = []
    for r in residents:
        b = date.fromisoformat(r[7])
        ages.append(base.year - b.year - ((base.month, base.day) < (b.month, b.day)))
    share_65 = sum(a >= 65 for a in ages) / len(ages)
    assert 0.30 <= share_65 <= 0.40
    assert max(ages) <= 105
    women_80 = sum(1 for r, a in zip(residents, ages, strict=True) if a >= 80 and r[6] == "2")
    men_80 = sum(1 for r, a in zip(residents, ages, strict=True) if a >= 80 and r[6] == "1")
    assert women_80 > 1.4 * men_80


def test_names_and_kana(town: list[Path]) -> None:
    variants = 0
    for path in town[:-4]:
        for i, r in enumerate(read(path)[1:]):
            name, kana = r[4], r[5]
            assert KANA.fullmatch(unicodedata.normalize("NFKC", kana)), kana
            clean = "\u3000" in name and " " not in name and "\u3000" in kana
            if not clean:
                variants += 1
                assert path is not town[0] or i >= 100, "the first 100 rows stay clean"
                # Deliberate variants: a half-width space, or the whole kana half-width.
                assert " " in name or all(c == " " or "\uff61" <= c <= "\uff9f" for c in kana)
    assert variants > 0


def test_hard_names_occur(town: list[Path]) -> None:
    rows = read(town[0])[1:]
    hard = [r for r in rows if r[4].startswith(HARD)]
    assert hard
    readings = {"髙橋": "タカハシ", "山﨑": "ヤマサキ", "渡邉": "ワタナベ", "𠮷田": "ヨシダ"}
    for r in hard:
        surname = r[4][:2]
        if surname in readings and "\u3000" in r[5]:
            assert r[5].startswith(readings[surname])


def test_households_are_consistent(town: list[Path]) -> None:
    households: dict[str, list[list[str]]] = defaultdict(list)
    for r in read(town[0])[1:]:
        households[r[12]].append(r)
    sizes = [len(m) for m in households.values()]
    assert max(sizes) <= 6
    assert sum(s == 1 for s in sizes) / len(sizes) > 0.25  # many people live alone
    for members in households.values():
        heads = [m for m in members if m[13] == "世帯主"]
        assert len(heads) == 1
        head_name = heads[0][4].replace(" ", "\u3000")
        for m in members:
            assert m[14] == head_name
            assert (m[8], m[9], m[10]) == (heads[0][8], heads[0][9], heads[0][10])
        surnames = {m[4].replace(" ", "\u3000").split("\u3000")[0] for m in members
                    if m[13] in ("世帯主", "妻", "子")}  # fmt: skip
        assert len(surnames) == 1  # a family shares the surname
        head_birth = heads[0][7]
        children = sorted(date.fromisoformat(m[7]).toordinal() for m in members if m[13] == "子")
        for m in members:
            if m[13] == "子":
                assert m[7] > head_birth  # children are younger than the head
        # No twins are made, so siblings are born at least ~10 months apart.
        assert all(b - a >= 300 for a, b in itertools.pairwise(children))


def test_every_change_refers_to_a_known_person(small: list[Path]) -> None:
    status = {r[3]: r[15] for r in read(small[0])[1:]}
    seen_codes = set()
    for path in small[1:-4]:
        month = path.stem.rsplit("-", 1)[1]
        rows = read(path)[1:]
        assert [(r[1], r[2]) for r in rows] == sorted((r[1], r[2]) for r in rows)
        for r in rows:
            code, eff, receipt, atena = r[0], r[1], r[2], r[3]
            seen_codes.add(code)
            assert eff.replace("-", "")[:6] == month
            assert eff <= receipt <= END.isoformat()
            if code == "11":
                assert atena not in status
                assert eff == r[7]
                assert r[15] == "1"
                assert (
                    date.fromisoformat(receipt).toordinal() - date.fromisoformat(eff).toordinal()
                    <= 14
                )
            elif code == "10":
                assert status.get(atena) in (None, "2", "4")
                assert r[15] == "1"
            else:
                assert status.get(atena) == "1", (path.name, r)
            if code == "20":
                assert r[15] == "2"
            if code == "21":
                assert r[15] == "3"
                assert (
                    date.fromisoformat(receipt).toordinal() - date.fromisoformat(eff).toordinal()
                    <= 7
                )
            status[atena] = r[15]
    assert {"10", "11", "20", "21", "30", "31", "32"} <= seen_codes


def test_encodings(small: list[Path]) -> None:
    diffs = [p for p in small if p.name.startswith("02-")]
    for n, path in enumerate(diffs, start=1):
        raw = path.read_bytes()
        assert not raw.startswith(BOM)
        if n % 5 == 0:
            raw.decode("cp932")
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8-sig")
            assert b"\r\n" in raw
        else:
            raw.decode("utf-8")


def test_fiscal_categories(small: list[Path]) -> None:
    full = {r[3]: r for r in read(small[0])[1:]}
    known = {r[3] for path in small[:-4] for r in read(path)[1:]}
    counts = {"2": 0, "3": 0}
    for path in small[-4:]:
        year = path.stem.rsplit("FY", 1)[1]
        rows = read(path)[1:]
        assert rows
        for fy, atena, insurance, tax in rows:
            assert fy == year
            assert atena in known
            assert insurance in ("1", "2", "3") and tax in ("1", "2", "3")
            if tax == "3":
                assert insurance == "3"  # 生活保護: neither 国保 nor 後期高齢
            counts[tax] = counts.get(tax, 0) + 1
    fy2023 = read(small[-4])[1:]
    assert len(fy2023) == sum(1 for r in full.values() if r[15] == "1")
    for _, atena, insurance, tax in fy2023:
        birth = date.fromisoformat(full[atena][7])
        age = 2023 - birth.year - ((4, 1) < (birth.month, birth.day))
        if age >= 75 and tax != "3":
            assert insurance == "2"
        if age < 75:
            assert insurance != "2"
    assert counts["2"] > 0


def test_command_writes_files_without_importing(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "demo_city",
        "--residents", "300",
        "--seed", "2",
        "--out", str(tmp_path),
        "--end-date", "2023-07-31",
        "--no-import",
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "住民 300 人の街を生成しています" in text
    assert "取り込みは省きました" in text
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "01-resident-full-20230401.csv"
    assert "02-resident-diff-202307.csv" in names
    assert "03-fiscal-categories-FY2023.csv" in names


def test_command_refuses_to_import_future_dates(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="未来"):
        call_command("demo_city", "--residents", "10", "--out", str(tmp_path),
                     "--end-date", "2999-12-31", stdout=io.StringIO())  # fmt: skip
    assert not list(tmp_path.iterdir())  # refused before writing anything
