"""`kenshin residents import`: summary on the console, errors listed, non-zero exit on errors."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from kenshin.residents import services
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db


def test_import_prints_a_summary(feed_file):
    out = io.StringIO()
    call_command("residents", "import", str(feed_file([person()], name="full.csv")), stdout=out)
    text = out.getvalue()
    assert "full.csv: 住民記録（全件） 1行 — 新規 1、変更 0、変更なし 0" in text
    assert services.get_resident("1000000001") is not None


def test_import_with_errors_fails_and_writes_the_error_csv(feed_file, tmp_path):
    bad = feed_file([person(生年月日="1985-02-30")], name="bad.csv")
    errors_csv = tmp_path / "errors.csv"
    out = io.StringIO()
    with pytest.raises(CommandError, match="誤りのあるファイルがあるため"):
        call_command("residents", "import", str(bad), "--errors-csv", str(errors_csv), stdout=out)
    assert "2行目 生年月日: 「1985-02-30」は存在しない日付です" in out.getvalue()
    with errors_csv.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["ファイル", "行", "列", "内容"],
        ["bad.csv", "2", "生年月日", "「1985-02-30」は存在しない日付です"],
    ]


def test_import_stops_at_the_first_bad_file(feed_file):
    bad = feed_file([person(性別="9")])
    good = feed_file([person(宛名番号="1000000002")])
    with pytest.raises(CommandError):
        call_command("residents", "import", str(bad), str(good), stdout=io.StringIO())
    assert services.get_resident("1000000002") is None


def test_missing_file_is_reported_in_japanese(tmp_path):
    with pytest.raises(CommandError, match="ファイルがありません"):
        call_command("residents", "import", str(tmp_path / "nothing.csv"))


def test_documented_samples_import_cleanly():
    """docs/formats/samples must stay valid examples of the documented format."""
    from django.conf import settings

    samples = settings.PROJECT_DIR / "docs" / "formats" / "samples"
    out = io.StringIO()
    call_command(
        "residents",
        "import",
        str(samples / "resident-full.csv"),
        str(samples / "resident-diff.csv"),
        str(samples / "fiscal-categories.csv"),
        stdout=out,
    )
    assert "resident-diff.csv: 住民記録（異動） 6行 — 新規 2、変更 4" in out.getvalue()
    baby = services.get_resident("1347713002")
    assert baby.name == "髙橋　陽菜" and baby.change_kind == "birth"
    assert services.get_resident("1347712787").status == "moved_out"
