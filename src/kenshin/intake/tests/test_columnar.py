"""The columnar fast path stages exactly what the row-by-row path stages.

intake/columnar.py decides which rows are clean and stages them from frames; every other row
goes through the row path. These tests stage the same files both ways (settings.INTAKE_COLUMNAR
off, then on) and compare every staged row field by field, with the batch's counts: files
generated from a register built for the purpose (twins, kana variants, a person who died, one
who moved away), every row spoiled at random in one of the ways clinics spoil them, over many
seeds, before and after a first batch is committed (so that exams on record, corrections and
used vouchers are in play). Each file also checks that the fast path did take rows, so the
comparison is never between two runs of the row path.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kenshin.core.fiscal import fy_end_age
from kenshin.core.wareki import to_wareki, to_wareki_short
from kenshin.intake import actions, columnar, pipeline, rules
from kenshin.intake.models import CommitMode, StagedFrame
from kenshin.intake.tests.helpers import INSTITUTION, csv_bytes, upload
from kenshin.programs import services as programs
from kenshin.screening import services as screening
from kenshin.screening.models import Exam
from kenshin.screening.tests.town import Person, import_town

pytestmark = pytest.mark.django_db

FIELDS = ("row_no", "status", "atena_no", "method", "exam_id", "fact", "diff", "raw", "problems",
          "flags", "candidates", *pipeline.EXAM_FIELDS)  # fmt: skip

# A register with the people matching gets wrong: twins (same kana, same birth date), kana with
# ヴ, small kana, long vowels, a name in hiragana, a man and women of every age band.
PEOPLE = [
    Person("2000000001", 1, date(1960, 1, 15), "試験　太郎", "シケン　タロウ"),
    Person("2000000002", 1, date(1960, 1, 15), "試験　太朗", "シケン　タロウ"),  # twin of 01
    Person("2000000003", 2, date(1975, 4, 2), "試験　花子", "シケン　ハナコ"),
    Person("2000000004", 2, date(1985, 2, 28), "ヴィオラ　翔子", "ヴィオラ　ショウコ"),
    Person("2000000005", 2, date(1999, 12, 31), "試験　ちゃこ", "シケン　チャコ"),
    Person("2000000006", 1, date(1950, 3, 3), "試験　一郎", "シケン　イチロウ"),
    Person("2000000007", 2, date(1965, 7, 7), "試験　由美", "シケン　ユーミ"),
    Person("2000000008", 1, date(1980, 2, 29), "試験　健", "シケン　ケン"),
    Person("2000000009", 2, date(2003, 5, 5), "試験　美咲", "シケン　ミサキ"),
    Person("2000000010", 2, date(1944, 11, 3), "試験　トメ", "シケン　トメ"),
    Person("2000000011", 1, date(1990, 6, 6), "しけん　ひろし", "しけん　ひろし"),  # hiragana
    Person("2000000012", 2, date(1955, 9, 9), "試験　京子", "シケン　キョウコ"),
]
VOUCHERED = [p.atena_no for p in PEOPLE]
# (method, programme, results as one clinic sends them: codes or labels)
METHODS = [
    ("fecal_occult_blood", "colorectal", [{"day1": "陰性", "day2": "negative"},
                                          {"day1": "陽性", "day2": "陰性"}]),
    ("chest_xray", "lung", [{"judgement": "B"}, {"judgement": "E1"}, {"judgement": "D2"}]),
    ("gastric_endoscopy", "gastric", [{"judgement": "no_findings"},
                                      {"judgement": "suspected_cancer"}]),
    ("mammography", "breast", [{"category": "1"}, {"category": "3"}]),
    ("cytology", "cervical", [{"adequacy": "適正", "bethesda": "NILM"},
                              {"adequacy": "adequate", "bethesda": "ASC-US"}]),
    ("hpv_primary", "cervical", [{"hpv": "陰性"},
                                 {"hpv": "positive", "triage_adequacy": "adequate",
                                  "triage": "NILM"}]),
    ("periodontal_exam", "periodontal", [{"judgement": "normal"}, {"judgement": "seiken"}]),
    ("dxa", "osteoporosis", [{"judgement": "guidance"}]),
    ("hepatitis_test", "hepatitis", [{"hbs": "negative", "hcv": "unlikely"}]),
]  # fmt: skip
HALF = str.maketrans({unicodedata.normalize("NFKC", chr(c)): chr(c) for c in range(0xFF66, 0xFF9E)})


def _half(kana: str) -> str:
    """Half-width katakana as a clinic's old system writes them (voiced marks split)."""
    out = []
    for ch in kana:
        if ch == "\u3000":
            out.append(" ")
            continue
        base = unicodedata.normalize("NFD", ch)
        mark = {"\u3099": "ﾞ", "\u309a": "ﾟ"}.get(base[1:], "")
        out.append(base[0].translate(HALF) + mark)
    return "".join(out)


SPOILERS = [
    ("full-width voucher", lambda r, g: r.update(voucher_no=r["voucher_no"].translate(
        str.maketrans("0123456789", "０１２３４５６７８９")))),
    ("one digit off", lambda r, g: r.update(voucher_no=r["voucher_no"][:-1]
                                            + str((int(r["voucher_no"][-1]) + 1) % 10))),
    ("no voucher, 宛名番号", lambda r, g: r.update(voucher_no="", atena_no=g["atena"])),
    ("both keys", lambda r, g: r.update(atena_no=g["atena"])),
    ("other person's 宛名番号", lambda r, g: r.update(atena_no=g["other"])),
    ("birth a day off", lambda r, g: r.update(birth_date=(g["birth"] + timedelta(1)).isoformat())),
    ("twin's birth", lambda r, g: r.update(birth_date="1960-01-15")),
    ("wrong sex", lambda r, g: r.update(sex="1" if r["sex"] == "2" else "2")),
    ("sex as 女", lambda r, g: r.update(sex={"1": "男", "2": "女"}.get(r["sex"], r["sex"]))),
    ("kana half-width", lambda r, g: r.update(name_kana=_half(r["name_kana"]))),
    ("kana without space", lambda r, g: r.update(name_kana=r["name_kana"].replace("\u3000", ""))),
    ("kana ブ for ヴ", lambda r, g: r.update(name_kana=r["name_kana"].replace("ヴ", "ブ"))),
    ("kana large ヤ", lambda r, g: r.update(name_kana=r["name_kana"].replace("ャ", "ヤ")
                                            .replace("ョ", "ヨ"))),
    ("kana other name", lambda r, g: r.update(name_kana="ベツジン　ハナコ")),
    ("kana in hiragana", lambda r, g: r.update(name_kana="しけん　たろう")),
    ("kana blank", lambda r, g: r.update(name_kana="")),
    ("和暦 dates", lambda r, g: r.update(birth_date=to_wareki(g["birth"]),
                                         exam_date=to_wareki_short(g["exam"]))),
    ("slash date", lambda r, g: r.update(exam_date=g["exam"].strftime("%Y/%m/%d"))),
    ("impossible date", lambda r, g: r.update(exam_date="2025-02-30")),
    ("exam out of the year", lambda r, g: r.update(exam_date="2025-03-31")),
    ("exam in the future", lambda r, g: r.update(exam_date="2026-03-31")),
    ("spaces around", lambda r, g: r.update(setting=" 1 ", institution_code=f" {INSTITUTION}")),
    ("setting as 個別", lambda r, g: r.update(setting="個別")),
    ("group setting", lambda r, g: r.update(setting="2", place="第1会場")),
    ("bad setting", lambda r, g: r.update(setting="3")),
    ("programme name", lambda r, g: r.update(programme="大腸がん検診")),
    ("programme wrong", lambda r, g: r.update(programme="breast")),
    ("method by name", lambda r, g: r.update(method="便潜血検査")),
    ("unknown method", lambda r, g: r.update(method="xray")),
    ("bad result", lambda r, g: r.update(**{next(k for k in r if k in g["items"]): "X9"})),
    ("missing result", lambda r, g: r.update(**{next(k for k in r if k in g["items"]): ""})),
    ("other method's item", lambda r, g: r.update(category="1" if "category" not in r else "",
                                                  judgement="B" if "judgement" not in r else "")),
    ("full-width result", lambda r, g: r.update(category="１")),
    ("smoking index", lambda r, g: r.update(smoking_index=g["rng"].choice(["600", "０", "12345",
                                                                           "abc", "9999"]))),
    ("formula place", lambda r, g: r.update(place="=1+1", setting="2")),
    ("long place", lambda r, g: r.update(place="会" * 101)),
    ("formula kana", lambda r, g: r.update(name_kana="-シケン")),
    ("coupon", lambda r, g: r.update(coupon_no="1234567")),
    ("billing month", lambda r, g: r.update(billing_month="令和7年6月")),
    ("billing category", lambda r, g: r.update(billing_category="01")),
    ("complication", lambda r, g: r.update(complication="なし")),
    ("seiken report", lambda r, g: r.update(seiken_date="2025-12-01", seiken_result="cancer")),
    ("follow-up flag", lambda r, g: r.update(hpv_follow_up="1")),
    ("follow-up on other", lambda r, g: r.update(hpv_follow_up="はい")),
    ("another clinic", lambda r, g: r.update(institution_code="3410000099")),
    ("9-digit clinic", lambda r, g: r.update(institution_code="341000001")),
    ("便潜血判定 only", lambda r, g: r.update(day1="", day2="", overall="陽性")),
    ("便潜血判定 and days", lambda r, g: r.update(overall=g["rng"].choice(["陰性", "positive"]))),
    ("便潜血判定, one day", lambda r, g: r.update(day2="", overall="negative")),
]  # fmt: skip


def _town(tmp_path: Any) -> None:
    programs.load_shipped()
    import_town(tmp_path, PEOPLE)
    screening.issue_vouchers("test", 2025, VOUCHERED)


def _file(
    seed: int, spoil_share: float, rows: int = 160, encoding: str | None = None
) -> tuple[bytes, int]:
    """A clinic's file of ``rows`` rows for the register, ``spoil_share`` of them spoiled (and
    some rows repeated, some vouchers reused): deterministic from ``seed``."""
    rng = random.Random(seed)
    vouchers = screening.vouchers_for(VOUCHERED, 2025)
    ctx = pipeline.build_context(2025)

    def eligible(person: Person, method: str) -> bool:
        rule = ctx.methods[method]
        age = fy_end_age(person.birth, 2025)
        return rule.sex in ("any", {1: "male", 2: "female"}[person.sex]) and (
            rule.min_age <= age <= (rule.max_age or 999)
        )

    # Mostly one exam per person and programme, as a month's file has; some rows are for
    # people outside the method's band, some repeat a programme.
    pairs = [(p, m) for p in PEOPLE for m in METHODS if eligible(p, m[0])]
    rng.shuffle(pairs)
    taken: set[tuple[str, str]] = set()
    picks = []
    for person, m in pairs:
        if (person.atena_no, m[1]) not in taken:
            taken.add((person.atena_no, m[1]))
            picks.append((person, m))
    out: list[dict[str, str]] = []
    spoiled = 0
    for n in range(rows):
        if n < len(picks) and (not spoil_share or rng.random() > 0.1):
            person, (method, _programme, results) = picks[n]
        else:
            person = rng.choice(PEOPLE)
            method, _programme, results = rng.choice(METHODS)
        exam = date(2025, 4, 1) + timedelta(days=rng.randint(0, 230))
        row = {
            "voucher_no": vouchers[person.atena_no], "name_kana": person.kana,
            "birth_date": person.birth.isoformat(), "sex": str(person.sex),
            "exam_date": exam.isoformat(), "institution_code": INSTITUTION, "setting": "1",
            "method": method, **rng.choice(results),
        }  # fmt: skip
        if rng.random() < spoil_share:
            spoiled += 1
            other = rng.choice([p for p in PEOPLE if p is not person])
            context = {"atena": person.atena_no, "other": other.atena_no, "birth": person.birth,
                       "exam": exam, "rng": rng, "items": set(row) - {
                           "voucher_no", "name_kana", "birth_date", "sex", "exam_date",
                           "institution_code", "setting", "method"}}  # fmt: skip
            for _ in range(rng.choice((1, 1, 2))):
                _name, spoil = rng.choice(SPOILERS)
                spoil(row, context)
        out.append(row)
        if not spoil_share:
            continue
        if rng.random() < 0.05:
            out.append(dict(row))  # the same exam twice
        if rng.random() < 0.03:
            twin = dict(row, exam_date=(exam + timedelta(days=1)).isoformat(),
                        institution_code="3410000002")  # fmt: skip
            out.append(twin)  # the same voucher at another clinic
    encoding = encoding or rng.choice(["utf-8", "utf-8-sig", "cp932"])
    return csv_bytes(out, encoding=encoding), spoiled


def _snapshot(batch: Any) -> tuple[dict[str, int], list[dict[str, Any]]]:
    batch.refresh_from_db()
    rows = [{f: getattr(r, f) for f in FIELDS} for r in pipeline.staged_rows(batch)]
    return batch.counts, rows


def _both_ways(settings: Any, data: bytes, name: str) -> tuple[Any, int]:
    """Stage the file by the row path and by the fast path; the staged rows must be equal."""
    batch = upload(data, name=name)
    settings.INTAKE_COLUMNAR = False
    actions.stage_batch("uketsuke", batch.pk)
    by_rows = _snapshot(batch)
    settings.INTAKE_COLUMNAR = True
    actions.stage_batch("uketsuke", batch.pk)
    by_columns = _snapshot(batch)
    assert by_columns[0] == by_rows[0]
    for a, b in zip(by_columns[1], by_rows[1], strict=True):
        assert a == b, f"row {b['row_no']}: {a} != {b}"
    frame = StagedFrame.objects.filter(batch=batch).first()
    return batch, frame.rows if frame else 0


@pytest.mark.parametrize("seed", range(12))
def test_the_fast_path_stages_what_the_row_path_stages(seed, tmp_path, settings):
    settings.INTAKE_DIR = tmp_path / "intake"
    settings.INTAKE_APPROVAL_ROWS = 10**6
    _town(tmp_path)
    data, _spoiled = _file(seed, spoil_share=0.6)
    batch, fast = _both_ways(settings, data, f"first-{seed}.csv")
    assert fast >= 5, "the fast path took too few rows for the comparison to mean anything"
    # With that batch on record: the same people again (unchanged, corrected, used vouchers).
    actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    again, _ = _file(seed + 1000, spoil_share=0.3)
    _both_ways(settings, again, f"second-{seed}.csv")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(3))
def test_the_look_up_on_a_second_connection_stages_the_same(seed, tmp_path, settings, monkeypatch):
    """Staged outside a transaction (as the application stages), the fast path asks for the
    vouchers and holders on a second connection while it checks the cells: it stages what
    the row path stages, before and after a first batch is on record."""
    settings.INTAKE_DIR = tmp_path / "intake"
    settings.INTAKE_APPROVAL_ROWS = 10**6
    _town(tmp_path)
    apart = []
    own = columnar._on_own_connection

    def spy(*args: Any) -> Any:
        apart.append(True)
        return own(*args)

    monkeypatch.setattr(columnar, "_on_own_connection", spy)
    data, _spoiled = _file(seed, spoil_share=0.6)
    batch, fast = _both_ways(settings, data, f"first-{seed}.csv")
    assert fast >= 5 and apart == [True]
    actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    again, _ = _file(seed + 1000, spoil_share=0.3)
    _both_ways(settings, again, f"second-{seed}.csv")
    assert apart == [True, True]


def test_a_clean_file_is_staged_by_the_fast_path_and_commits(tmp_path, settings):
    settings.INTAKE_DIR = tmp_path / "intake"
    settings.INTAKE_APPROVAL_ROWS = 10**6
    _town(tmp_path)
    data, spoiled = _file(7, spoil_share=0.0, rows=30)
    batch, fast = _both_ways(settings, data, "clean.csv")
    assert spoiled == 0 and batch.counts["new"] == 30
    # Every row is new; the fast path takes all but the hiragana name's (the register holds it
    # in katakana, and only the row path folds hiragana).
    frame = columnar.staged_frame(batch)
    assert frame is not None and frame.height == fast
    slow = [r for r in pipeline.staged_rows(batch) if r.row_no not in set(frame["row_no"])]
    assert {r.atena_no for r in slow} <= {"2000000011"} and fast == 30 - len(slow) >= 25
    counts = actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    assert counts.written == batch.counts["new"]
    # Written from the frame: the exam carries what the row path would have written.
    for row in pipeline.frame_rows(frame):
        exam = Exam.objects.get(
            atena_no=row.atena_no, method=row.method, exam_date=row.exam_date,
            hpv_follow_up=row.hpv_follow_up,
        )  # fmt: skip
        for name in pipeline.EXAM_FIELDS:
            if name != "seiken":
                assert getattr(exam, name) == getattr(row, name), name


def _lines(seed: int, rows: int) -> list[str]:
    data, _ = _file(seed, spoil_share=0.0, rows=rows, encoding="utf-8")
    return data.decode("utf-8").split("\r\n")[: rows + 1]


def _set(line: str, header: str, column: str, value: str) -> str:
    cells = line.split(",")
    cells[header.split(",").index(column)] = value
    return ",".join(cells)


def test_text_that_looks_like_copys_null_stays_text(tmp_path, settings):
    """A clean row's 検診場所 of \\N (MySQL's NULL in a clinic's export) is text to keep; the
    commit's COPY once read it as NULL and refused the whole batch on PostgreSQL."""
    settings.INTAKE_DIR = tmp_path / "intake"
    _town(tmp_path)
    lines = _lines(5, 6)
    lines[1] = _set(lines[1], lines[0], "検診場所", "\\N")
    lines[2] = _set(lines[2], lines[0], "検診場所", "診療所")
    batch, fast = _both_ways(settings, "\r\n".join(lines).encode("utf-8"), "null.csv")
    assert fast == 6
    actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    places = set(Exam.objects.filter(fiscal_year=2025).values_list("place", flat=True))
    assert places == {"\\N", "診療所", ""}


def test_a_file_whose_rows_all_have_another_width_is_staged_as_errors(tmp_path, settings):
    settings.INTAKE_DIR = tmp_path / "intake"
    _town(tmp_path)
    lines = _lines(6, 5)
    shifted = [lines[0]] + [line + "," for line in lines[1:]]
    batch, fast = _both_ways(settings, "\r\n".join(shifted).encode("utf-8"), "wide.csv")
    assert fast == 0 and batch.counts["error"] == batch.counts["rows"] == 5


def test_rows_left_to_the_row_path_in_bulk_and_two_commits_in_one_transaction(tmp_path, settings):
    """Every row fills 請求月 (the row path checks it): the same staged rows both ways. Then
    two batches with clean rows committed in one transaction (the commit's temporary table)."""
    settings.INTAKE_DIR = tmp_path / "intake"
    settings.INTAKE_APPROVAL_ROWS = 10**6
    _town(tmp_path)
    lines = _lines(8, 20)
    monthly = [lines[0]] + [_set(line, lines[0], "請求月", "2025-06") for line in lines[1:11]]
    first, fast = _both_ways(settings, "\r\n".join(monthly).encode("utf-8"), "monthly.csv")
    assert fast == 0 and first.counts["new"] == 10
    rest = "\r\n".join([lines[0], *lines[11:]]).encode("utf-8")
    second, fast = _both_ways(settings, rest, "rest.csv")
    assert fast == second.counts["new"] == 10
    written = [actions.commit_batch("kakutei", b.pk, CommitMode.VALID_ONLY).written
               for b in (second, first)]  # fmt: skip
    assert written == [10, 10]


def test_rows_pages_list_the_fast_paths_new_rows(tmp_path, settings, monkeypatch):
    from kenshin.intake import services

    settings.INTAKE_DIR = tmp_path / "intake"
    monkeypatch.setattr(services, "PAGE_SIZE", 20)
    _town(tmp_path)
    data, _ = _file(3, spoil_share=0.0, rows=30)
    batch = actions.stage_batch("uketsuke", upload(data).pk)
    assert batch.counts["new"] == 30 and StagedFrame.objects.get(batch=batch).rows >= 25
    first, second = services.rows_page(batch, "new", 1), services.rows_page(batch, "new", 2)
    assert first.paginator.count == batch.counts["new"]
    shown = [r.row_no for r in first.object_list] + [r.row_no for r in second.object_list]
    assert shown == sorted(shown) and len(shown) == batch.counts["new"]
    assert {r.status for r in second.object_list} == {"new"}


# ------------------------------------------------------------------------------ kana

KATAKANA = [chr(c) for c in range(0x30A1, 0x30FB)] + ["ー", "\u3000", " "]


@hsettings(max_examples=400, deadline=None)
@given(st.text(alphabet=KATAKANA, min_size=1, max_size=12))
def test_kana_that_fold_alike_match_by_the_row_paths_rule(name):
    """kana_fold is never looser than rules.kana_matches, for the alphabet it is used on."""
    variants = [name, _half(name), name.replace("\u3000", ""), name.replace("\u3000", " "),
                unicodedata.normalize("NFKC", _half(name))]  # fmt: skip
    folded = pl.select(columnar.kana_fold(pl.lit(pl.Series(variants)))).to_series().to_list()
    for text, key in zip(variants, folded, strict=True):
        if key == folded[0]:
            assert rules.kana_matches(text, name), (text, name)
