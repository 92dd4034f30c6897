"""Stored versions: load_shipped, load_files, save_version, copy_forward, adjust_method —
each a new version with its audit event, never an edit in place."""

from __future__ import annotations

import pytest
from django.db import transaction

from kenshin.audit.models import AuditEvent
from kenshin.programs import actions, services
from kenshin.programs.catalogue import CatalogueError, shipped_files, to_toml
from kenshin.programs.models import CatalogueVersion
from kenshin.programs.tests.conftest import SYSTEM, small

pytestmark = pytest.mark.django_db


def _saved_events():
    return list(AuditEvent.objects.filter(event="create", function="programs.edit").order_by("seq"))


def test_load_shipped_stores_each_year_once_with_an_audit_event(shipped):
    assert services.fiscal_years() == [2026, 2025, 2024]
    assert [(v.fiscal_year, v.version, v.source) for v in services.history()] == [
        (2026, 1, "file:kure-2026.toml"),
        (2025, 1, "file:kure-2025.toml"),
        (2024, 1, "file:kure-2024.toml"),
    ]
    assert [(e.subject_kind, e.subject_ref, e.function) for e in _saved_events()] == [
        ("catalogue", "2024:1", "programs.edit"),
        ("catalogue", "2025:1", "programs.edit"),
        ("catalogue", "2026:1", "programs.edit"),
    ]


def test_load_shipped_again_changes_nothing(shipped):
    again = services.load_shipped(SYSTEM)
    assert again == [(fy, "定義があるため取り込みません") for fy in (2024, 2025, 2026)]
    assert CatalogueVersion.objects.count() == 3


def test_load_shipped_never_overwrites_a_year_staff_have_edited(shipped):
    document = services.document_of(2025)
    actions.adjust_method(SYSTEM, document, "cytology", {"max_age": 34}, note="試行", based_on=1)
    services.load_shipped(SYSTEM)
    version, catalogue = services.catalogue_version(2025)
    assert version == 2
    assert catalogue.method("cytology").max_age == 34


def test_load_shipped_skips_another_municipalitys_files(settings):
    settings.MUNICIPALITY_CODE = "131016"
    done = services.load_shipped(SYSTEM)
    assert {outcome for _fy, outcome in done} == {"団体コードが違うため取り込みません"}
    assert not CatalogueVersion.objects.exists()


def test_save_version_numbers_versions_per_year_and_keeps_the_old_ones(shipped):
    doc = services.document_of(2025)
    doc["fees"]["early_months"] = [4, 5]
    row, _ = actions.save_version(SYSTEM, doc, source="edit", note="6月を外す")
    assert (row.fiscal_year, row.version, row.note, row.created_by) == (
        2025,
        2,
        "6月を外す",
        "test",
    )
    assert services.stored_version(2025, 1).catalogue.fees.early_months == (4, 5, 6)
    assert services.catalogue(2025).fees.early_months == (4, 5)


def test_save_version_refuses_an_invalid_document_and_stores_nothing(shipped):
    doc = services.document_of(2025)
    doc["programmes"][0]["methods"][0]["sex"] = "woman"
    with pytest.raises(CatalogueError, match=r"^programmes\[0\]\.methods\[0\]\.sex: "):
        actions.save_version(SYSTEM, doc, source="edit")
    assert CatalogueVersion.objects.count() == 3
    assert len(_saved_events()) == 3


def test_save_version_refuses_another_municipalitys_document(db):
    doc = small()
    doc["municipality_code"] = "131016"
    with pytest.raises(CatalogueError, match="団体コード 131016 のもの"):
        actions.save_version(SYSTEM, doc, source="edit")


def test_save_on_top_of_a_newer_version_is_refused(shipped):
    doc = services.document_of(2025)
    actions.adjust_method(SYSTEM, doc, "cytology", {"max_age": 34}, note="先に保存", based_on=1)
    with pytest.raises(CatalogueError, match="別の変更（第2版）が保存されました"):
        actions.adjust_method(SYSTEM, doc, "cytology", {"min_age": 21}, note="あとから", based_on=1)
    assert services.catalogue_version(2025)[0] == 2
    assert services.catalogue(2025).method("cytology").min_age == 20


def test_adjust_method_needs_a_reason(shipped):
    with pytest.raises(CatalogueError, match="変更理由"):
        actions.adjust_method(
            SYSTEM, services.document_of(2025), "cytology", {"max_age": 34}, note=" ", based_on=1
        )
    assert CatalogueVersion.objects.count() == 3


def test_copy_forward_makes_the_next_years_first_version(shipped):
    new = services.copy_forward(SYSTEM, 2026, note="令和9年度の準備")
    assert (new.fiscal_year, new.title) == (2027, "呉市 令和9年度 健康増進事業（既定）")
    info = services.stored_version(2027).info
    assert (info.version, info.source, info.note) == (1, "copy:2026", "令和9年度の準備")
    assert info.source_label == "2026年度から複写"
    assert services.changes(services.catalogue(2026), new) == []
    assert _saved_events()[-1].subject_ref == "2027:1"


def test_copy_forward_refuses_when_the_next_year_exists(shipped):
    with pytest.raises(CatalogueError, match="2026年度の定義はすでにあります"):
        services.copy_forward(SYSTEM, 2025)
    assert services.catalogue_version(2026)[0] == 1
    assert CatalogueVersion.objects.count() == 3


def test_copy_forward_of_a_missing_year_says_so(db):
    with pytest.raises(services.CatalogueMissing, match="2030年度の検診事業の定義がありません"):
        services.copy_forward(SYSTEM, 2030)


def test_cache_never_answers_with_a_document_that_was_rolled_back(db):
    """A rolled-back save can leave its row id to a later, different document (SQLite)."""
    first = small()
    first["programmes"][0]["methods"][0]["min_age"] = 45
    with pytest.raises(RuntimeError), transaction.atomic():
        actions.save_version(SYSTEM, first, source="edit")
        assert services.catalogue(2025).method("mammography").min_age == 45
        raise RuntimeError("rolled back")
    actions.save_version(SYSTEM, small(), source="edit")
    assert services.catalogue(2025).method("mammography").min_age == 40


# ------------------------------------------------------------------------- load_files


def _file(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(to_toml(document), encoding="utf-8")
    return path


def test_load_files_stores_each_file_as_its_years_next_version(shipped, tmp_path):
    doc = services.document_of(2025)
    doc["programmes"][0]["methods"][0]["min_age"] = 35
    outcomes = services.load_files([_file(tmp_path, "kure-2025b.toml", doc)], SYSTEM, note="改正")
    assert [str(o) for o in outcomes] == ["kure-2025b.toml: 2025年度 第2版として取り込みました"]
    info = services.stored_version(2025).info
    assert (info.source, info.note) == ("file:kure-2025b.toml", "改正")


def test_load_files_twice_changes_nothing(shipped, tmp_path):
    path = _file(tmp_path, "same.toml", services.document_of(2025))
    outcomes = services.load_files([path], SYSTEM)
    assert [str(o) for o in outcomes] == ["same.toml: 2025年度 第1版と同じ内容のため取り込みません"]
    assert CatalogueVersion.objects.count() == 3


def test_load_files_stores_nothing_when_any_file_is_bad(db, tmp_path):
    good = _file(tmp_path, "good.toml", small())
    bad_doc = small()
    bad_doc["fiscal_year"] = 2026
    bad_doc["programmes"][1]["methods"][0]["milestones"] = [20, 80]
    bad = _file(tmp_path, "bad.toml", bad_doc)
    outcomes = services.load_files([good, bad], SYSTEM)
    assert [(o.name, o.error, o.message) for o in outcomes] == [
        ("bad.toml", True, "programmes[1].methods[0].milestones: 80歳が対象年齢の範囲外です")
    ]
    assert not CatalogueVersion.objects.exists()


def test_shipped_files_load_through_load_files_too(db):
    outcomes = services.load_files(shipped_files(), SYSTEM)
    assert [o.version for o in outcomes] == [1, 1, 1]
