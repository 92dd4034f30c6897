"""Who is eligible for which screening method in a fiscal year — the guideline's rules, pure.

This is the reference statement of the rules (docs/programmes.md gives each with its source):
``kenshin roster explain`` and the person page call :func:`decide` for one person, and the
roster build's set-based SQL must make the same decision for every person (a test builds a
roster and compares each row with this function). No I/O here: facts in, decision out.

The decision for one method, in order (the first rule that applies decides):

1. 住民状態 on the base date: 死亡 → ``deceased``, 転出 → ``moved_out``, 住登外 or not in the
   register → ``not_resident``.
2. sex, then 年度末年齢 against the method's min/max age (``sex``, ``under_age``, ``over_age``).
3. 喀痰細胞診: 喫煙指数 (past smokers included) at least the minimum, else ``smoking_index``.
4. a free-coupon cohort (turned 20 / 40 in the previous FY) is eligible: ``coupon``.
5. the interval rule:

   * annual → ``annual``;
   * biennial (指針: 原則 2年に1回, but an opportunity every year): screened by the programme
     in the previous FY → ``screened_last_year``; else in the city's cohort (even/odd age) →
     ``cohort``; else ``catch_up``;
   * five-yearly with 節目 (HPV検査単独法): 追跡検査 due by the end of this FY and not yet
     done (no HPV test after the one that set it) → ``follow_up``; a 節目
     age → ``milestone``; an HPV test within the last five FYs → ``within_interval``; moved in
     since the start of the previous FY → ``move_in``; HPV tested five or more FYs ago →
     ``interval_due``; not screened for the programme in the previous FY → ``first_hpv``
     (the transitional first test, 当面の間); else ``screened_last_year``;
   * milestone only (歯周・骨粗) → ``milestone`` or ``not_milestone``;
   * once in a lifetime (肝炎): 節目 (40) → ``milestone``; never screened by the programme →
     ``never_tested``; else ``tested_before``.
6. a method done together with another programme (子宮体部 after 頸部) has no roster of its own:
   eligible exactly when eligible for a method of that programme (``with_programme``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from kenshin.core.fiscal import fiscal_year_bounds, fiscal_year_of, fy_end_age
from kenshin.programs.catalogue import Catalogue, Method

# Reason codes, stored on each roster entry (short, stable) with their Japanese explanation.
ELIGIBLE_REASONS: dict[str, str] = {
    "annual": "毎年度の対象年齢",
    "cohort": "対象年齢（市が定める偶数・奇数年齢）",
    "catch_up": "前年度に受診していない（2年に1回の検診は毎年度受診の機会あり）",
    "milestone": "節目年齢",
    "follow_up": "HPV検査の追跡検査の時期（トリアージ陰性から1年。未受診のままなら翌年度以降も）",
    "move_in": "転入者（前年度以降の転入）",
    "interval_due": "前回のHPV検査から5年度以上経過",
    "first_hpv": "HPV検査単独法の初回（前年度に子宮頸がん検診を受けていない）",
    "never_tested": "41歳以上で過去に受けたことがない",
    "with_programme": "同時に実施する検診の対象",
    "coupon": "無料クーポンの対象（前年度に対象年齢になった）",
}
INELIGIBLE_REASONS: dict[str, str] = {
    "deceased": "基準日に死亡",
    "moved_out": "基準日に転出",
    "not_resident": "基準日に住民でない（住登外・未登録）",
    "sex": "性別が対象外",
    "under_age": "年度末年齢が対象年齢に達していない",
    "over_age": "年度末年齢が対象年齢の上限を超えている",
    "smoking_index": "喫煙指数が基準に満たない（または不明）",
    "screened_last_year": "前年度に受診済み（2年に1回）",
    "within_interval": "前回のHPV検査から5年度たっていない",
    "not_milestone": "節目年齢ではない",
    "tested_before": "過去に受診済み（生涯に1回）",
    "not_with_programme": "同時に実施する検診の対象ではない",
    "disabled": "この年度は実施しない",
}
# Refusals that put a person outside a method's population: the roster has no row for them
# (a man for mammography, a 45-year-old for the 節目-only periodontal check); a row kept for
# someone who has since left carries one of them and is not counted in the population.
OUT_OF_POPULATION = (
    "deceased", "moved_out", "not_resident", "sex", "under_age", "over_age", "smoking_index",
    "not_milestone",
)  # fmt: skip
# …of which these mean the person is no longer the city's to invite (staff overrides give way).
LEFT_THE_CITY = ("deceased", "moved_out", "not_resident")
OVERRIDE_REASON = "override"
REASONS: dict[str, str] = {
    **ELIGIBLE_REASONS,
    **INELIGIBLE_REASONS,
    OVERRIDE_REASON: "職員による判断",
}

# 住民状態 codes as the residents app stores them.
RESIDENT = "resident"
STATUS_REASON = {"deceased": "deceased", "moved_out": "moved_out"}


@dataclass(frozen=True)
class PersonFacts:
    """What the register says about a person on the roster's base date."""

    sex: int  # 1 男, 2 女
    birth_date: date
    status: str | None  # residents' 住民状態 on the base date; None when not in the register
    moved_in: date | None = None  # latest 転入 date on or before the base date
    smoking_index: int | None = None  # latest known 喫煙指数 (from a 問診)
    tax_category: str | None = None  # this FY's 課税区分 (taxed / exempt / public_assistance)
    tax_category_previous: str | None = None  # the previous FY's
    insurance_category: str | None = None  # this FY's 保険区分


@dataclass(frozen=True)
class History:
    """Past screenings of a person, as fiscal years (before the roster's fiscal year)."""

    programme_years: dict[str, frozenset[int]] = field(default_factory=dict)  # programme → FYs
    method_years: dict[str, frozenset[int]] = field(default_factory=dict)  # method → FYs
    follow_up_due: dict[str, date] = field(default_factory=dict)  # method → 追跡検査 due date
    # method → the date of the test that set that due date, and of the method's latest test:
    # a test after the one that set the due date is the 追跡検査 (whenever it was done).
    follow_up_from: dict[str, date] = field(default_factory=dict)
    last_test: dict[str, date] = field(default_factory=dict)

    def follow_up_done(self, method: str) -> bool:
        """True once a test of the method followed the one that set its 追跡検査."""
        since, last = self.follow_up_from.get(method), self.last_test.get(method)
        return since is not None and last is not None and last > since

    def screened(self, programme: str, fiscal_year: int) -> bool:
        return fiscal_year in self.programme_years.get(programme, frozenset())

    def ever(self, programme: str, before: int) -> bool:
        return any(y < before for y in self.programme_years.get(programme, frozenset()))

    def last_method_year(self, method: str, before: int) -> int | None:
        years = [y for y in self.method_years.get(method, frozenset()) if y < before]
        return max(years) if years else None


@dataclass(frozen=True)
class Decision:
    method: str
    eligible: bool
    reason: str
    age: int

    @property
    def label(self) -> str:
        return REASONS[self.reason]


def _no(method: Method, reason: str, age: int) -> Decision:
    return Decision(method.code, False, reason, age)


def _yes(method: Method, reason: str, age: int) -> Decision:
    return Decision(method.code, True, reason, age)


def decide(
    catalogue: Catalogue,
    method: Method,
    person: PersonFacts,
    history: History,
    base_date: date | None = None,
) -> Decision:
    """Decide one person's eligibility for one method in the catalogue's fiscal year."""
    fy = catalogue.fiscal_year
    base = base_date or fiscal_year_bounds(fy)[0]
    age = fy_end_age(person.birth_date, fy)
    if not method.enabled:
        return _no(method, "disabled", age)
    if person.status != RESIDENT:
        return _no(method, STATUS_REASON.get(person.status or "", "not_resident"), age)
    if method.sex_code and person.sex != method.sex_code:
        return _no(method, "sex", age)
    if age < method.min_age:
        return _no(method, "under_age", age)
    if method.max_age is not None and age > method.max_age:
        return _no(method, "over_age", age)
    if method.smoking_index_min is not None and (
        person.smoking_index is None or person.smoking_index < method.smoking_index_min
    ):
        return _no(method, "smoking_index", age)
    if coupon_cohort(method, person.birth_date, person.sex, fy):
        return _yes(method, "coupon", age)
    if method.with_programme:
        others = catalogue.programme(method.with_programme).methods
        if any(decide(catalogue, m, person, history, base).eligible for m in others if m.rostered):
            return _yes(method, "with_programme", age)
        return _no(method, "not_with_programme", age)
    return _interval(method, person, history, fy, base, age)


def _interval(
    method: Method, person: PersonFacts, history: History, fy: int, base: date, age: int
) -> Decision:
    screened_last_year = history.screened(method.programme, fy - 1)
    if method.interval == "annual":
        return _yes(method, "annual", age)
    if method.interval == "biennial":
        # 原則 2年に1回: whoever was screened by the programme last FY waits a year, cohort or
        # not; everyone else is offered the screening every year (指針). The city's cohort
        # only says which of them are the year's main invitation and which the catch-up.
        if screened_last_year:
            return _no(method, "screened_last_year", age)
        if method.cohort and age % 2 == (0 if method.cohort == "even_age" else 1):
            return _yes(method, "cohort", age)
        return _yes(method, "catch_up", age)
    if method.interval == "milestone":
        return (
            _yes(method, "milestone", age)
            if age in method.milestones
            else _no(method, "not_milestone", age)
        )
    if method.interval == "once":
        if age in method.milestones:
            return _yes(method, "milestone", age)
        if not history.ever(method.programme, fy):
            return _yes(method, "never_tested", age)
        return _no(method, "tested_before", age)
    # five_yearly (HPV検査単独法)
    last_day = fiscal_year_bounds(fy)[1]
    due = history.follow_up_due.get(method.code)
    last = history.last_method_year(method.code, fy)
    # Due by the end of this FY and no HPV test since the one that set it: a 追跡検査 missed in
    # its year stays due (it must not turn into "within the interval" and lapse), and one done
    # early — before the FY it fell due in — is done.
    if due is not None and due <= last_day and not history.follow_up_done(method.code):
        return _yes(method, "follow_up", age)
    if age in method.milestones:
        return _yes(method, "milestone", age)
    if last is not None and fy - last < 5:
        return _no(method, "within_interval", age)
    if person.moved_in is not None and fiscal_year_bounds(fy - 1)[0] <= person.moved_in <= base:
        return _yes(method, "move_in", age)
    if last is not None:
        return _yes(method, "interval_due", age)
    if not screened_last_year:
        return _yes(method, "first_hpv", age)
    return _no(method, "screened_last_year", age)


# ------------------------------------------------------------------------------ coupons


def coupon_cohort(method: Method, birth_date: date, sex: int, fiscal_year: int) -> bool:
    """True when the person is in the method's coupon cohort for the fiscal year.

    新たなステージに入ったがん検診の総合支援事業: women who *turned* 20 (頸) / 40 (乳) in the
    previous fiscal year, i.e. whose 年度末年齢 of the previous FY is that age (for FY2024:
    頸 born 2003-04-02 … 2004-04-01). domain.md §8.1.
    """
    if method.coupon is None or (method.sex_code and sex != method.sex_code):
        return False
    return fy_end_age(birth_date, fiscal_year - 1) == method.coupon.turned_age


def coupon_number(method: Method, fiscal_year: int, serial: int) -> str:
    """The coupon's printed number: FY, the cohort's letter and a serial (2025C000123)."""
    assert method.coupon is not None  # nosec B101 - callers check coupon_cohort first
    return f"{fiscal_year}{method.coupon.prefix}{serial:06d}"


def coupon_valid_to(fiscal_year: int) -> date:
    """Coupons are valid to 31 March of the fiscal year, with no extension (domain.md §8.1)."""
    return fiscal_year_bounds(fiscal_year)[1]


# ------------------------------------------------------------------------------ fees


def uses_previous_tax_year(catalogue: Catalogue, exam_date: date) -> bool:
    """April–June exams use the previous FY's 課税区分: this FY's 市民税 is not yet assessed."""
    return exam_date.month in catalogue.fees.early_months


def exemption(
    catalogue: Catalogue,
    person: PersonFacts,
    *,
    has_coupon: bool,
    early: bool,
) -> str:
    """The 自己負担 exemption that applies (first match in the catalogue's order), or ''.

    ``early`` selects the previous FY's 課税区分 for the 非課税 test (an exam in April–June, see
    :func:`uses_previous_tax_year`); the roster stores both answers because the exam date is
    not known when the roster is built. 課税区分 in the feed is the household's (世帯全員非課税
    → exempt; docs/formats/resident-feed.md).
    """
    tax = person.tax_category_previous if early else person.tax_category
    # 生活保護 is proven at the exam (受給証明書), not by last year's assessment: the current
    # FY's category, or last year's while this year's is not yet known.
    assistance = person.tax_category or (person.tax_category_previous if early else None)
    age = fy_end_age(person.birth_date, catalogue.fiscal_year)
    for kind in catalogue.fees.exemptions:
        if (
            (kind == "public_assistance" and assistance == "public_assistance")
            or (kind == "tax_exempt" and tax == "exempt")
            or (kind == "coupon" and has_coupon)
            or (kind == "age70" and age >= 70)
            or (kind == "late_elderly" and person.insurance_category == "late_elderly")
        ):
            return kind
    return ""


def copay(method: Method, setting: str, *, eligible: bool, exemption_code: str) -> int:
    """What the person pays at the clinic for one exam, in yen.

    Out-of-target persons pay the full unit price, rounded down to 100 yen (湯沢市's rule,
    domain.md §9.3); an exempt person pays nothing; everyone else the method's 自己負担.
    """
    if setting not in method.settings:
        raise ValueError(f"{method.name}は{setting}では実施しません")
    if not eligible:
        return method.unit_price[setting] // 100 * 100
    if exemption_code:
        return 0
    return method.copay[setting]


def exam_fiscal_year(exam_date: date) -> int:
    """The fiscal year an exam counts for (its date's FY)."""
    return fiscal_year_of(exam_date)
