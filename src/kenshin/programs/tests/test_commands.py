"""`kenshin programs load|show|copy|export|history`: thin shells, Japanese messages, exit codes."""

from __future__ import annotations

import io
import tomllib

import pytest
from django.core.management import CommandError, call_command

from kenshin.audit.models import AuditEvent
from kenshin.programs import services
from kenshin.programs.catalogue import parse, to_toml
from kenshin.programs.models import CatalogueVersion
from kenshin.programs.tests.conftest import small

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("programs", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_load_without_files_loads_the_shipped_years_once():
    assert run("load").splitlines() == [
        "2024年度: 取り込みました",
        "2025年度: 取り込みました",
        "2026年度: 取り込みました",
    ]
    assert run("load").splitlines() == [
        f"{fy}年度: 定義があるため取り込みません" for fy in (2024, 2025, 2026)
    ]
    assert CatalogueVersion.objects.count() == 3
    assert set(CatalogueVersion.objects.values_list("created_by", flat=True)) == {"cli"}
    assert (
        AuditEvent.objects.filter(event="create", function="programs.edit", username="cli").count()
        == 3
    )


def test_load_files_prints_each_version(tmp_path):
    path = tmp_path / "kure-2025.toml"
    path.write_text(to_toml(small()), encoding="utf-8")
    out = run("load", str(path), "--note", "テスト用", "--actor", "ops1")
    assert out == "kure-2025.toml: 2025年度 第1版として取り込みました\n"
    info = services.stored_version(2025).info
    assert (info.note, info.created_by) == ("テスト用", "ops1")


def test_load_a_bad_file_prints_the_place_and_stores_nothing(tmp_path):
    doc = small()
    doc["programmes"][0]["methods"][0]["sex"] = "woman"
    bad = tmp_path / "bad.toml"
    bad.write_text(to_toml(doc), encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text(to_toml(small()), encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(CommandError, match="どのファイルも取り込みませんでした"):
        call_command("programs", "load", str(good), str(bad), stdout=out, stderr=out)
    assert out.getvalue() == (
        "bad.toml: programmes[0].methods[0].sex: 'woman' は使えません（使える値: any、male、female）\n"
    )
    assert not CatalogueVersion.objects.exists()


def test_load_a_missing_file_is_reported_in_japanese(tmp_path):
    with pytest.raises(CommandError, match="ファイルがありません"):
        run("load", str(tmp_path / "nothing.toml"))


def test_show_prints_a_table_of_the_years_methods(shipped):
    out = run("show", "--fy", "2025")
    lines = out.splitlines()
    assert lines[0] == "2025年度 呉市 令和7年度 健康増進事業（既定） — 第1版"
    assert "自己負担の免除（判定の順）: 生活保護、無料クーポン、市民税非課税世帯" in lines
    assert "■ 子宮頸がん検診" in lines
    cytology = next(line for line in lines if line.startswith("子宮頸部細胞診"))
    assert cytology.split() == [
        "子宮頸部細胞診", "女性", "20歳〜29歳", "2年に1回（毎年度受診機会あり）", "—", "—",
        "個別・集団", "個別", "1,000円、集団", "900円", "個別", "7,700円、集団", "5,500円",
        "20歳（C）", "実施", "—",
    ]  # fmt: skip
    header = lines[lines.index("") + 1]
    assert header.index("対象年齢") < header.index("自己負担") < header.index("クーポン")
    # Columns line up: each row's 性別 starts where the header's does (wide characters = 2).
    from kenshin.programs.management.commands.programs import _width

    column = _width(header[: header.index("性別")])
    assert _width(cytology[: cytology.index("女性")]) == column


def test_show_a_year_without_a_catalogue_fails_in_japanese(db):
    with pytest.raises(CommandError, match="2030年度の検診事業の定義がありません"):
        run("show", "--fy", "2030")


def test_copy_forward_and_refuse_the_second_time(shipped):
    assert run("copy", "--from", "2026").strip() == (
        "2026年度の定義を 2027年度 第1版として複写しました（呉市 令和9年度 健康増進事業（既定））"
    )
    with pytest.raises(CommandError, match="2027年度の定義はすでにあります"):
        run("copy", "--from", "2026")
    assert CatalogueVersion.objects.filter(fiscal_year=2027).count() == 1


@pytest.mark.parametrize("fiscal_year", [2024, 2025, 2026])
def test_export_round_trips_to_the_stored_version(shipped, fiscal_year):
    text = run("export", "--fy", str(fiscal_year))
    assert text.startswith(f"# {fiscal_year}年度 検診事業の定義 第1版")
    document = tomllib.loads(text)
    assert document == services.document_of(fiscal_year)
    assert parse(document) == services.catalogue(fiscal_year)


def test_exported_file_loads_back_as_no_change_and_an_edited_one_as_a_new_version(
    shipped, tmp_path
):
    path = tmp_path / "fy2025.toml"
    path.write_text(run("export", "--fy", "2025"), encoding="utf-8")
    assert "同じ内容のため取り込みません" in run("load", str(path))
    path.write_text(
        path.read_text(encoding="utf-8").replace("max_age = 29", "max_age = 34"), encoding="utf-8"
    )
    assert run("load", str(path), "--note", "上限を34歳に") == (
        "fy2025.toml: 2025年度 第2版として取り込みました\n"
    )
    assert services.catalogue(2025).method("cytology").max_age == 34
    assert "# 変更理由: 上限を34歳に" in run("export", "--fy", "2025")
    assert tomllib.loads(run("export", "--fy", "2025", "--version", "1")) == services.document_of(
        2025, 1
    )


def test_history_lists_every_version(shipped):
    lines = run("history").splitlines()
    assert lines[0].split() == ["年度", "版", "出所", "作成者", "作成日時", "変更理由"]
    assert [line.split()[:4] for line in lines[2:]] == [
        ["2026年度", "第1版", "ファイル", "kure-2026.toml"],
        ["2025年度", "第1版", "ファイル", "kure-2025.toml"],
        ["2024年度", "第1版", "ファイル", "kure-2024.toml"],
    ]


def test_demo_setup_loads_the_shipped_catalogues_once(settings, tmp_path):
    """Migrations load no data; `kenshin demo setup` gives the demo FY2024–FY2026."""
    from datetime import date

    from kenshin.core import clock

    settings.DEMO_MODE = True
    settings.VAR_DIR = tmp_path
    assert services.fiscal_years() == []
    with clock.frozen(date(2026, 11, 26)):
        first = io.StringIO()
        call_command("demo", "setup", "--residents", "30", "--seed", "3", stdout=first)
        second = io.StringIO()
        call_command("demo", "setup", "--residents", "30", "--seed", "3", stdout=second)
    assert "検診事業の定義 2025年度: 取り込みました" in first.getvalue()
    assert "検診事業の定義 2025年度: 定義があるため取り込みません" in second.getvalue()
    assert services.fiscal_years() == [2026, 2025, 2024]
    assert set(CatalogueVersion.objects.values_list("created_by", flat=True)) == {"demo"}
