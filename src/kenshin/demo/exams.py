"""Past screenings of the demo city (FY2022–FY2024), so the roster's interval rules have work.

Why: the FY2025 roster's biennial catch-up (胃内視鏡, 乳, 子宮頸), the transitional first HPV
test, 喀痰 (which needs a 喫煙指数 someone recorded) and 肝炎 "41歳以上で未受診" all read past
exams. Without a history every biennial person is a catch-up and nobody qualifies for 喀痰.

Who: a person has exams in a fiscal year when the register shows them resident on its first
day and on the next fiscal year's first day, so no exam falls outside the time they lived in the
city (the odd person who left and came back within the year aside). The demo register begins
on 1 April 2023 (nothing earlier is known), so FY2022 takes the people resident then: the
city's residents of the year before, as far as the register can tell.

What: each exam is one the rules allowed — :func:`kenshin.programs.rules.decide` over the
year's catalogue and the history generated so far (FY2024's shipped catalogue carried back to
FY2022–23, with 歯周 at 40–70 only: 20・30歳 came in FY2024). So the X線/内視鏡 exclusion, the
biennial rhythm and "肝炎 once" hold in the history as they would in a real one. Uptake is
10–40 % of those eligible, by programme, age and sex, times a per-person propensity (some
people come every year, some never); the coupon cohorts come more often. No HPV test: HPV
検査単独法 starts in FY2025 (disabled in the FY2024 catalogue), so the cervical history is
cytology, and FY2025's 31–34-year-olds split into first_hpv and screened_last_year.

Deterministic: each person's draws come from their own ``random.Random`` seeded by the seed
and the 宛名番号, so the same register and seed give the same exams whatever order the database
returns people in, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kenshin.core import clock
from kenshin.core.fiscal import fiscal_year_bounds, fy_end_age
from kenshin.programs.catalogue import Catalogue, Method, load_file, parse, shipped_files
from kenshin.programs.rules import History, PersonFacts, decide
from kenshin.residents import services as residents
from kenshin.screening.services import ExamFact

FISCAL_YEARS = (2022, 2023, 2024)
REGISTER_START = date(2023, 4, 1)  # the demo register's full load (demo setup's BASE_DATE)
TEMPLATE_YEAR = 2024  # the shipped catalogue the earlier years are carried back from
MALE, FEMALE = 1, 2
# Relative weight of each month (April … March): quiet in April and March, busy in autumn.
MONTH_WEIGHTS = (3, 6, 9, 9, 8, 10, 12, 12, 8, 10, 9, 4)
ENDOMETRIAL_SHARE = 0.06  # of cervical exams of women 40+, by consent
SPUTUM_SHARE = 0.6  # of lung exams of people with 喫煙指数 ≥ 600 at 50+
SMOKING_ASKED = 0.85  # lung exams whose 問診 recorded the 喫煙指数
INDIVIDUAL_SHARE = 0.6  # where a method is offered both ways


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


def _uptake(programme: str, age: int, sex: int) -> float:
    bands = _UPTAKE.get(programme)
    if bands is None:
        return 0.0
    rate = bands[min(max(age // 10 - 2, 0), 6)]
    return rate * (MEN_BOOST if sex == MALE else 1.0)


@dataclass
class _Past:
    """One person's generated history so far."""

    programme_years: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    method_years: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    smoking: tuple[date, int] | None = None

    def history(self) -> History:
        return History(
            programme_years={k: frozenset(v) for k, v in self.programme_years.items()},
            method_years={k: frozenset(v) for k, v in self.method_years.items()},
        )

    def add(self, fact: ExamFact, fy: int) -> None:
        self.programme_years[fact.programme].add(fy)
        self.method_years[fact.method].add(fy)
        if fact.smoking_index is not None:
            self.smoking = (fact.exam_date, fact.smoking_index)


def _smoking_index(rng: random.Random, sex: int, birth: date) -> int:
    """A lifetime 喫煙指数 (本数/日 × 年数, past smokers included), 0 for never-smokers."""
    if rng.random() >= (0.38 if sex == MALE else 0.09):
        return 0
    per_day = rng.choice((5, 10, 15, 20, 20, 20, 25, 30, 40))
    years_possible = max(fy_end_age(birth, FISCAL_YEARS[0]) - 20, 1)
    years = rng.randint(min(5, years_possible), years_possible)
    return per_day * years


def _exam_date(rng: random.Random, fy: int, last: date) -> date:
    month_index = rng.choices(range(12), weights=MONTH_WEIGHTS)[0]
    year, month = (fy, month_index + 4) if month_index < 9 else (fy + 1, month_index - 8)
    first = date(year, month, 1)
    days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    day = first + timedelta(days=rng.randrange(days))
    if day.weekday() == 6:  # no screening on Sundays
        day += timedelta(days=1) if day < fiscal_year_bounds(fy)[1] else -timedelta(days=2)
    return min(day, last)


class _Person:
    def __init__(self, seed: int, atena_no: str, sex: int, birth: date):
        self.rng = random.Random(f"kenshin-demo-exams:{seed}:{atena_no}")  # noqa: S311  # nosec B311
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


def _exams_of_year(
    p: _Person, cat: Catalogue, institutions: Sequence[str], today: date
) -> list[ExamFact]:
    fy = cat.fiscal_year
    first, last = fiscal_year_bounds(fy)
    last = min(last, today)
    if last < first:
        return []
    age = fy_end_age(p.birth, fy)
    if age < 20:
        return []
    rng = p.rng
    known_smoking = p.past.smoking[1] if p.past.smoking else None
    person = _facts(p, known_smoking)
    history = p.past.history()
    out: list[ExamFact] = []

    def exam(method: Method, when: date, smoking: int | None = None) -> ExamFact:
        fact = ExamFact(
            atena_no=p.atena_no, programme=method.programme, method=method.code, exam_date=when,
            setting=_setting(rng, method), institution_code=rng.choice(institutions),
            smoking_index=smoking,
        )  # fmt: skip
        out.append(fact)
        return fact

    for programme in cat.programmes:
        rostered = [m for m in programme.methods if m.rostered]
        if not rostered:
            continue
        draw = rng.random()  # always drawn: a person's later draws do not depend on this one's
        rate = _uptake(programme.code, age, p.sex) * p.propensity
        if programme.code == "hepatitis" and age > 40:
            rate = HEPATITIS_LATER * p.propensity
        if programme.code == "lung":
            # The 問診 on the day asks the 喫煙指数; 喀痰 follows from the answer (指針).
            rostered = [m for m in rostered if m.smoking_index_min is None]
        if draw >= min(rate * COUPON_BOOST, 0.9):
            continue
        decisions = [decide(cat, m, person, history) for m in rostered]
        eligible = [(m, d) for m, d in zip(rostered, decisions, strict=True) if d.eligible]
        if not eligible:
            continue
        boost = COUPON_BOOST if any(d.reason == "coupon" for _m, d in eligible) else 1.0
        if draw >= min(rate * boost, 0.9):
            continue
        # One method a programme a year; the later (more specific) method when both are open,
        # e.g. 内視鏡 over X線 for 55 % of those offered both.
        method = eligible[0][0]
        if len(eligible) > 1 and rng.random() < 0.55:
            method = eligible[-1][0]
        when = _exam_date(rng, fy, last)
        if programme.code == "lung":
            smoking = p.lifetime_smoking if rng.random() < SMOKING_ASKED else None
            exam(method, when, smoking)
            sputum = next((m for m in programme.methods if m.smoking_index_min is not None), None)
            if (
                sputum is not None
                and smoking is not None
                and decide(cat, sputum, _facts(p, smoking), history).eligible
                and rng.random() < SPUTUM_SHARE
            ):
                exam(sputum, when, smoking)
            continue
        exam(method, when)
        if programme.code == "cervical" and age >= 40 and rng.random() < ENDOMETRIAL_SHARE:
            for other in cat.programmes:
                for m in other.methods:
                    if m.with_programme == "cervical" and m.enabled:
                        if decide(cat, m, person, history).eligible:
                            exam(m, when)
    return out


def generate_exam_history(
    *,
    seed: int,
    institutions: Sequence[str],
    fiscal_years: Sequence[int] = FISCAL_YEARS,
    register_start: date = REGISTER_START,
) -> Iterator[ExamFact]:
    """Yield the demo city's past exams (see the module docstring for who and what).

    A person has exams in a fiscal year when the register shows them resident on its first
    day (or on ``register_start``, the register's first day, if that is later) and on the
    next fiscal year's first day.
    """
    if not institutions:
        raise ValueError("医療機関コードが必要です")
    years = tuple(sorted(fiscal_years))
    cats = catalogues(years)
    today = clock.today()
    needs = {fy: (max(date(fy, 4, 1), register_start), date(fy + 1, 4, 1)) for fy in years}
    people: dict[str, tuple[int, date]] = {}
    resident_on: dict[date, set[str]] = {}
    for day in sorted({d for pair in needs.values() for d in pair}):
        on_day = resident_on[day] = set()
        for row in residents.register_as_of(day):
            on_day.add(row["atena_no"])
            people.setdefault(row["atena_no"], (row["sex"], row["birth_date"]))
    for atena in sorted(people):
        in_years = [
            fy for fy, (start, end) in needs.items()
            if atena in resident_on[start] and atena in resident_on[end]
        ]  # fmt: skip
        if not in_years:
            continue
        sex, birth = people[atena]
        p = _Person(seed, atena, sex, birth)
        for fy in in_years:
            facts = _exams_of_year(p, cats[fy], institutions, today)
            for fact in facts:
                p.past.add(fact, fy)
            yield from facts
