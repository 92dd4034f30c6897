"""The other ways in: an Excel workbook in the Kenshin layout, a clinic's own layout through a
saved column profile, and the ``kenshin intake`` command — each ends in the same staged rows
and exams as the Kenshin CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path

import pytest
import xlsxwriter
from django.core.management import CommandError, call_command

from kenshin.core import clock
from kenshin.intake import actions, readers
from kenshin.intake.layout import COLUMNS, header_row
from kenshin.intake.models import BatchState, ColumnProfile, CommitMode, RowStatus
from kenshin.intake.pipeline import staged_rows
from kenshin.intake.tests.helpers import INSTITUTION, csv_bytes, exam_row, staged, write
from kenshin.screening.models import Exam
from kenshin.screening.tests.town import HANAKO, KEN, TARO
from kenshin.screening.vouchers import vouchers_of

pytestmark = pytest.mark.django_db
TODAY = date(2025, 11, 20)
COMPARED = ("atena_no", "programme", "method", "exam_date", "setting", "institution_code",
            "results", "voucher_no", "place", "complication", "smoking_index", "age_at_exam",
            "fy_end_age", "needs_seiken")  # fmt: skip


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(TODAY):
        yield


def voucher(person) -> str:
    return vouchers_of(person.atena_no)[0].voucher_no


def fobt(person, **extra: str) -> dict[str, str]:
    values = {"voucher_no": voucher(person), "name_kana": person.kana,
              "birth_date": person.birth.isoformat(), "sex": str(person.sex),
              "method": "fecal_occult_blood", "day1": "陰性", "day2": "陰性"}  # fmt: skip
    return exam_row(**{**values, **extra})


def exams() -> list[dict[str, object]]:
    return sorted(
        (dict(zip(COMPARED, values, strict=True))
         for values in Exam.objects.filter(method="fecal_occult_blood").values_list(*COMPARED)),
        key=lambda e: (e["atena_no"], e["exam_date"]),
    )  # fmt: skip


# ------------------------------------------------------------------------------ Excel


def rows_for_excel() -> list[dict[str, object]]:
    """The rows as Excel holds them: numbers as numbers, dates as dates."""
    return [
        {"voucher_no": int(voucher(KEN)), "name_kana": KEN.kana, "birth_date": KEN.birth,
         "sex": 1.0, "exam_date": date(2025, 11, 10), "institution_code": int(INSTITUTION),
         "setting": 1.0, "place": "市民会館", "method": "fecal_occult_blood", "day1": "陰性",
         "day2": "陰性"},
        {"voucher_no": int(voucher(TARO)), "name_kana": TARO.kana,
         "birth_date": datetime(1960, 1, 15), "sex": 1, "exam_date": datetime(2025, 11, 11),
         "institution_code": int(INSTITUTION), "setting": 2, "place": "=1+1",
         "method": "便潜血検査（免疫法・2日法）", "day1": "陰性", "day2": "陽性",
         "complication": "なし"},
        {"voucher_no": int(voucher(HANAKO)), "name_kana": HANAKO.kana,
         "birth_date": "S55.6.1", "sex": "女", "exam_date": "令和7年11月12日",
         "institution_code": int(INSTITUTION), "setting": "個別",
         "method": "fecal_occult_blood", "day1": "negative", "day2": "negative"},
    ]  # fmt: skip


def as_csv_row(row: dict[str, object]) -> dict[str, str]:
    """The same row as the Kenshin CSV writes it (numbers without .0, ISO dates)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = value.isoformat() if isinstance(value, date) else str(value)
    return out


def kenshin_workbook(rows: list[dict[str, object]]) -> bytes:
    """The Kenshin layout as a clinic's Excel has it: real dates and numbers, an empty row in
    the middle, and a second sheet (notes) that the intake does not read."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    day = book.add_format({"num_format": "yyyy/m/d"})
    sheet = book.add_worksheet("結果")
    sheet.write_row(0, 0, header_row())
    excel_row = 1
    for i, row in enumerate(rows):
        if i == 1:
            excel_row += 1  # row 3 is left empty
        for col, column in enumerate(COLUMNS):
            value = row.get(column.key)
            if value is None:
                continue
            if isinstance(value, date):
                value = value if isinstance(value, datetime) else datetime(*value.timetuple()[:3])
                sheet.write_datetime(excel_row, col, value, day)
            elif isinstance(value, str):
                sheet.write_string(excel_row, col, value)  # write() would make "=1+1" a formula
            else:
                sheet.write_number(excel_row, col, value)
        excel_row += 1
    notes = book.add_worksheet("メモ")
    notes.write_row(0, 0, ["受診券番号", "備考"])
    notes.write_row(1, 0, ["9999999999", "=SUM(1,2)"])
    book.close()
    return buf.getvalue()


def test_workbook_reads_as_the_csv_would(town, tmp_path):
    rows = rows_for_excel()
    source = readers.open_file(write(tmp_path, "kekka.xlsx", kenshin_workbook(rows)))
    read = list(source.rows)
    assert source.kind == "xlsx" and source.header == header_row()
    assert [r.row_no for r in read] == [2, 4, 5]  # the empty row 3 skipped, numbers kept
    ken, taro, hanako = (r.cells for r in read)
    assert ken["voucher_no"] == voucher(KEN) and len(ken["voucher_no"]) == 10
    assert ken["institution_code"] == INSTITUTION
    assert ken["sex"] == "1" and ken["setting"] == "1"  # 1.0 reads as "1"
    assert ken["birth_date"] == "1975-04-02" and ken["exam_date"] == "2025-11-10"
    assert taro["birth_date"] == "1960-01-15" and taro["exam_date"] == "2025-11-11"
    assert taro["place"] == "=1+1"  # a formula-like text stays text
    assert hanako["birth_date"] == "S55.6.1" and hanako["exam_date"] == "令和7年11月12日"
    assert "9999999999" not in str([r.raw for r in read])  # the second sheet is not read


def test_workbook_stages_and_commits_the_same_exams_as_the_csv(town):
    rows = rows_for_excel()
    book = actions.stage_batch("uketsuke", actions.receive_file(
        "uketsuke", io.BytesIO(kenshin_workbook(rows)), "kekka.xlsx", fiscal_year=2025).pk)  # fmt: skip
    assert book.state == BatchState.STAGED and book.kind == "xlsx" and book.encoding == ""
    assert book.counts["new"] == 3 and book.counts["error"] == 0 and book.counts["flagged"] == 1
    assert {r.row_no for r in staged_rows(book)} == {2, 4, 5}
    assert actions.commit_batch("kakutei", book.pk, CommitMode.ALL).written == 3
    from_excel = exams()
    taro = next(e for e in from_excel if e["atena_no"] == TARO.atena_no)
    assert taro["setting"] == "group" and taro["place"] == "=1+1"
    assert taro["needs_seiken"] and taro["results"] == {"day1": "negative", "day2": "positive"}
    assert {e["voucher_no"] for e in from_excel} == {voucher(p) for p in (KEN, TARO, HANAKO)}
    # The same rows as the Kenshin CSV: every row is already there, nothing differs.
    again = staged(csv_bytes([as_csv_row(r) for r in rows]))
    assert again.counts["unchanged"] == 3 and again.counts["new"] == 0, again.counts
    assert actions.commit_batch("kakutei", again.pk, CommitMode.ALL).written == 0
    assert exams() == from_excel


def test_workbook_gives_the_same_exams_as_the_csv_on_its_own(town):
    """CSV first this time: the workbook of the same rows then changes nothing."""
    rows = rows_for_excel()
    batch = staged(csv_bytes([as_csv_row(r) for r in rows]))
    actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    from_csv = exams()
    book = staged(kenshin_workbook(rows), name="kekka.xlsx")
    assert book.counts["unchanged"] == 3 and book.counts["new"] == 0, book.counts
    assert exams() == from_csv


def test_workbook_formula_cell_reads_its_saved_value_never_evaluated(town, tmp_path):
    """A formula in a workbook is read as the value Excel saved with it; nothing is evaluated
    (a formula-like text cell stays text and is flagged, as in the CSV)."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, header_row())
    at = [c.key for c in COLUMNS]
    for col, value in enumerate(fobt(KEN).get(k, "") for k in at):
        sheet.write_string(1, col, value)
    sheet.write_formula(1, at.index("complication"), '=HYPERLINK("http://evil.example/","なし")',
                        None, "なし")  # fmt: skip
    sheet.write_string(1, at.index("place"), "@SUM(A1)")
    book.close()
    batch = staged(buf.getvalue(), name="kekka.xlsx")
    [row] = staged_rows(batch)
    assert row.status == RowStatus.NEW
    assert row.complication == "なし" and row.place == "@SUM(A1)"
    assert [f["column"] for f in row.flags] == ["検診場所"]


def test_workbook_named_csv_is_read_as_a_workbook(town):
    book = staged(kenshin_workbook(rows_for_excel()), name="kekka.csv")
    assert book.state == BatchState.STAGED and book.kind == "xlsx" and book.counts["new"] == 3


def test_workbook_header_only_and_shifted_cells(town):
    empty = staged(kenshin_workbook([]), name="kara.xlsx")
    assert empty.state == BatchState.REFUSED and "データの行がありません" in empty.message
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, header_row())
    sheet.write_row(1, 0, [fobt(KEN).get(c.key, "") for c in COLUMNS])
    sheet.write_row(2, 0, [fobt(TARO).get(c.key, "") for c in COLUMNS] + ["はみ出し"])
    book.close()
    batch = staged(buf.getvalue(), name="zure.xlsx")
    rows = {r.row_no: r for r in staged_rows(batch)}
    assert rows[2].status == RowStatus.NEW
    assert rows[3].status == RowStatus.ERROR and "列の数" in rows[3].problems[0]["message"]


# ------------------------------------------------------------------------------ profiles

A_MAPPING = {"券番号": "voucher_no", "宛名": "atena_no", "カナ氏名": "name_kana",
             "誕生日": "birth_date", "性": "sex", "検診日": "exam_date",
             "機関番号": "institution_code", "方式": "setting", "検査": "method",
             "便1": "day1", "便2": "day2", "会場": "place"}  # fmt: skip
A_HEADER = ["券番号", "宛名", "カナ氏名", "誕生日", "性", "検診日", "機関番号", "方式", "検査",
            "便1", "便2", "会場", "備考", "担当医"]  # fmt: skip


def clinic_row(person, sex: str, **extra: str) -> list[str]:
    values = {"券番号": voucher(person), "宛名": "", "カナ氏名": person.kana,
              "誕生日": person.birth.strftime("%Y/%m/%d"), "性": sex, "検診日": "2025/11/10",
              "機関番号": INSTITUTION, "方式": "個別", "検査": "便潜血検査（免疫法・2日法）",
              "便1": "陰性", "便2": "陰性", "会場": "", "備考": "再検希望なし",
              "担当医": "試験医師"}  # fmt: skip
    values.update(extra)
    return [values[h] for h in A_HEADER]


def clinic_csv(*rows: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(A_HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode("cp932")


def test_profile_reads_a_clinics_own_layout(town):
    actions.save_profile("jimu", "A医院", A_MAPPING, values={"sex": {"M": "1", "F": "2"}})
    data = clinic_csv(clinic_row(KEN, "M"), clinic_row(HANAKO, "F", 便2="陽性"),
                      clinic_row(TARO, "X"))  # fmt: skip
    batch = staged(data, profile="A医院")
    assert batch.state == BatchState.STAGED and batch.profile == "A医院"
    assert batch.message == "読まなかった列: 備考、担当医"
    assert batch.header == A_HEADER
    assert batch.columns == [*A_MAPPING.values(), "", ""]
    rows = {r.row_no: r for r in staged_rows(batch)}
    assert rows[2].status == rows[3].status == RowStatus.NEW
    assert rows[2].atena_no == KEN.atena_no and rows[3].atena_no == HANAKO.atena_no
    assert rows[3].results == {"day1": "negative", "day2": "positive"}
    assert rows[3].exam_date.isoformat() == "2025-11-10" and rows[3].setting == "individual"
    # A value the profile does not rewrite is checked as it is: X is not a sex.
    assert rows[4].status == RowStatus.ERROR
    assert rows[4].problems[0] == {"column": "性別", "value": "X",
                                   "message": "性別は 1（男）か 2（女）です"}  # fmt: skip


def test_profile_file_missing_a_mapped_column_is_refused(town):
    actions.save_profile("jimu", "A医院", A_MAPPING)
    header = ["番号" if h == "券番号" else h for h in A_HEADER]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, clinic_row(KEN, "1")])
    batch = staged(buf.getvalue().encode("cp932"), profile="A医院")
    assert batch.state == BatchState.REFUSED
    assert batch.message.startswith("必要な列の見出しがありません: 受診券番号。")
    assert not staged_rows(batch)
    with pytest.raises(actions.IntakeError, match="列の対応表「B医院」はありません"):
        actions.receive_file("uketsuke", io.BytesIO(b"x"), "b.csv", fiscal_year=2025,
                             profile="B医院")  # fmt: skip


def test_save_profile_refuses_unknown_keys_and_doubles(town):
    with pytest.raises(actions.IntakeError, match="知らない項目があります: voucher"):
        actions.save_profile("jimu", "A医院", {"券番号": "voucher"})
    with pytest.raises(actions.IntakeError, match=r"同じ項目に二つの見出し.*voucher_no"):
        actions.save_profile("jimu", "A医院", {"券番号": "voucher_no", "受診券": "voucher_no"})
    with pytest.raises(actions.IntakeError, match="1〜60 文字"):
        actions.save_profile("jimu", " ", {"券番号": "voucher_no"})
    assert not ColumnProfile.objects.exists()
    # Saving again under the same name replaces the profile.
    actions.save_profile("jimu", "A医院", {"券番号": "voucher_no"})
    actions.save_profile("jimu", "A医院", A_MAPPING, description="二回目")
    profile = ColumnProfile.objects.get()
    assert profile.mapping == A_MAPPING and profile.description == "二回目"


# ------------------------------------------------------------------------------ the command


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("intake", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_cli_import_commit_and_error_file(town, tmp_path):
    data = csv_bytes([fobt(KEN), fobt(TARO, day1="たぶん陰性"), fobt(HANAKO, day2="陽性")])
    path = write(tmp_path, "kekka.csv", data)
    errors = tmp_path / "errors.csv"
    before = Exam.objects.count()
    # All or nothing: a row in error stops the commit, but the error file is written.
    with pytest.raises(CommandError, match="エラーまたは照合保留の行が 1 行あります"):
        run("import", str(path), "--fy", "2025", "--commit", "--errors", str(errors))
    assert Exam.objects.count() == before
    assert errors.is_file()
    errors.unlink()
    # The same file again (the same batch) with --valid-only: the correct rows go in.
    out = run("import", str(path), "--fy", "2025", "--commit", "--valid-only",
              "--errors", str(errors))  # fmt: skip
    assert "3 行のうち 新規 2、更新 0、変更なし 0、エラー 1、照合保留 0。" in out
    assert f"エラーファイル: {errors}" in out
    assert "確定しました。登録 2 件、訂正 0 件、取り込まなかった行 1 行。" in out
    assert Exam.objects.count() == before + 2
    assert Exam.objects.filter(atena_no=HANAKO.atena_no, method="fecal_occult_blood",
                               needs_seiken=True).exists()  # fmt: skip
    lines = list(csv.reader(io.StringIO(errors.read_bytes().decode("cp932"))))
    assert lines[0][: len(header_row())] == header_row() and lines[0][-1] == "取込エラー 内容"
    assert len(lines) == 2 and lines[1][-5] == "3" and "たぶん陰性" in lines[1]
    assert "便潜血1日目に使えない値です" in lines[1][-1]
    # Once more: the same bytes were committed, nothing changes.
    assert "確定済みです" in run("import", str(path), "--fy", "2025", "--commit")
    assert Exam.objects.count() == before + 2


def test_cli_import_clean_file_commits_all(town, tmp_path):
    path = write(tmp_path, "kekka.xlsx", kenshin_workbook(rows_for_excel()))
    errors = tmp_path / "errors.csv"
    out = run("import", str(path), "--fy", "2025", "--commit", "--errors", str(errors))
    assert "3 行のうち 新規 3" in out and "登録 3 件" in out
    assert not errors.exists()  # no error, no error file


def test_cli_import_refused_file_fails_with_the_reason(town, tmp_path):
    path = write(tmp_path, "kekka.csv", "\ufeff".encode() + "受診券番号\r\n".encode())
    with pytest.raises(CommandError, match="必要な列の見出しがありません"):
        run("import", str(path), "--fy", "2025")
    with pytest.raises(CommandError, match="ファイルがありません"):
        run("import", str(tmp_path / "none.csv"))


def test_cli_profile_save_and_list(town, tmp_path):
    toml = tmp_path / "a.toml"
    lines = ['description = "A医院の独自レイアウト"', "[columns]"]
    lines += [f'"{header}" = "{key}"' for header, key in A_MAPPING.items()]
    lines += ["[values.sex]", 'M = "1"', 'F = "2"']
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "対応表「A医院」を保存しました" in run("profile", "save", "A医院", str(toml))
    profile = ColumnProfile.objects.get(name="A医院")
    assert profile.mapping == A_MAPPING and profile.values == {"sex": {"M": "1", "F": "2"}}
    assert run("profile", "list").strip() == f"A医院\t{len(A_MAPPING)} 列\tA医院の独自レイアウト"
    # The saved profile reads the clinic's file through the command.
    path = write(tmp_path, "a.csv", clinic_csv(clinic_row(KEN, "M")))
    out = run("import", str(path), "--fy", "2025", "--profile", "A医院", "--commit")
    assert "読まなかった列: 備考、担当医" in out and "登録 1 件" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[columns]\n"券番号" = "voucher"\n', encoding="utf-8")
    with pytest.raises(CommandError, match="知らない項目があります"):
        run("profile", "save", "B医院", str(bad))
    bad.write_text("[columns\n", encoding="utf-8")
    with pytest.raises(CommandError, match="対応表のファイルを読めません"):
        run("profile", "save", "B医院", str(bad))
    assert Path(toml).is_file()
