"""受診不要 and staff overrides: each change writes its audit event, shows in the roster at once,
survives a rebuild, and bad input is refused in Japanese without writing anything."""

from __future__ import annotations

import json
from datetime import date

import pytest

from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.programs import services as programs
from kenshin.screening import services
from kenshin.screening.models import Exclusion, RosterEntry
from kenshin.screening.tests.town import GONE, HANAKO, KEN, TARO, import_town

pytestmark = pytest.mark.django_db
FY = 2025
STAFF = audit.Actor(None, "hokenshi1")


@pytest.fixture
def town(tmp_path):
    with clock.frozen(date(2025, 4, 10)):
        programs.load_shipped()
        import_town(tmp_path)
        services.build_roster(FY)
        yield


def entries(atena_no: str, **filters) -> dict[str, RosterEntry]:
    qs = RosterEntry.objects.filter(fiscal_year=FY, atena_no=atena_no, **filters)
    return {e.method: e for e in qs}


class Event:
    """An audit row with its detail decoded (the table stores the exact JSON text)."""

    def __init__(self, row: AuditEvent):
        self.row = row
        self.detail = json.loads(row.detail or "{}")

    def __getattr__(self, name):
        return getattr(self.row, name)


def last_event() -> Event:
    return Event(AuditEvent.objects.order_by("-seq").first())


def test_exclusion_is_stored_reflected_in_the_roster_and_audited(town):
    info = services.set_exclusion(STAFF, FY, "lung", TARO.atena_no, "workplace", "職場健診")
    assert info.reason_label == "職場等で受診"
    lung = entries(TARO.atena_no, programme="lung")
    assert lung and {e.exclusion for e in lung.values()} == {"workplace"}
    # Other programmes are untouched, and the person stays eligible (counted in the roster).
    assert {e.exclusion for e in entries(TARO.atena_no).values() if e.programme != "lung"} == {""}
    assert lung["chest_xray"].eligible
    event = last_event()
    assert (event.event, event.subject_ref, event.function, event.purpose) == (
        "create", TARO.atena_no, "screening.exclude", "eligibility"
    )  # fmt: skip
    assert event.detail["programme"] == "lung" and event.detail["roster_entries"] == len(lung)
    assert "職場健診" not in str(event.detail)  # the note is free text: never in the log


def test_changing_and_removing_an_exclusion(town):
    services.set_exclusion(STAFF, FY, "lung", TARO.atena_no, "workplace")
    services.set_exclusion(STAFF, FY, "lung", TARO.atena_no, "treatment")
    assert Exclusion.objects.get(atena_no=TARO.atena_no).reason == "treatment"
    assert last_event().event == "update" and last_event().detail["previous"] == "workplace"
    assert services.remove_exclusion(STAFF, FY, "lung", TARO.atena_no) is True
    assert not Exclusion.objects.exists()
    assert {e.exclusion for e in entries(TARO.atena_no).values()} == {""}
    assert last_event().event == "delete"
    assert services.remove_exclusion(STAFF, FY, "lung", TARO.atena_no) is False


def test_exclusion_survives_a_rebuild(town):
    services.set_exclusion(STAFF, FY, "colorectal", KEN.atena_no, "declined")
    with clock.frozen(date(2025, 4, 11)):
        services.build_roster(FY)
    assert entries(KEN.atena_no)["fecal_occult_blood"].exclusion == "declined"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cancer_x", TARO.atena_no, "workplace", ""), "検診事業 'cancer_x' は2025年度"),
        (("lung", TARO.atena_no, "bogus", ""), "受診不要の理由を選んでください"),
        (("lung", TARO.atena_no, "other", "  "), "理由（備考）を入力してください"),
        (("lung", "", "workplace", ""), "宛名番号を入力してください"),
        (("lung", "1999999999", "workplace", ""), "住民記録にありません"),
    ],
)
def test_bad_exclusions_are_refused_in_japanese_and_write_nothing(town, args, message):
    before = AuditEvent.objects.count()
    with pytest.raises(services.RosterActionError, match=message):
        services.set_exclusion(STAFF, FY, *args)
    assert not Exclusion.objects.exists()
    assert AuditEvent.objects.count() == before


def test_exclusion_for_a_year_without_a_catalogue_is_refused(town):
    with pytest.raises(services.RosterActionError, match="2030年度の検診事業の定義がありません"):
        services.set_exclusion(STAFF, 2030, "lung", TARO.atena_no, "workplace")


def test_override_sets_the_decision_audits_and_survives_a_rebuild(town):
    before = entries(TARO.atena_no)["gastric_xray"]
    assert before.eligible and before.reason == "annual"
    services.override(STAFF, FY, "gastric_xray", TARO.atena_no, False, "胃全摘後のため")
    after = entries(TARO.atena_no)["gastric_xray"]
    assert (after.eligible, after.reason, after.override_eligible) == (False, "override", False)
    assert (after.computed_eligible, after.computed_reason) == (True, "annual")
    assert after.override_by == "hokenshi1" and after.override_note == "胃全摘後のため"
    event = last_event()
    assert (event.event, event.function, event.subject_ref) == (
        "update", "screening.override", TARO.atena_no
    )  # fmt: skip
    assert event.detail["eligible"] is False and event.detail["previous_reason"] == "annual"
    assert "胃全摘" not in str(event.detail)
    with clock.frozen(date(2025, 4, 12)):
        report = services.build_roster(FY)
    kept = entries(TARO.atena_no)["gastric_xray"]
    assert (kept.eligible, kept.reason, kept.override_eligible) == (False, "override", False)
    assert report.inserted == 0


def test_clear_override_restores_the_rules_decision(town):
    services.override(STAFF, FY, "gastric_xray", TARO.atena_no, False, "理由")
    services.clear_override(STAFF, FY, "gastric_xray", TARO.atena_no)
    e = entries(TARO.atena_no)["gastric_xray"]
    assert (e.eligible, e.reason, e.override_eligible, e.override_note) == (
        True, "annual", None, ""
    )  # fmt: skip
    assert last_event().detail["cleared"] is True
    with pytest.raises(services.RosterActionError, match="変更されていません"):
        services.clear_override(STAFF, FY, "gastric_xray", TARO.atena_no)


def test_override_can_make_a_not_eligible_person_eligible(town):
    # A mammogram last year: in the population (women 40+) but not eligible this year.
    hanako = entries(HANAKO.atena_no)["mammography"]
    assert (hanako.eligible, hanako.reason) == (False, "screened_last_year")
    services.override(STAFF, FY, "mammography", HANAKO.atena_no, True, "主治医の依頼")
    assert entries(HANAKO.atena_no)["mammography"].eligible is True


@pytest.mark.parametrize(
    ("method", "atena_no", "note", "message"),
    [
        ("gastric_xray", TARO.atena_no, "", "理由（備考）を入力してください"),
        ("gastric_xray", TARO.atena_no, "x" * 201, "200文字以内"),
        ("mammography", TARO.atena_no, "理由", "対象者名簿にありません"),
        ("endometrial_cytology", HANAKO.atena_no, "理由", "対象者名簿を作らない検査"),
        ("nope", TARO.atena_no, "理由", "検査方法 'nope' は2025年度"),
    ],
)
def test_bad_overrides_are_refused(town, method, atena_no, note, message):
    before = AuditEvent.objects.count()
    with pytest.raises(services.RosterActionError, match=message):
        services.override(STAFF, FY, method, atena_no, True, note)
    assert not RosterEntry.objects.filter(override_eligible__isnull=False).exists()
    assert AuditEvent.objects.count() == before


def test_the_dead_keep_no_roster_row_to_override(town):
    # GONE died before the base date: outside every population, so no entry to override.
    assert entries(GONE.atena_no) == {}
    with pytest.raises(services.RosterActionError, match="対象者名簿にありません"):
        services.override(STAFF, FY, "chest_xray", GONE.atena_no, True, "理由")
