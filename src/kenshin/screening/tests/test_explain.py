"""explain(): the rules' decision for every method beside the stored roster entry, whether they
agree, the staff's changes, and what the person pays."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.programs import services as programs
from kenshin.residents.models import ResidentVersion
from kenshin.screening import services
from kenshin.screening.tests.town import GONE, HANAKO, KEN, MISAKI, TARO, import_town

pytestmark = pytest.mark.django_db
FY = 2025


@pytest.fixture
def town(tmp_path):
    with clock.frozen(date(2025, 4, 10)):
        programs.load_shipped()
        import_town(tmp_path)
        yield


def by_method(atena_no: str, **kw) -> dict:
    return {x.method: x for x in services.explain(FY, atena_no, **kw)}


def test_every_method_of_the_catalogue_is_explained_in_catalogue_order(town):
    methods = [x.method for x in services.explain(FY, TARO.atena_no)]
    assert methods == [m.code for m in programs.catalogue(FY).methods]


def test_before_a_build_the_rules_decide_and_nothing_is_stored(town):
    result = services.explain_person(FY, TARO.atena_no)
    assert result.build_id is None and result.as_of == date(2025, 4, 1)
    assert (result.sex_label, result.fy_end_age, result.status_label) == ("男", 66, "住民")
    x = {m.method: m for m in result.methods}
    assert x["gastric_xray"].decision.reason == "annual" and x["gastric_xray"].entry is None
    assert x["gastric_xray"].agrees is None and x["gastric_xray"].eligible is True
    assert x["hepatitis_test"].decision.reason == "tested_before"  # tested in 2019
    assert x["mammography"].decision.reason == "sex"


def test_after_a_build_stored_and_recomputed_agree(town):
    services.build_roster(FY)
    x = by_method(HANAKO.atena_no)
    stored = [m for m in x.values() if m.entry is not None]
    assert stored and all(m.agrees for m in stored)
    assert x["mammography"].entry.reason == "screened_last_year"
    assert x["hpv_primary"].entry.reason == "milestone"  # 45
    assert x["periodontal_exam"].entry is None  # 45: not a 節目, outside the population
    assert x["endometrial_cytology"].rostered is False
    assert x["endometrial_cytology"].decision.reason == "with_programme"


def test_a_change_after_the_build_shows_as_disagreement(town):
    services.build_roster(FY)
    # KEN dies on the base date after the build was made: the stored row is now stale.
    ResidentVersion.objects.filter(atena_no=KEN.atena_no).update(valid_to=date(2025, 4, 1))
    current = ResidentVersion.objects.get(atena_no=KEN.atena_no)
    current.pk = None
    current.valid_from, current.valid_to = date(2025, 4, 1), None
    current.status, current.change_kind = "deceased", "death"
    current.save()
    x = by_method(KEN.atena_no)["chest_xray"]
    assert (x.decision.eligible, x.decision.reason) == (False, "deceased")
    assert x.entry.eligible is True and x.agrees is False


def test_override_and_exclusion_are_shown_with_the_rules_decision(town):
    services.build_roster(FY)
    services.override(None, FY, "gastric_xray", TARO.atena_no, False, "胃全摘後")
    services.set_exclusion(None, FY, "lung", TARO.atena_no, "workplace")
    x = by_method(TARO.atena_no)
    g = x["gastric_xray"]
    assert g.eligible is False and g.decision.eligible is True and g.agrees is True
    assert (g.entry.reason, g.entry.override_note, g.entry.computed_reason_label) == (
        "override", "胃全摘後", "毎年度の対象年齢"
    )  # fmt: skip
    assert x["chest_xray"].exclusion.reason_label == "職場等で受診"
    assert x["chest_xray"].entry.exclusion_label == "職場等で受診"
    assert x["fecal_occult_blood"].exclusion is None


def test_copay_follows_the_stored_decision_and_the_april_june_rule(town):
    services.build_roster(FY)
    x = by_method(HANAKO.atena_no)
    # 生活保護 in FY2025 (taxed in FY2024): 生活保護 is the current status, proven at the exam,
    # so it is free in April–June too (only the 非課税 test looks at last year's 課税区分).
    chest = {c.setting: c for c in x["chest_xray"].copays}
    assert (chest["individual"].amount, chest["individual"].amount_early) == (0, None)
    assert x["chest_xray"].entry.exemption_label == "生活保護"
    assert x["chest_xray"].entry.exemption_early_label == "生活保護"
    # Not eligible (mammogram last year): the full unit price, rounded down to 100 yen.
    mammo = {c.setting: c for c in x["mammography"].copays}
    assert (mammo["individual"].amount, mammo["group"].amount) == (8800, 6600)
    assert mammo["individual"].amount_early is None
    # An override to eligible makes it the exempt copay.
    services.override(None, FY, "mammography", HANAKO.atena_no, True, "主治医の依頼")
    mammo = {c.setting: c for c in by_method(HANAKO.atena_no)["mammography"].copays}
    assert (mammo["individual"].amount, mammo["individual"].amount_early) == (0, None)


def test_coupon_number_and_coupon_exemption(town):
    services.build_roster(FY)
    x = by_method(MISAKI.atena_no)["cytology"]
    assert x.decision.reason == "coupon" and x.entry.coupon_no == "2025C000001"
    assert x.entry.exemption == "coupon" and x.entry.exemption_early == "coupon"
    assert {c.amount for c in x.copays} == {0}


def test_the_dead_and_the_unknown(town):
    result = services.explain_person(FY, GONE.atena_no)
    assert result.found and result.status_label == "死亡"
    assert {x.decision.reason for x in result.methods} == {"deceased"}
    unknown = services.explain_person(FY, "1999999999")
    assert not unknown.found and unknown.methods == ()
    assert services.explain(FY, "1999999999") == []


def test_a_later_base_date_is_used_when_given(town):
    services.build_roster(FY)
    x = services.explain_person(FY, GONE.atena_no, as_of=date(2025, 2, 1))
    assert x.as_of == date(2025, 2, 1) and x.status_label == "住民"  # alive on 1 February


def test_explain_for_records_the_read_with_its_purpose(town):
    before = AuditEvent.objects.count()
    services.explain_for(audit.Actor(None, "hokenshi1"), FY, TARO.atena_no, purpose="inquiry")
    event = AuditEvent.objects.order_by("-seq").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.event, event.subject_ref, event.purpose, event.function) == (
        "view", TARO.atena_no, "inquiry", "screening.view_roster"
    )  # fmt: skip
