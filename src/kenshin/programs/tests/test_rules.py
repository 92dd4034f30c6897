"""The eligibility, coupon and fee rules (programs.rules) at every boundary, table-driven.

Pure: no database. Catalogues come from the shipped TOML files (the 呉市-like defaults the
roster is built from) or from small changes to them, so a test breaks when a shipped rule
changes without the test being told. Each test names the rule and the boundary it checks;
the expected reasons are the guideline's (docs/programmes.md gives each rule's source).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from kenshin.core.fiscal import age_on, fiscal_year_of, fy_end_age
from kenshin.programs import rules
from kenshin.programs.catalogue import Catalogue, load_file, parse, shipped_files
from kenshin.programs.rules import (
    ELIGIBLE_REASONS,
    INELIGIBLE_REASONS,
    REASONS,
    History,
    PersonFacts,
    copay,
    coupon_cohort,
    coupon_number,
    coupon_valid_to,
    decide,
    exam_fiscal_year,
    exemption,
    uses_previous_tax_year,
)

MALE, FEMALE = 1, 2
NO_HISTORY = History()

_DOCUMENTS: dict[int, dict[str, Any]] = {}
for _path in shipped_files():
    _doc, _parsed = load_file(_path)
    _DOCUMENTS[_parsed.fiscal_year] = _doc


def document(fy: int) -> dict[str, Any]:
    """A deep copy of a shipped catalogue document (safe to change in a test)."""
    return copy.deepcopy(_DOCUMENTS[fy])


def catalogue(fy: int) -> Catalogue:
    """The shipped catalogue of FY2024–FY2026; later years are FY2026's rules carried forward
    (the HPV interval needs five years of history that no shipped year alone can show)."""
    if fy in _DOCUMENTS:
        return parse(_DOCUMENTS[fy])
    doc = document(2026)
    doc["fiscal_year"] = fy
    return parse(doc)


def born_for(age: int, fy: int) -> date:
    """A birth date (1 October) whose 年度末年齢 in ``fy`` is ``age``."""
    return date(fy - age, 10, 1)


def person(
    birth: date,
    sex: int = FEMALE,
    status: str | None = "resident",
    **facts: Any,
) -> PersonFacts:
    return PersonFacts(sex=sex, birth_date=birth, status=status, **facts)


def history(
    programmes: dict[str, set[int]] | None = None,
    methods: dict[str, set[int]] | None = None,
    follow_up: dict[str, date] | None = None,
) -> History:
    """A person's past screenings. A method's years count for its programme too (as
    screening.facts.history_of reads the exams), except a city add-on's
    (``counts_for_programme = false``), so ``methods`` alone is enough for most tests."""
    programme_years: dict[str, set[int]] = {k: set(v) for k, v in (programmes or {}).items()}
    cat = catalogue(2026)
    for code, years in (methods or {}).items():
        if cat.method(code).counts_for_programme:
            programme_years.setdefault(cat.method(code).programme, set()).update(years)
    # The test that set a due date was a year before it (screening.rules.hpv_step); the
    # method's latest test is that one when it was in the method's last FY, else later.
    follow_up_from = {m: d.replace(year=d.year - 1) for m, d in (follow_up or {}).items()}
    last_test = {}
    for code, years in (methods or {}).items():
        since = follow_up_from.get(code)
        if since is not None and max(years) == fiscal_year_of(since):
            last_test[code] = since
        else:
            last_test[code] = date(max(years), 9, 1)
    return History(
        programme_years={k: frozenset(v) for k, v in programme_years.items()},
        method_years={k: frozenset(v) for k, v in (methods or {}).items()},
        follow_up_due=dict(follow_up or {}),
        follow_up_from=follow_up_from,
        last_test=last_test,
    )


def check(
    fy: int,
    method: str,
    who: PersonFacts,
    past: History = NO_HISTORY,
    base_date: date | None = None,
    cat: Catalogue | None = None,
) -> rules.Decision:
    cat = cat or catalogue(fy)
    decision = decide(cat, cat.method(method), who, past, base_date)
    # Every decision is explainable: its reason has a label, and eligible ⇔ an eligible reason.
    assert decision.reason in REASONS
    assert decision.eligible == (decision.reason in ELIGIBLE_REASONS)
    return decision


def reason(fy: int, method: str, who: PersonFacts, past: History = NO_HISTORY, **kw) -> str:
    return check(fy, method, who, past, **kw).reason


# ------------------------------------------------------------------------------ 年度末年齢


@pytest.mark.parametrize(
    ("birth", "fy", "age"),
    [
        # domain.md §2.2 test vectors (FY2024): a 1 April birthday joins the earlier cohort.
        (date(1985, 4, 1), 2024, 40),
        (date(1985, 4, 2), 2024, 39),
        (date(2004, 4, 1), 2024, 21),
        (date(2004, 4, 2), 2024, 20),
        (date(1985, 3, 31), 2024, 40),
        (date(1985, 4, 1), 2025, 41),
        (date(1985, 4, 2), 2025, 40),
    ],
)
def test_fy_end_age_born_april_first_joins_earlier_cohort(birth, fy, age):
    assert fy_end_age(birth, fy) == age
    # …which is the legal age on the fiscal year's last day (民法 第143条: the day before).
    assert fy_end_age(birth, fy) == age_on(birth, date(fy + 1, 3, 31))


@pytest.mark.parametrize(
    ("fy", "birth", "expected", "age"),
    [
        # FY2024 (domain.md §2.2 vectors): 40 at the end of FY2024, the first year in target.
        (2024, date(1985, 4, 1), "catch_up", 40),
        (2024, date(1985, 4, 2), "under_age", 39),  # one day later, one cohort later
        # FY2025: the same boundary a year on (born 1985-04-01 is 41 by then).
        (2025, date(1986, 4, 1), "catch_up", 40),
        (2025, date(1986, 4, 2), "under_age", 39),
    ],
)
def test_min_age_mammography_born_april_first_vs_second(fy, birth, expected, age):
    decision = check(fy, "mammography", person(birth))
    assert (decision.reason, decision.age) == (expected, age)


@pytest.mark.parametrize(
    ("birth", "fy"),
    [
        (date(1984, 2, 29), 2023),
        (date(1984, 2, 29), 2024),
        (date(1996, 2, 29), 2025),
        (date(2000, 2, 29), 2025),
        (date(2004, 2, 29), 2024),
        (date(2004, 2, 29), 2025),
    ],
)
def test_fy_end_age_leap_day_birth_equals_legal_age_on_march_31(birth, fy):
    # The legal age on 31 March (the age is attained at the end of 28 Feb in common years).
    assert fy_end_age(birth, fy) == age_on(birth, date(fy + 1, 3, 31)) == fy + 1 - birth.year


@pytest.mark.parametrize(
    ("birth", "expected_hpv", "expected_cytology"),
    [
        (date(1996, 2, 29), "milestone", "over_age"),  # 30 at the end of FY2025
        (date(1996, 4, 1), "milestone", "over_age"),  # still 30: the cohort's last day
        (date(1996, 4, 2), "under_age", "catch_up"),  # 29: cytology in the twenties
    ],
)
def test_hpv_milestone_30_leap_day_birth_fy2025(birth, expected_hpv, expected_cytology):
    assert reason(2025, "hpv_primary", person(birth)) == expected_hpv
    assert reason(2025, "cytology", person(birth)) == expected_cytology


def test_coupon_cohort_leap_day_birth_turned_40_in_fy2023():
    # Born 29 Feb 1984: 40 at the end of FY2023, so in FY2024's breast coupon cohort.
    who = person(date(1984, 2, 29))
    assert check(2024, "mammography", who).reason == "coupon"
    assert check(2025, "mammography", who).reason == "catch_up"


# ------------------------------------------------------------------------------ the fiscal year's ends


@pytest.mark.parametrize(
    ("exam_date", "fiscal_year"),
    [
        (date(2025, 3, 31), 2024),
        (date(2025, 4, 1), 2025),
        (date(2026, 3, 31), 2025),
        (date(2026, 4, 1), 2026),
    ],
)
def test_exam_fiscal_year_first_and_last_day(exam_date, fiscal_year):
    assert exam_fiscal_year(exam_date) == fiscal_year


@pytest.mark.parametrize(
    ("exam_date", "expected"),
    [
        (date(2024, 4, 1), "screened_last_year"),  # FY2024's first day
        (date(2025, 3, 31), "screened_last_year"),  # FY2024's last day
        (date(2024, 3, 31), "catch_up"),  # FY2023: two fiscal years before FY2025
    ],
)
def test_biennial_previous_fy_first_and_last_day(exam_date, expected):
    past = history(methods={"mammography": {exam_fiscal_year(exam_date)}})
    assert reason(2025, "mammography", person(born_for(45, 2025)), past) == expected


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (date(2026, 3, 31), "within_interval"),  # fell due in FY2025, not this year
        (date(2026, 4, 1), "follow_up"),  # FY2026's first day
        (date(2027, 3, 31), "follow_up"),  # FY2026's last day
        (date(2027, 4, 1), "within_interval"),  # 1 April of the next FY: not yet
    ],
)
def test_hpv_follow_up_due_first_and_last_day_of_fy(due, expected):
    # HPV positive, triage cytology negative in FY2025 ⇒ 追跡検査 one year later.
    past = history(methods={"hpv_primary": {2025}}, follow_up={"hpv_primary": due})
    assert reason(2026, "hpv_primary", person(born_for(33, 2026)), past) == expected


@pytest.mark.parametrize(
    ("hpv_years", "expected"),
    [
        ({2025}, "follow_up"),  # due in FY2026 (one year after FY2025's triage), missed: still due
        ({2025, 2026}, "within_interval"),  # the 追跡検査 was done in FY2026
    ],
)
def test_hpv_follow_up_missed_in_its_year_stays_due(hpv_years, expected):
    past = history(methods={"hpv_primary": hpv_years}, follow_up={"hpv_primary": date(2026, 6, 1)})
    assert reason(2027, "hpv_primary", person(born_for(33, 2027)), past) == expected


def test_hpv_follow_up_done_early_before_its_fiscal_year_is_done():
    # Triage negative on 2024-04-10 sets the 追跡検査 for 2025-04-10 (FY2025); she had it on
    # 2025-03-25, two weeks early, still in FY2024. FY2025 must not invite her again.
    past = History(
        programme_years={"cervical": frozenset({2024})},
        method_years={"hpv_primary": frozenset({2024})},
        follow_up_due={"hpv_primary": date(2025, 4, 10)},
        follow_up_from={"hpv_primary": date(2024, 4, 10)},
        last_test={"hpv_primary": date(2025, 3, 25)},
    )
    assert reason(2025, "hpv_primary", person(born_for(33, 2025)), past) == "within_interval"
    # Without the early test, the same history is due.
    not_done = History(
        programme_years=past.programme_years, method_years=past.method_years,
        follow_up_due=past.follow_up_due, follow_up_from=past.follow_up_from,
        last_test={"hpv_primary": date(2024, 4, 10)},
    )  # fmt: skip
    assert reason(2025, "hpv_primary", person(born_for(33, 2025)), not_done) == "follow_up"


@pytest.mark.parametrize(
    ("moved_in", "base_date", "expected"),
    [
        (date(2024, 4, 1), None, "move_in"),  # first day of the previous FY
        (date(2024, 3, 31), None, "screened_last_year"),  # the day before: an earlier mover
        (date(2025, 4, 1), date(2025, 4, 1), "move_in"),  # moved in on the base date
        (date(2026, 3, 31), date(2026, 3, 31), "move_in"),  # top-up on the FY's last day
        (date(2025, 4, 2), date(2025, 4, 1), "screened_last_year"),  # after the base date
    ],
)
def test_hpv_move_in_since_start_of_previous_fy(moved_in, base_date, expected):
    # 33 (not a 節目), cytology last FY: only the 転入者 rule can make her eligible.
    who = person(born_for(33, 2025), moved_in=moved_in)
    past = history(methods={"cytology": {2024}})
    assert reason(2025, "hpv_primary", who, past, base_date=base_date) == expected


def test_coupon_valid_to_march_31_of_the_fiscal_year():
    assert coupon_valid_to(2025) == date(2026, 3, 31)


# ------------------------------------------------------------------------------ 住民状態 on the base date


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("resident", "catch_up"),
        ("moved_out", "moved_out"),
        ("deceased", "deceased"),
        ("non_resident", "not_resident"),  # 住登外
        (None, "not_resident"),  # no record valid on the base date
    ],
)
def test_status_on_base_date_decides_first(status, expected):
    assert reason(2025, "mammography", person(born_for(45, 2025), status=status)) == expected


def test_status_checked_before_sex_and_age():
    # A man who moved out is "moved out" for mammography, not "sex" (the register speaks first).
    assert reason(2025, "mammography", person(born_for(45, 2025), MALE, "moved_out")) == "moved_out"
    assert reason(2025, "mammography", person(born_for(10, 2025), FEMALE, "deceased")) == "deceased"


# ------------------------------------------------------------------------------ sex


@pytest.mark.parametrize(
    ("method", "sex", "expected"),
    [
        ("mammography", MALE, "sex"),
        ("mammography", FEMALE, "catch_up"),
        ("breast_ultrasound", MALE, "sex"),
        ("cytology", MALE, "sex"),
        ("hpv_primary", MALE, "sex"),
        ("endometrial_cytology", MALE, "sex"),
        ("dxa", MALE, "sex"),
        ("bone_ultrasound", MALE, "sex"),
        ("chest_xray", MALE, "annual"),
        ("chest_xray", FEMALE, "annual"),
        ("gastric_xray", MALE, "annual"),
        ("fecal_occult_blood", FEMALE, "annual"),
    ],
)
def test_sex_rule_per_method(method, sex, expected):
    age = {"breast_ultrasound": 35, "cytology": 25}.get(method, 45)
    assert reason(2025, method, person(born_for(age, 2025), sex)) == expected


# ------------------------------------------------------------------------------ age bands, annual methods


@pytest.mark.parametrize(
    ("method", "age", "expected"),
    [
        ("gastric_xray", 39, "under_age"),
        ("gastric_xray", 40, "annual"),  # 指針: X線 当分の間 40歳以上も可
        ("chest_xray", 39, "under_age"),
        ("chest_xray", 40, "annual"),
        ("chest_xray", 99, "annual"),  # no upper age limit for eligibility
        ("fecal_occult_blood", 39, "under_age"),
        ("fecal_occult_blood", 40, "annual"),
        ("breast_ultrasound", 29, "under_age"),  # 呉市: 30歳代 only
        ("breast_ultrasound", 30, "annual"),
        ("breast_ultrasound", 39, "annual"),
        ("breast_ultrasound", 40, "over_age"),
        ("mammography", 39, "under_age"),
        ("mammography", 40, "catch_up"),
        ("mammography", 95, "catch_up"),
    ],
)
def test_age_band_min_and_max_fy2025(method, age, expected):
    assert reason(2025, method, person(born_for(age, 2025))) == expected


def test_annual_method_eligible_although_screened_last_year():
    past = history(methods={"chest_xray": {2024}, "fecal_occult_blood": {2024}})
    who = person(born_for(60, 2025), MALE)
    assert reason(2025, "chest_xray", who, past) == "annual"
    assert reason(2025, "fecal_occult_blood", who, past) == "annual"


# ------------------------------------------------------------------------------ biennial and cohorts


@pytest.mark.parametrize(
    ("age", "past_methods", "expected"),
    [
        (49, {}, "under_age"),
        (50, {}, "cohort"),  # 呉市: 50歳以上の偶数年齢
        (51, {}, "catch_up"),  # odd age, not screened in FY2024
        (52, {}, "cohort"),
        (52, {"gastric_endoscopy": {2024}}, "screened_last_year"),  # 原則 2年に1回, cohort or not
        (53, {"gastric_endoscopy": {2024}}, "screened_last_year"),
        (53, {"gastric_xray": {2024}}, "screened_last_year"),  # X線 counts for the programme
        (53, {}, "catch_up"),  # 指針: not screened last FY ⇒ eligible whatever the cohort
        (53, {"gastric_endoscopy": {2023}}, "catch_up"),  # missed FY2024 after FY2023
        (53, {"gastric_xray": {2022, 2023}}, "catch_up"),
        (80, {}, "cohort"),
    ],
)
def test_biennial_endoscopy_even_age_cohort_and_catch_up_fy2025(age, past_methods, expected):
    decision = check(2025, "gastric_endoscopy", person(born_for(age, 2025), MALE),
                     history(methods=past_methods))  # fmt: skip
    assert decision.age == age
    assert decision.reason == expected


@pytest.mark.parametrize(
    ("past_methods", "expected"),
    [
        ({}, "catch_up"),
        ({"mammography": {2024}}, "screened_last_year"),
        ({"mammography": {2023}}, "catch_up"),  # missed FY2024: eligible again in FY2025
        ({"mammography": {2022, 2023}}, "catch_up"),
        # The city's 30s ultrasound is not a screening by the programme: MMG starts at 40.
        ({"breast_ultrasound": {2024}}, "catch_up"),
    ],
)
def test_biennial_without_cohort_catch_up_after_missed_year(past_methods, expected):
    assert reason(2025, "mammography", person(born_for(47, 2025)),
                  history(methods=past_methods)) == expected  # fmt: skip


@pytest.mark.parametrize(
    ("age", "screened_last_year", "expected"),
    [
        (41, False, "cohort"),
        (41, True, "screened_last_year"),
        (42, False, "catch_up"),
        (42, True, "screened_last_year"),
    ],
)
def test_biennial_odd_age_cohort(age, screened_last_year, expected):
    doc = document(2025)
    breast = next(p for p in doc["programmes"] if p["code"] == "breast")
    breast["methods"][0]["cohort"] = "odd_age"
    breast["methods"][0].pop("coupon")
    cat = parse(doc)
    past = history(methods={"mammography": {2024}} if screened_last_year else {})
    assert reason(2025, "mammography", person(born_for(age, 2025)), past, cat=cat) == expected


# ------------------------------------------------------------------------------ 喀痰細胞診


@pytest.mark.parametrize(
    ("age", "smoking_index", "expected"),
    [
        (50, 600, "annual"),  # 指針: 原則50歳以上 & 喫煙指数600以上
        (50, 599, "smoking_index"),
        (49, 600, "under_age"),
        (49, 599, "under_age"),
        (50, None, "smoking_index"),  # unknown: never assumed
        (50, 0, "smoking_index"),
        (75, 1200, "annual"),
    ],
)
def test_sputum_cytology_age_50_and_smoking_index_600(age, smoking_index, expected):
    for sex in (MALE, FEMALE):
        who = person(born_for(age, 2025), sex, smoking_index=smoking_index)
        assert reason(2025, "sputum_cytology", who) == expected
        # The smoking index is a 喀痰 rule only: chest X-ray does not ask for it.
        assert reason(2025, "chest_xray", who) == ("annual" if age >= 40 else "under_age")


# ------------------------------------------------------------------------------ 子宮頸: cytology and HPV


@pytest.mark.parametrize(
    ("fy", "age", "expected"),
    [
        (2025, 19, "under_age"),
        (2025, 20, "catch_up"),
        (2025, 29, "catch_up"),  # 20歳代 always cytology
        (2025, 30, "over_age"),  # FY2025: 30+ get HPV検査単独法 instead
        (2024, 29, "catch_up"),
        (2024, 30, "catch_up"),  # FY2024: HPV not yet introduced, cytology for all ages
        (2024, 70, "catch_up"),
    ],
)
def test_cytology_age_29_30_max_from_fy2025(fy, age, expected):
    assert reason(fy, "cytology", person(born_for(age, fy))) == expected


@pytest.mark.parametrize("age", [30, 35, 40, 45, 50, 55, 60])
def test_hpv_milestone_ages_eligible_regardless_of_history(age):
    # Tested by HPV last FY (at age−1), cervical screened last FY, never moved: still 節目.
    past = history(methods={"hpv_primary": {2026}, "cytology": {2026}})
    assert reason(2027, "hpv_primary", person(born_for(age, 2027)), past) == "milestone"


@pytest.mark.parametrize(
    ("age", "past_methods", "expected"),
    [
        (29, {}, "under_age"),
        (31, {}, "first_hpv"),  # 当面の間: not screened last FY ⇒ the transitional first test
        (32, {}, "first_hpv"),
        (33, {}, "first_hpv"),
        (34, {}, "first_hpv"),
        (34, {"cytology": {2023}}, "first_hpv"),  # screened two FYs ago only
        (33, {"cytology": {2024}}, "screened_last_year"),
        (36, {"cytology": {2024}}, "screened_last_year"),
        (61, {}, "first_hpv"),  # 30歳以上: no upper age, but no 節目 after 60
        (65, {"cytology": {2024}}, "screened_last_year"),
    ],
)
def test_hpv_transitional_first_test_31_to_34_fy2025(age, past_methods, expected):
    assert reason(2025, "hpv_primary", person(born_for(age, 2025)),
                  history(methods=past_methods)) == expected  # fmt: skip


@pytest.mark.parametrize(
    ("fy", "age", "expected"),
    [
        (2026, 34, "within_interval"),  # tested at 33 in FY2025: one FY later
        (2027, 35, "milestone"),  # 横浜市: first at 31–34 ⇒ next at the 35 節目
        (2029, 37, "within_interval"),  # four FYs after the test
        (2030, 38, "interval_due"),  # five FYs after: 5年に1回
    ],
)
def test_hpv_interval_after_test_at_33_in_fy2025(fy, age, expected):
    who = person(born_for(age, fy))
    past = history(methods={"hpv_primary": {2025}, "cytology": {fy - 1}})
    assert reason(fy, "hpv_primary", who, past) == expected


def test_hpv_within_interval_beats_move_in():
    # Tested here in FY2025, moved away and back in FY2026: the test still counts.
    who = person(born_for(33, 2027), moved_in=date(2026, 10, 1))
    past = history(methods={"hpv_primary": {2025}})
    assert reason(2027, "hpv_primary", who, past) == "within_interval"


def test_hpv_follow_up_due_beats_within_interval_at_any_age():
    past = history(methods={"hpv_primary": {2025}}, follow_up={"hpv_primary": date(2026, 9, 1)})
    for age in (31, 36, 62):
        assert reason(2026, "hpv_primary", person(born_for(age, 2026)), past) == "follow_up"


def test_hpv_disabled_in_fy2024():
    # FY2024 catalogue: HPV検査単独法 not introduced (enabled = false) — no roster, any person.
    assert reason(2024, "hpv_primary", person(born_for(30, 2024))) == "disabled"
    assert reason(2024, "hpv_primary", person(born_for(30, 2024), MALE, "deceased")) == "disabled"
    assert not catalogue(2024).method("hpv_primary").rostered
    assert catalogue(2025).method("hpv_primary").rostered


def test_disabled_method_in_an_edited_catalogue():
    doc = document(2025)
    lung = next(p for p in doc["programmes"] if p["code"] == "lung")
    lung["methods"][1]["enabled"] = False
    cat = parse(doc)
    who = person(born_for(60, 2025), MALE, smoking_index=900)
    assert reason(2025, "sputum_cytology", who, cat=cat) == "disabled"
    assert reason(2025, "chest_xray", who, cat=cat) == "annual"


# ------------------------------------------------------------------------------ 子宮体部 (with cervical)


@pytest.mark.parametrize(
    ("fy", "age", "past_methods", "expected"),
    [
        (2025, 19, {}, "under_age"),
        (2025, 25, {}, "with_programme"),  # cytology: catch_up
        (2025, 25, {"cytology": {2024}}, "not_with_programme"),  # cytology: screened_last_year
        (2025, 21, {"cytology": {2024}}, "with_programme"),  # cytology: coupon
        (2025, 33, {}, "with_programme"),  # HPV: first_hpv
        (2025, 35, {"cytology": {2024}}, "with_programme"),  # HPV: milestone
        (2025, 36, {"cytology": {2024}}, "not_with_programme"),  # HPV: screened_last_year
        (2024, 36, {"cytology": {2023}}, "not_with_programme"),  # HPV disabled in FY2024
        (2024, 36, {}, "with_programme"),
    ],
)
def test_endometrial_eligible_iff_eligible_for_cervical(fy, age, past_methods, expected):
    who = person(born_for(age, fy) if age != 21 else date(2004, 6, 1))
    past = history(methods=past_methods)
    assert reason(fy, "endometrial_cytology", who, past) == expected
    cat = catalogue(fy)
    cervical = [
        decide(cat, m, who, past).eligible for m in cat.programme("cervical").methods if m.rostered
    ]
    assert (expected == "with_programme") == any(cervical)
    assert not cat.method("endometrial_cytology").rostered  # no roster of its own


# ------------------------------------------------------------------------------ 歯周・骨粗・肝炎


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (19, "under_age"),
        (20, "milestone"),  # 20・30歳 from FY2024
        (21, "not_milestone"),
        (29, "not_milestone"),
        (30, "milestone"),
        (35, "not_milestone"),
        (40, "milestone"),
        (50, "milestone"),
        (60, "milestone"),
        (69, "not_milestone"),
        (70, "milestone"),
        (71, "over_age"),
    ],
)
def test_periodontal_milestones_20_to_70(age, expected):
    for sex in (MALE, FEMALE):
        past = history(methods={"periodontal_exam": {2024}})  # history does not matter
        assert reason(2025, "periodontal_exam", person(born_for(age, 2025), sex), past) == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (39, "under_age"),
        (40, "milestone"),
        (41, "not_milestone"),
        (44, "not_milestone"),
        (45, "milestone"),
        (50, "milestone"),
        (55, "milestone"),
        (60, "milestone"),
        (65, "milestone"),
        (66, "not_milestone"),
        (70, "milestone"),
        (71, "over_age"),
    ],
)
def test_osteoporosis_women_40_to_70_by_5(age, expected):
    for method in ("dxa", "bone_ultrasound"):
        assert reason(2025, method, person(born_for(age, 2025))) == expected
        assert reason(2025, method, person(born_for(age, 2025), MALE)) == "sex"


@pytest.mark.parametrize(
    ("age", "past_years", "expected"),
    [
        (39, set(), "under_age"),
        (40, set(), "milestone"),  # 節目 40
        (41, set(), "never_tested"),  # 41歳以上で過去に受けたことがない
        (41, {2024}, "tested_before"),  # tested at 40
        (70, {2010}, "tested_before"),  # once in a lifetime, however long ago
        (85, set(), "never_tested"),
    ],
)
def test_hepatitis_once_40_milestone_41_never_tested(age, past_years, expected):
    past = history(methods={"hepatitis_test": past_years} if past_years else {})
    assert reason(2025, "hepatitis_test", person(born_for(age, 2025), MALE), past) == expected


def test_hepatitis_this_years_test_is_not_history():
    # History is the FYs before the roster's FY; a test this FY does not make her "tested before".
    past = History(programme_years={"hepatitis": frozenset({2025})})
    assert reason(2025, "hepatitis_test", person(born_for(50, 2025)), past) == "never_tested"


# ------------------------------------------------------------------------------ coupons


@pytest.mark.parametrize(
    ("birth", "in_cohort"),
    [
        # FY2025 頸: turned 20 in FY2024 = born 2004-04-02 … 2005-04-01.
        (date(2004, 4, 1), False),
        (date(2004, 4, 2), True),
        (date(2004, 12, 31), True),
        (date(2005, 4, 1), True),
        (date(2005, 4, 2), False),
    ],
)
def test_coupon_cervical_fy2025_turned_20_in_fy2024(birth, in_cohort):
    cat = catalogue(2025)
    method = cat.method("cytology")
    assert coupon_cohort(method, birth, FEMALE, 2025) is in_cohort
    assert coupon_cohort(method, birth, MALE, 2025) is False  # men never
    decision = check(2025, "cytology", person(birth))
    assert decision.eligible  # 20–22: in the target either way
    assert (decision.reason == "coupon") is in_cohort
    assert check(2025, "cytology", person(birth, MALE)).reason == "sex"


@pytest.mark.parametrize(
    ("birth", "in_cohort"),
    [
        # FY2025 乳: turned 40 in FY2024 = born 1984-04-02 … 1985-04-01.
        (date(1984, 4, 1), False),
        (date(1984, 4, 2), True),
        (date(1985, 4, 1), True),
        (date(1985, 4, 2), False),
    ],
)
def test_coupon_breast_fy2025_turned_40_in_fy2024(birth, in_cohort):
    method = catalogue(2025).method("mammography")
    assert coupon_cohort(method, birth, FEMALE, 2025) is in_cohort
    assert coupon_cohort(method, birth, MALE, 2025) is False


def test_coupon_fy2024_cohorts_from_domain_reference():
    # domain.md §8.1: FY2024 頸 born 2003-04-02…2004-04-01, 乳 1983-04-02…1984-04-01.
    cat = catalogue(2024)
    cyt, mmg = cat.method("cytology"), cat.method("mammography")
    assert [coupon_cohort(cyt, b, FEMALE, 2024) for b in
            (date(2003, 4, 1), date(2003, 4, 2), date(2004, 4, 1), date(2004, 4, 2))] == [
        False, True, True, False]  # fmt: skip
    assert [coupon_cohort(mmg, b, FEMALE, 2024) for b in
            (date(1983, 4, 1), date(1983, 4, 2), date(1984, 4, 1), date(1984, 4, 2))] == [
        False, True, True, False]  # fmt: skip


def test_coupon_beats_screened_last_year():
    # She turned 40 in FY2024 and was screened then; the coupon cohort is still offered.
    past = history(methods={"mammography": {2024}})
    assert reason(2025, "mammography", person(date(1984, 10, 1)), past) == "coupon"


def test_coupon_needs_residence_on_base_date():
    assert reason(2025, "cytology", person(date(2004, 10, 1), status="moved_out")) == "moved_out"


def test_method_without_coupon_has_no_cohort():
    method = catalogue(2025).method("chest_xray")
    assert not coupon_cohort(method, date(1984, 10, 1), FEMALE, 2025)


def test_coupon_number_fy_letter_and_serial():
    assert coupon_number(catalogue(2025).method("cytology"), 2025, 123) == "2025C000123"
    assert coupon_number(catalogue(2025).method("mammography"), 2025, 1) == "2025B000001"


# ------------------------------------------------------------------------------ fees: April–June


@pytest.mark.parametrize(
    ("exam_date", "previous"),
    [
        (date(2025, 4, 1), True),
        (date(2025, 6, 30), True),  # last day the previous FY's 市民税 applies
        (date(2025, 7, 1), False),
        (date(2026, 3, 31), False),
    ],
)
def test_uses_previous_tax_year_april_to_june(exam_date, previous):
    assert uses_previous_tax_year(catalogue(2025), exam_date) is previous


@pytest.mark.parametrize(
    ("previous", "current", "early", "expected"),
    [
        ("exempt", "taxed", True, "tax_exempt"),  # April–June: last FY's 課税区分
        ("exempt", "taxed", False, ""),
        ("taxed", "exempt", True, ""),
        ("taxed", "exempt", False, "tax_exempt"),
        (None, "exempt", True, ""),  # no category last FY (e.g. moved in): not exempt
        # 生活保護 is current (proven at the exam), also in April–June; last FY's only while
        # this FY's category is not yet known.
        ("public_assistance", "taxed", True, ""),
        ("taxed", "public_assistance", True, "public_assistance"),
        ("public_assistance", None, True, "public_assistance"),
        ("taxed", "public_assistance", False, "public_assistance"),
    ],
)
def test_exemption_april_june_uses_previous_tax_category(previous, current, early, expected):
    who = person(born_for(50, 2025), tax_category=current, tax_category_previous=previous)
    assert exemption(catalogue(2025), who, has_coupon=False, early=early) == expected


@pytest.mark.parametrize(
    ("tax", "has_coupon", "expected"),
    [
        ("public_assistance", True, "public_assistance"),  # 生活保護 before the coupon
        ("exempt", True, "coupon"),  # the coupon before 市民税非課税
        ("exempt", False, "tax_exempt"),
        ("taxed", True, "coupon"),
        ("taxed", False, ""),
        (None, False, ""),
    ],
)
def test_exemption_order_public_assistance_coupon_tax_exempt(tax, has_coupon, expected):
    who = person(born_for(40, 2025), tax_category=tax, tax_category_previous=tax)
    cat = catalogue(2025)
    assert cat.fees.exemptions == ("public_assistance", "coupon", "tax_exempt")
    for early in (True, False):
        assert exemption(cat, who, has_coupon=has_coupon, early=early) == expected


def test_exemption_age70_and_late_elderly_only_when_the_catalogue_lists_them():
    who = person(born_for(76, 2025), MALE, tax_category="taxed", insurance_category="late_elderly")
    assert exemption(catalogue(2025), who, has_coupon=False, early=False) == ""  # 呉市: not listed
    doc = document(2025)
    doc["fees"]["exemptions"] = ["public_assistance", "late_elderly", "age70"]
    cat = parse(doc)
    assert exemption(cat, who, has_coupon=False, early=False) == "late_elderly"
    at_69 = person(born_for(69, 2025), tax_category="taxed")
    at_70 = person(born_for(70, 2025), tax_category="taxed")
    assert exemption(cat, at_69, has_coupon=False, early=False) == ""
    assert exemption(cat, at_70, has_coupon=False, early=False) == "age70"  # 年度末 70歳以上


@pytest.mark.parametrize(
    ("method", "setting", "eligible", "exempt", "expected"),
    [
        ("mammography", "individual", True, "", 1700),
        ("mammography", "group", True, "", 1000),
        ("mammography", "group", True, "tax_exempt", 0),
        ("mammography", "individual", True, "coupon", 0),
        ("mammography", "individual", False, "", 8800),  # out of target: full unit price
        ("gastric_xray", "group", False, "", 9300),  # 9,350 rounded down to 100 yen
        ("gastric_xray", "group", False, "public_assistance", 9300),  # not in target: no exemption
        ("hepatitis_test", "individual", False, "", 3800),  # 3,850 → 3,800
        ("hepatitis_test", "individual", True, "", 0),  # free in the catalogue
        ("chest_xray", "individual", True, "", 800),
    ],
)
def test_copay_eligible_exempt_and_out_of_target(method, setting, eligible, exempt, expected):
    m = catalogue(2025).method(method)
    assert copay(m, setting, eligible=eligible, exemption_code=exempt) == expected


def test_copay_refuses_a_setting_the_method_does_not_offer():
    m = catalogue(2025).method("gastric_xray")  # 集団 only
    with pytest.raises(ValueError, match="individual"):
        copay(m, "individual", eligible=True, exemption_code="")


def test_copay_fy2026_revised_endoscopy_fee():
    assert copay(catalogue(2026).method("gastric_endoscopy"), "individual",
                 eligible=True, exemption_code="") == 3600  # fmt: skip
    assert copay(catalogue(2025).method("gastric_endoscopy"), "individual",
                 eligible=True, exemption_code="") == 3400  # fmt: skip


# ------------------------------------------------------------------------------ reason codes


def test_reason_codes_fit_the_roster_column_and_have_labels():
    assert not set(ELIGIBLE_REASONS) & set(INELIGIBLE_REASONS)
    for code, label in REASONS.items():
        assert len(code) <= 20, code  # RosterEntry.reason max_length
        assert label


@pytest.mark.parametrize("fy", [2024, 2025, 2026])
def test_every_decision_over_a_grid_is_labelled_and_consistent(fy):
    """Every shipped method × sex × age 15–95 × a few histories gives a labelled decision
    (check() asserts eligible ⇔ an eligible reason); and every reason decide can give shows
    up somewhere in the grid (dead reasons would be noise in the docs)."""
    cat = catalogue(fy)
    pasts = [
        NO_HISTORY,
        history(methods={m.code: {fy - 1} for m in cat.methods if m.enabled}),
        history(methods={"hepatitis_test": {fy - 3}, "gastric_endoscopy": {fy - 2}}),
    ]
    seen: set[str] = set()
    for method in cat.methods:
        for sex in (MALE, FEMALE):
            for age in range(15, 96):
                for past in pasts:
                    for smoking in (None, 800):
                        who = person(born_for(age, fy), sex, smoking_index=smoking)
                        seen.add(check(fy, method.code, who, past, cat=cat).reason)
    # Not reachable from this grid: the register's statuses, the move-in and follow-up facts,
    # five years of HPV history (tested above) and staff overrides.
    unreachable = {"deceased", "moved_out", "not_resident", "move_in", "follow_up",
                   "interval_due", "override"}  # fmt: skip
    if fy == 2024:
        unreachable |= {"first_hpv", "within_interval"}  # HPV検査単独法 not yet in FY2024
    else:
        unreachable |= {"disabled"}
    assert set(REASONS) - seen == unreachable


def test_docs_list_every_reason_code_with_its_label():
    """docs/programmes.md §4 is what staff read: it must say what the code stores."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[4] / "docs" / "programmes.md"
    text = docs.read_text(encoding="utf-8")
    section = text[text.index("## 4. 理由コード") : text.index("## 5. ")]
    rows = {
        cells[0].strip("` "): (cells[1].strip(), cells[2].strip())
        for line in section.splitlines()
        if line.startswith("| `") and len(cells := line.strip("|").split("|")) == 3
    }
    for code, label in REASONS.items():
        kind = (
            "対象" if code in ELIGIBLE_REASONS else "対象外" if code in INELIGIBLE_REASONS else ""
        )
        assert code in rows, code
        assert rows[code][1] == label, code
        assert not kind or rows[code][0] == kind, code
