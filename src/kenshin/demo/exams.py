"""Five years of the demo city's screenings (FY2022–FY2026), with results and 精検 outcomes.

Why: the roster's interval rules read past exams (the biennial catch-up of 胃内視鏡・乳・子宮頸,
the transitional first HPV test, 喀痰's recorded 喫煙指数, 肝炎 "41歳以上で未受診", the HPV
追跡検査); the worklists, the ledgers and the 事業報告 read the results, the 要精検 and what became
of each 精検. The national checklist asks for five years of history (domain.md §4.5), so the
demo city ships five: FY2022–FY2025 whole, FY2026 up to the register's last day.

Who: a person has exams in a fiscal year when the register shows them resident on its first
day and on the next fiscal year's first day (for the year in progress: on the register's
last day), so no exam falls outside the time they lived in the city (the odd person who left
and came back within the year aside). The demo register begins on 1 April 2023 (nothing
earlier is known), so FY2022 takes the people resident then: the city's residents of the year
before, as far as the register can tell.

Which exams: each one the rules allowed — :func:`kenshin.programs.rules.decide` over the year's
catalogue and the history generated so far (FY2024's shipped catalogue carried back to
FY2022–23, with 歯周 at 40–70 only: 20・30歳 came in FY2024; FY2024–FY2026 as shipped). So the
X線/内視鏡 exclusion, the biennial rhythm, "肝炎 once" and, from FY2025, HPV検査単独法 for
women of 30 and over hold as they would in a real history. Uptake is 10–40 % of those
eligible, by programme, age and sex, times a per-person propensity (some people come every
year, some never); the coupon cohorts come more often, and most women whose HPV 追跡検査 has
fallen due come for it, a few months after the due date. An exam is in the history only once
its result has been taken in (one to five weeks after the exam day), so the last weeks before
today have none yet.

What each exam carries: coded results drawn at national 要精検 rates (:mod:`kenshin.demo.results`),
年齢, the 集団検診's place, who recorded it and when; a 要精検 exam carries what became of its
精検 by today (:mod:`kenshin.demo.follow_up`). Whether an exam is 要精検 and when its 追跡検査
falls due are asked of ``screening.rules.primary_outcome``, the rule the one-exam action and the
history writer (``screening.exam_history``) apply — the writer decides them again from the
results and refuses a row that disagrees — and each case's status is the writer's, derived by
``rules.seiken_status``. 初回 is left to the writer too (derived from the exams on record),
except where the generated years cannot show the three years before (FY2022–FY2024): there it
is drawn from the person's uptake, as if the years before the register had been generated.
No 受診券番号 or クーポン番号: the city issues them (vouchers, the roster's coupons), and a
number on an exam must name one it issued.

Deterministic: each person's draws come from their own ``random.Random`` seeded by the seed
and the 宛名番号 (one for who comes when, one for results and 精検), so the same register, seed
and today give the same exams whatever order the database returns people in, on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any

from kenshin.core import clock
from kenshin.core.fiscal import age_on, fiscal_year_bounds, fy_end_age
from kenshin.demo.follow_up import draw_follow_up
from kenshin.demo.results import draw_results
from kenshin.programs import services as programs
from kenshin.programs.catalogue import Catalogue, Method, load_file, parse, shipped_files
from kenshin.programs.rules import History, PersonFacts, decide
from kenshin.residents import services as residents
from kenshin.screening import rules as exam_rules
from kenshin.screening.services import ExamFact

FISCAL_YEARS = (2022, 2023, 2024, 2025, 2026)
REGISTER_START = date(2023, 4, 1)  # the demo register's full load (demo setup's BASE_DATE)
TEMPLATE_YEAR = 2024  # the shipped catalogue the earlier years are carried back from
MALE, FEMALE = 1, 2
RECORDED_BY = "demo"
# Relative weight of each month (April … March): quiet in April and March, busy in autumn.
MONTH_WEIGHTS = (3, 6, 9, 9, 8, 10, 12, 12, 8, 10, 9, 4)
ENDOMETRIAL_SHARE = 0.06  # of cervical exams of women 40+, by consent
SPUTUM_SHARE = 0.6  # of lung exams of people with 喫煙指数 ≥ 600 at 50+
SMOKING_ASKED = 0.85  # lung exams whose 問診 recorded the 喫煙指数
INDIVIDUAL_SHARE = 0.6  # where a method is offered both ways
FOLLOW_UP_UPTAKE = 0.7  # women whose HPV 追跡検査 is due and who come for it
FIRST_TIME_YEARS = 3  # 初回: no exam of the programme in the previous 3 fiscal years
GROUP_PLACES = ("呉市保健センター（デモ）", "中央公民館（デモ）", "みなと市民センター（デモ）",
                "検診車 ひまわり号（デモ）")  # fmt: skip


def catalogues(fiscal_years: Sequence[int] = FISCAL_YEARS) -> dict[int, Catalogue]:
    """The rules each history year is generated under (see the module docstring)."""
    template: dict[str, Any] | None = None
    shipped: dict[int, Catalogue] = {}
    for path in shipped_files():
        document, parsed = load_file(path)
        shipped[parsed.fiscal_year] = parsed
        if parsed.fiscal_year == TEMPLATE_YEAR:
            template = document
    assert template is not None  # nosec B101 - the FY2024 default ships with the project
    out: dict[int, Catalogue] = {}
    for fy in fiscal_years:
        if fy in shipped:
            out[fy] = shipped[fy]
            continue
        doc = copy.deepcopy(template)
        doc["fiscal_year"] = fy
        doc["title"] = f"デモ用 {fy}年度（{TEMPLATE_YEAR}年度の定義から）"
        if fy < 2024:  # 歯周疾患検診 20・30歳 from FY2024 (domain.md §3.4)
            for programme in doc["programmes"]:
                for method in programme["methods"]:
                    if method["code"] == "periodontal_exam":
                        method["min_age"] = 40
                        method["milestones"] = [40, 50, 60, 70]
        out[fy] = parse(doc)
    return out


# Share of those eligible who come, by programme and 10-year age band (20s … 80s+).
_UPTAKE: dict[str, tuple[float, ...]] = {
    #              20s   30s   40s   50s   60s   70s   80+
    "gastric": (0.0, 0.0, 0.12, 0.16, 0.22, 0.22, 0.10),
    "lung": (0.0, 0.0, 0.18, 0.22, 0.30, 0.32, 0.15),
    "colorectal": (0.0, 0.0, 0.18, 0.22, 0.28, 0.30, 0.14),
    "breast": (0.0, 0.12, 0.32, 0.33, 0.30, 0.22, 0.08),
    "cervical": (0.12, 0.28, 0.30, 0.25, 0.18, 0.08, 0.02),
    "periodontal": (0.08, 0.08, 0.12, 0.12, 0.14, 0.14, 0.0),
    "osteoporosis": (0.0, 0.0, 0.20, 0.22, 0.22, 0.18, 0.0),
    "hepatitis": (0.0, 0.0, 0.15, 0.0, 0.0, 0.0, 0.0),  # at the 40 節目; later see below
}
HEPATITIS_LATER = 0.01  # 41歳以上で未受診: a few a year ask for it
COUPON_BOOST = 1.5
MEN_BOOST = 0.85  # men come a little less often to the same programmes


@cache
def _uptake(programme: str, age: int, sex: int) -> float:
    bands = _UPTAKE.get(programme)
    if bands is None:
        return 0.0
    rate = bands[min(max(age // 10 - 2, 0), 6)]
    return rate * (MEN_BOOST if sex == MALE else 1.0)


@dataclass
class _Past:
    """One person's generated history so far, as ``screening.facts.history_of`` reads it."""

    programme_years: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    method_years: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    follow_up_due: dict[str, date] = field(default_factory=dict)
    follow_up_from: dict[str, date] = field(default_factory=dict)
    last_test: dict[str, date] = field(default_factory=dict)
    smoking: tuple[date, int] | None = None

    def history(self) -> History:
        return History(
            programme_years={k: frozenset(v) for k, v in self.programme_years.items()},
            method_years={k: frozenset(v) for k, v in self.method_years.items()},
            follow_up_due=dict(self.follow_up_due),
            follow_up_from=dict(self.follow_up_from),
            last_test=dict(self.last_test),
        )

    def add(self, fact: ExamFact, fy: int, counts_for_programme: bool) -> None:
        if counts_for_programme:  # a city add-on (乳房超音波) is not the programme's screening
            self.programme_years[fact.programme].add(fy)
        self.method_years[fact.method].add(fy)
        method, day = fact.method, fact.exam_date
        if method not in self.last_test or day > self.last_test[method]:
            self.last_test[method] = day
        due = fact.follow_up_due
        if due is not None and (
            method not in self.follow_up_due
            or (due, day) > (self.follow_up_due[method], self.follow_up_from[method])
        ):
            self.follow_up_due[method], self.follow_up_from[method] = due, day
        if fact.smoking_index is not None:
            self.smoking = (fact.exam_date, fact.smoking_index)

    def screened_within(self, programme: str, fy: int) -> bool:
        """Any exam of the programme in the 3 fiscal years before ``fy`` (初回 or not)."""
        years = self.programme_years.get(programme, ())
        return any(fy - FIRST_TIME_YEARS <= y < fy for y in years)


def _smoking_index(rng: random.Random, sex: int, birth: date) -> int:
    """A lifetime 喫煙指数 (本数/日 × 年数, past smokers included), 0 for never-smokers."""
    if rng.random() >= (0.38 if sex == MALE else 0.09):
        return 0
    per_day = rng.choice((5, 10, 15, 20, 20, 20, 25, 30, 40))
    years_possible = max(fy_end_age(birth, FISCAL_YEARS[0]) - 20, 1)
    years = rng.randint(min(5, years_possible), years_possible)
    return per_day * years


def _not_sunday(day: date, fy: int) -> date:
    """No screening on Sundays: the Monday after, or the Friday before at the FY's end."""
    if day.weekday() != 6:
        return day
    return day + timedelta(days=1) if day < fiscal_year_bounds(fy)[1] else day - timedelta(days=2)


def _exam_date(rng: random.Random, fy: int) -> date:
    """A day of the fiscal year, busier in autumn (MONTH_WEIGHTS)."""
    month_index = rng.choices(range(12), weights=MONTH_WEIGHTS)[0]
    year, month = (fy, month_index + 4) if month_index < 9 else (fy + 1, month_index - 8)
    first = date(year, month, 1)
    days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    return _not_sunday(first + timedelta(days=rng.randrange(days)), fy)


def _result_lag(rng: random.Random, setting: str) -> int:
    """Days from the exam to its result taken in: group exams come back as a batch list."""
    return rng.randint(10, 35) if setting == "group" else rng.randint(7, 28)


class _Person:
    def __init__(self, seed: int, atena_no: str, sex: int, birth: date):
        self.rng = random.Random(f"kenshin-demo-exams:{seed}:{atena_no}")  # noqa: S311  # nosec B311
        # Results and 精検 from their own stream: a change to their rates leaves who came
        # when as it was.
        self.record_rng = random.Random(f"kenshin-demo-results:{seed}:{atena_no}")  # noqa: S311  # nosec B311
        self.atena_no = atena_no
        self.sex = sex
        self.birth = birth
        self.propensity = 0.3 + 1.4 * self.rng.random()  # mean 1.0
        self.lifetime_smoking = _smoking_index(self.rng, sex, birth)
        self.past = _Past()


def _facts(p: _Person, smoking_index: int | None) -> PersonFacts:
    return PersonFacts(sex=p.sex, birth_date=p.birth, status="resident",
                       smoking_index=smoking_index)  # fmt: skip


def _setting(rng: random.Random, method: Method) -> str:
    if len(method.settings) == 1:
        return method.settings[0]
    return "individual" if rng.random() < INDIVIDUAL_SHARE else "group"


@dataclass(frozen=True)
class _Plan:
    """One programme of a year's catalogue, as the generator offers it."""

    code: str
    methods: tuple[Method, ...]  # rostered methods offered as the year's exam (喀痰 apart)
    sputum: Method | None  # 喀痰, decided on the day from the 問診's 喫煙指数
    together: tuple[Method, ...]  # done with this programme's exam (子宮体部 after 頸部)


def _plans(cat: Catalogue) -> tuple[_Plan, ...]:
    out = []
    for programme in cat.programmes:
        rostered = [m for m in programme.methods if m.rostered]
        if not rostered:
            continue
        sputum = next((m for m in rostered if m.smoking_index_min is not None), None)
        together = tuple(
            m for other in cat.programmes for m in other.methods
            if m.with_programme == programme.code and m.enabled
        )  # fmt: skip
        offered = tuple(m for m in rostered if m is not sputum)
        out.append(_Plan(programme.code, offered, sputum, together))
    return tuple(out)


@dataclass(frozen=True)
class _Year:
    """What a year's exams are generated against."""

    catalogue: Catalogue
    plans: tuple[_Plan, ...]
    not_counting: frozenset[str]  # methods that are no screening by their programme (add-ons)
    last: date  # the last exam day: the FY's end, or the register's last day / today
    today: date
    first_year: int  # the first generated fiscal year (初回 before it is drawn)
    institutions: Sequence[str]


class _Exams:
    """One person's exams of one fiscal year, built one by one (see :func:`_exams_of_year`)."""

    def __init__(self, p: _Person, year: _Year):
        self.p, self.year = p, year
        self.fy = year.catalogue.fiscal_year
        self.age = fy_end_age(p.birth, self.fy)
        self.out: list[ExamFact] = []
        self._history: History | None = None

    @property
    def history(self) -> History:
        """The history before this year (built when a rule first needs it)."""
        if self._history is None:
            self._history = self.p.past.history()
        return self._history

    def person(self, smoking_index: int | None = None) -> PersonFacts:
        """The person for the rules, with the 喫煙指数 known (before this year, or asked)."""
        known = self.p.past.smoking[1] if self.p.past.smoking else None
        return _facts(self.p, smoking_index if smoking_index is not None else known)

    def add(self, method: Method, when: date | None, *, smoking: int | None = None,
            follow_up: bool = False, rate: float = 0.0) -> ExamFact | None:  # fmt: skip
        """The exam, with its record, if its result is in by today; else None."""
        p, rng, rec = self.p, self.p.rng, self.p.record_rng
        if when is None or when > self.year.last:
            return None
        setting = _setting(rng, method)
        institution = rng.choice(self.year.institutions)
        recorded = when + timedelta(days=_result_lag(rec, setting))
        if recorded > self.year.today:
            return None
        results = draw_results(rec, method.code, age=self.age, follow_up=follow_up)
        seiken, due = exam_rules.primary_outcome(method.code, when, results, follow_up=follow_up)
        fact = ExamFact(
            atena_no=p.atena_no, programme=method.programme, method=method.code, exam_date=when,
            setting=setting, institution_code=institution, smoking_index=smoking,
            follow_up_due=due, results=results, hpv_follow_up=follow_up,
            place=rec.choice(GROUP_PLACES) if setting == "group" else "",
            age_at_exam=age_on(p.birth, when), fy_end_age=self.age,
            first_time=self._first_time(method.programme, rate), recorded_by=RECORDED_BY,
            recorded_at=datetime.combine(recorded, time(rec.randint(9, 17), rec.randrange(60)),
                                         tzinfo=clock.JST),
        )  # fmt: skip
        if seiken and programs.seiken_of(method.programme) is not None:  # a case opens
            decisive = exam_rules.decisive_value(method.code, results)
            follow_up_fact = draw_follow_up(rec, fact, decisive, recorded, self.year.today)
            fact = replace(fact, follow_up=follow_up_fact)
        self.out.append(fact)
        return fact

    def _first_time(self, programme: str, rate: float) -> bool | None:
        """None (the writer derives it) once the generated years cover the 3 years before;
        before that, drawn for the years the history does not reach at the person's rate."""
        unseen = self.year.first_year - (self.fy - FIRST_TIME_YEARS)
        if unseen <= 0:
            return None
        if self.p.past.screened_within(programme, self.fy):
            return False
        before = any(self.p.record_rng.random() < min(rate, 0.9) for _ in range(unseen))
        return not before

    def programme(self, plan: _Plan, draw: float, rate: float) -> None:
        """The programme's exam of the year, if the person comes and the rules allow one."""
        cat, rng, history = self.year.catalogue, self.p.rng, self.history
        person = self.person()
        decisions = [(m, decide(cat, m, person, history)) for m in plan.methods]
        eligible = [(m, d) for m, d in decisions if d.eligible]
        if not eligible:
            return
        due_now = next((m for m, d in eligible if d.reason == "follow_up"), None)
        if due_now is not None:  # the HPV 追跡検査 — most come, a few months after it is due
            if draw < min(FOLLOW_UP_UPTAKE * self.p.propensity, 0.95):
                day = _follow_up_day(rng, history.follow_up_due[due_now.code], self.fy)
                self.add(due_now, day, follow_up=True)
            return
        boost = COUPON_BOOST if any(d.reason == "coupon" for _m, d in eligible) else 1.0
        if draw >= min(rate * boost, 0.9):
            return
        # One method a programme a year; the later (more specific) method when both are open,
        # e.g. 内視鏡 over X線 for 55 % of those offered both.
        method = eligible[0][0]
        if len(eligible) > 1 and rng.random() < 0.55:
            method = eligible[-1][0]
        when = _exam_date(rng, self.fy)
        smoking = None
        if plan.code == "lung":  # the 問診 on the day asks the 喫煙指数
            smoking = self.p.lifetime_smoking if rng.random() < SMOKING_ASKED else None
        if self.add(method, when, smoking=smoking, rate=rate) is None:
            return
        if plan.sputum is not None and smoking is not None:
            # 喀痰 follows from the 問診's answer on the same day (指針).
            allowed = decide(cat, plan.sputum, self.person(smoking), history).eligible
            if allowed and rng.random() < SPUTUM_SHARE:
                self.add(plan.sputum, when, smoking=smoking, rate=rate)
        if plan.together and self.age >= 40 and rng.random() < ENDOMETRIAL_SHARE:
            for m in plan.together:
                if decide(cat, m, person, history).eligible:
                    self.add(m, when, rate=rate)


def _follow_up_day(rng: random.Random, due: date, fy: int) -> date:
    """The 追跡検査: a few months after the due date (or the FY's start if due earlier)."""
    start = max(due, fiscal_year_bounds(fy)[0])
    return _not_sunday(start + timedelta(days=min(int(rng.expovariate(1 / 45)), 150)), fy)


def _exams_of_year(p: _Person, year: _Year) -> list[ExamFact]:
    """One person's exams of one fiscal year: per programme, whether they come (uptake ×
    propensity, drawn whatever happens so later draws stay put), then what the rules allow."""
    ex = _Exams(p, year)
    if ex.age < 20 or year.last < fiscal_year_bounds(ex.fy)[0]:
        return []
    follow_up_open = exam_rules.HPV_METHOD in p.past.follow_up_due
    for plan in year.plans:
        draw = p.rng.random()
        rate = _uptake(plan.code, ex.age, p.sex) * p.propensity
        if plan.code == "hepatitis" and ex.age > 40:
            rate = HEPATITIS_LATER * p.propensity
        if draw < min(rate * COUPON_BOOST, 0.9) or (follow_up_open and plan.code == "cervical"):
            ex.programme(plan, draw, rate)
    return ex.out


def generate_exam_history(
    *,
    seed: int,
    institutions: Sequence[str],
    fiscal_years: Sequence[int] = FISCAL_YEARS,
    register_start: date = REGISTER_START,
    register_end: date | None = None,
) -> Iterator[ExamFact]:
    """Yield the demo city's exams (see the module docstring for who and what).

    A person has exams in a fiscal year when the register shows them resident on its first
    day (or on ``register_start``, the register's first day, if that is later) and on the
    next fiscal year's first day — or, for the year in progress, on the last day exams are
    generated for: ``register_end`` (the register's last day) or today, whichever is earlier.
    """
    if not institutions:
        raise ValueError("医療機関コードが必要です")
    years = tuple(sorted(fiscal_years))
    cats = catalogues(years)
    today = clock.today()
    end = min(today, register_end) if register_end is not None else today
    plan: dict[int, _Year] = {}
    for fy in years:
        first, last = fiscal_year_bounds(fy)
        if first <= end:
            cat = cats[fy]
            plan[fy] = _Year(cat, _plans(cat), cat.not_counting_methods, min(last, end), today,
                             years[0], institutions)  # fmt: skip
    needs = {fy: (max(date(fy, 4, 1), register_start), min(date(fy + 1, 4, 1), end))
             for fy in plan}  # fmt: skip
    people: dict[str, tuple[int, date]] = {}
    resident_on: dict[date, set[str]] = {}
    for day in sorted({d for pair in needs.values() for d in pair}):
        on_day = resident_on[day] = set()
        for row in residents.register_as_of(day):
            on_day.add(row["atena_no"])
            people.setdefault(row["atena_no"], (row["sex"], row["birth_date"]))
    for atena in sorted(people):
        in_years = [
            fy for fy, (start, stop) in needs.items()
            if atena in resident_on[start] and atena in resident_on[stop]
        ]  # fmt: skip
        if not in_years:
            continue
        sex, birth = people[atena]
        p = _Person(seed, atena, sex, birth)
        for fy in in_years:
            facts = _exams_of_year(p, plan[fy])
            for fact in facts:
                p.past.add(fact, fy, fact.method not in plan[fy].not_counting)
            yield from facts
