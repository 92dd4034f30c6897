"""A deterministic synthetic Japanese city that writes resident feed files.

Why this exists: the demo, the benchmarks and manual testing need a register that *looks* like
a real ageing regional city (呉市-like: a third of the people 65+, many elderly single and couple
households, names with 異体字, 方書, March/April moving season) and that exercises every path
of the importer (full load, every 異動区分, UTF-8 with and without BOM, CP932, half-width kana).
All data is synthetic: names come from Faker's ja_JP tables plus small built-in cohort tables,
addresses are real town names with invented block numbers, and every number is made up.

Determinism: one ``random.Random(seed)`` drives everything (Faker is seeded from the same seed
and used only once, to build name pools), no set/dict iteration order or wall clock is involved,
so the same arguments give byte-identical files (with the same Faker version).

The files follow docs/formats/resident-feed.md and must be imported in the returned order:
the full load, the monthly 異動 files, then the per-fiscal-year category files.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import math
import random
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from faker import Faker

from kenshin.core.fiscal import fiscal_year_of
from kenshin.core.mynumber import check_digit
from kenshin.demo import tables as T
from kenshin.residents.services import (
    CATEGORY_FEED_HEADER,
    RESIDENT_FEED_HEADER_WITH_MY_NUMBER,
)

__all__ = ["FEED_HEADER", "FISCAL_HEADER", "generate_city"]

# The feed format is the residents app's; the demo writes exactly what a city would send,
# including the optional 個人番号 column (synthetic numbers, see _my_number).
FEED_HEADER = RESIDENT_FEED_HEADER_WITH_MY_NUMBER
FISCAL_HEADER = CATEGORY_FEED_HEADER

DEFAULT_END = date(2026, 10, 31)
_T = TypeVar("_T")

# Yearly rates (per resident) of the 異動 the simulation produces.
RATE_BIRTH = 0.006
RATE_DEATH = 0.015
RATE_MOVE_OUT = 0.030
RATE_MOVE_IN = 0.026  # + in-movers through marriage ≈ 2.8%
RATE_ADDRESS = 0.025  # + moves on marriage and 世帯分離 with a move ≈ 3%
RATE_NAME_CHANGE = 0.004
RATE_HOUSEHOLD = 0.008
RATE_CORRECTION = 0.0004
NON_RESIDENT_SHARE = 0.005  # 住登外 persons in the full load, on top of `residents`
VARIANT_SHARE = 0.01  # rows written with half-width kana or a half-width space
CLEAN_HEAD_ROWS = 100  # the first rows of the full load never carry such variants
CP932_EVERY = 5  # every 5th 異動 file is CP932
MY_NUMBER_SHARE = 95  # percent of persons whose rows carry a 個人番号 (the rest: blank)
# 個人番号 of the demo: an affine bijection of the 宛名番号 onto 11 digits (odd multiplier, not a
# multiple of 5: invertible modulo 10**11, so no two persons share a number) plus the check
# digit. Synthetic, and derived without drawing from the city's RNG, so adding the column left
# every other value of a seed's city as it was.
_MN_MUL = 7_919_993
_MN_ADD = 31_415_926_535
SIBLING_GAP = 300  # days between the births of siblings (twins aside, which we do not make)

SP = "\u3000"
HEAD = "世帯主"
SPOUSES = ("妻", "夫")
REL_RANK = {
    "世帯主": 0,
    "妻": 1,
    "夫": 1,
    "子": 2,
    "子の妻": 3,
    "子の夫": 3,
    "孫": 4,
    "父": 5,
    "母": 5,
    "夫の父": 5,
    "夫の母": 5,
    "妻の父": 5,
    "妻の母": 5,
    "祖父": 6,
    "祖母": 6,
    "兄": 7,
    "姉": 7,
    "弟": 7,
    "妹": 7,
    "その他": 8,
    "同居人": 9,
}

# --- small helpers ---------------------------------------------------------------------------


def _my_number(atena_no: str, seed: int) -> str:
    """A person's synthetic 個人番号 (valid check digit), or "" for about 1 in 20 persons.

    The same person always gets the same number (full load, 異動, 再転入); two persons never
    share one. Whether a person has one is decided by a hash of the 宛名番号 and the seed.
    """
    n = int(atena_no)
    if (n * 2_654_435_761 + seed * 40_503) % 100 >= MY_NUMBER_SHARE:
        return ""
    first = f"{(n * _MN_MUL + _MN_ADD + seed) % 10**11:011d}"
    return first + str(check_digit(first))


def _key(d: date) -> int:
    """YYYYMMDD as an int: (_key(d) - _key(birth)) // 10000 is the age on d."""
    return d.year * 10000 + d.month * 100 + d.day


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _month_end(y: int, m: int) -> date:
    return date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)


def _build_halfwidth() -> dict[int, str]:
    """Full-width katakana → half-width (ガ → ｶﾞ), the inverse of NFKC width folding."""
    table: dict[int, str] = {}
    for cp in range(0xFF61, 0xFFA0):
        full = unicodedata.normalize("NFKC", chr(cp))
        if len(full) == 1 and 0x30A0 <= ord(full) <= 0x30FF:
            table.setdefault(ord(full), chr(cp))
    for cp in range(0x30A1, 0x30FB):
        if cp in table:
            continue
        dec = unicodedata.normalize("NFD", chr(cp))
        if len(dec) == 2 and ord(dec[0]) in table:
            table[cp] = table[ord(dec[0])] + ("\uff9e" if dec[1] == "\u3099" else "\uff9f")
    table[0x3000] = " "
    return table


_HALFWIDTH = _build_halfwidth()


def _build_voicing() -> dict[str, str]:
    """カ ↔ ガ, ハ ↔ バ …: the typo a 職権修正 later fixes in a kana reading."""
    table: dict[str, str] = {}
    for cp in range(0x30A1, 0x30FB):
        dec = unicodedata.normalize("NFD", chr(cp))
        if len(dec) == 2 and dec[1] == "\u3099":
            table[dec[0]] = chr(cp)
            table[chr(cp)] = dec[0]
    return table


_VOICING = _build_voicing()

# Relative fertility by mother's age (18–45).
_FERTILITY = {a: w for a, w in zip(range(18, 46), (
    0.04, 0.08, 0.15, 0.22, 0.3, 0.4, 0.5, 0.62, 0.72, 0.82, 0.9, 0.96, 1.0, 1.0, 1.0, 0.95,
    0.88, 0.78, 0.66, 0.54, 0.42, 0.3, 0.2, 0.12, 0.07, 0.04, 0.02, 0.01,
), strict=True)}  # fmt: skip


def _mortality(age: int) -> float:
    """Relative yearly death probability (Gompertz-like), used only to choose who dies."""
    if age < 1:
        return 0.002
    return min(0.6, max(0.0003, 0.015 * math.exp(0.115 * (age - 70))))


_MORTALITY = [_mortality(a) for a in range(T.MAX_AGE + 30)]
_MORTALITY_MAX = max(_MORTALITY)


def _mobility(age: int) -> float:
    """Relative propensity to move (in, out, or within the city) by age."""
    if age < 6:
        return 0.35
    if age < 15:
        return 0.2
    if age < 18:
        return 0.15
    if age < 23:
        return 1.0
    if age < 30:
        return 0.8
    if age < 40:
        return 0.45
    if age < 50:
        return 0.22
    if age < 65:
        return 0.12
    if age < 80:
        return 0.06
    return 0.12


_MOBILITY = [_mobility(a) for a in range(T.MAX_AGE + 30)]


def _married_share(age: int) -> float:
    """Chance that a man not yet placed in a family with children lives with a wife."""
    for upper, share in ((24, 0.03), (29, 0.2), (39, 0.35), (49, 0.5), (59, 0.65), (69, 0.78),
                         (79, 0.8), (89, 0.72)):  # fmt: skip
        if age <= upper:
            return share
    return 0.5


# --- the model -------------------------------------------------------------------------------


class _Person:
    __slots__ = (
        "a",
        "birth",
        "bkey",
        "born",
        "fix",
        "hh",
        "id",
        "ix",
        "last_d",
        "last_t",
        "mei",
        "mei_kana",
        "ok",
        "parent",
        "phone",
        "rel",
        "sei",
        "sei_kana",
        "sex",
        "spouse",
        "status",
    )

    def __init__(self, sex: int, birth: date, a: int = 0):
        self.sex = sex
        self.birth = birth
        self.bkey = _key(birth)  # kept in step with birth
        self.born = 0  # ordinal of the birth of this person's youngest child, if known
        self.a = a  # age at the full load (used while building households only)
        self.id = ""
        self.sei = self.sei_kana = self.mei = self.mei_kana = ""
        self.hh: _Household | None = None
        self.rel = ""
        self.status = 1
        self.phone = ""
        self.spouse: _Person | None = None
        self.parent: _Person | None = None
        self.ok = True  # name encodable in CP932
        self.last_d = 0  # ordinal of the last 異動日 written for this person
        self.last_t = 0  # … and its 届出日
        self.fix: tuple[str, object] | None = None  # a wrong value a 職権修正 will correct
        self.ix = -1  # position in _City.res while resident


class _Household:
    __slots__ = (
        "addr",
        "head",
        "ix",
        "kata",
        "members",
        "no",
        "phone",
        "post",
        "town",
        "u_ins",
        "u_tax",
        "u_wel",
    )

    def __init__(self) -> None:
        self.no = ""
        self.addr = self.kata = self.post = self.phone = ""
        self.members: list[_Person] = []
        self.head: _Person | None = None
        self.ix = -1
        self.town = 0
        self.u_ins = self.u_tax = self.u_wel = 0.0


class _City:
    def __init__(
        self, seed: int, base: date, end: date, municipality: str, prefecture: str
    ) -> None:
        # A plain PRNG on purpose: reproducible synthetic data, nothing secret.
        self.rng = random.Random(seed)  # noqa: S311  # nosec B311
        self.seed = seed
        self.base = base
        self.end = end
        self.end_ord = end.toordinal()
        self.prefix = prefecture + municipality
        self.res: list[_Person] = []  # residents (住民状態 1), for uniform random picks
        self.hhs: list[_Household] = []  # households of residents
        self.gone: list[_Person] = []  # moved out: may come back (再転入)
        self.non_res: list[_Person] = []  # 住登外
        self.fixes: list[_Person] = []  # persons with a wrong value awaiting 職権修正
        self.rows: list[list[str]] = []
        self.cp932 = False  # while True, only CP932-encodable rows may be produced
        self.loading = True
        self._enc: dict[str, bool] = {}
        rng = self.rng
        self.next_id = rng.randrange(1_000_000_000, 2_000_000_000)
        self.next_hh = rng.randrange(5_000_000_000, 6_000_000_000)
        # Counters for sizing events: persons and events so far (with a prior).
        self.sizes = {
            "out": [1.5 * 20, 20],
            "in": [1.6 * 20, 20],
            "addr": [1.9 * 20, 20],
            "marry": [0.9 * 20, 20],
            "hh": [1.4 * 20, 20],
        }
        self.counts: dict[str, int] = {}
        self._build_pools(seed)

    # --- pools -----------------------------------------------------------------------------

    def _build_pools(self, seed: int) -> None:
        fk = Faker("ja_JP")
        fk.seed_instance(seed)
        faker_last = [fk.last_name_pair()[:2] for _ in range(3000)]
        self.faker_male = [fk.first_name_male_pair()[:2] for _ in range(300)]
        self.faker_female = [fk.first_name_female_pair()[:2] for _ in range(300)]
        total = sum(w for _, _, w in T.EXTRA_SURNAMES)
        n_extra = len(faker_last) * T.EXTRA_SURNAME_SHARE / (1 - T.EXTRA_SURNAME_SHARE)
        extra = [
            (k, kana)
            for k, kana, w in T.EXTRA_SURNAMES
            for _ in range(max(1, round(w / total * n_extra)))
        ]
        self.surnames = faker_last + extra
        self.hard = {base: (k, kana, share) for base, k, kana, share in T.HARD_SURNAMES}
        self.given = {}
        for sex, cohorts in ((1, T.MALE_GIVEN), (2, T.FEMALE_GIVEN)):
            by_year = []
            for year in range(1880, 2101):
                by_year.append(next(names for upper, names in cohorts if year <= upper))
            self.given[sex] = by_year
        rng = self.rng
        self.buildings = []
        for _, _, _, _, short in T.TOWNS:
            prefixes = rng.sample(T.BUILDING_PREFIXES, 5)
            names = [p + short for p in prefixes]
            if short.startswith("呉"):
                names.append(prefixes[0] + "呉")
            self.buildings.append(names)
        self.town_cum = list(itertools.accumulate(w for _, _, w, _, _ in T.TOWNS))

    def _enc_ok(self, s: str) -> bool:
        ok = self._enc.get(s)
        if ok is None:
            try:
                s.encode("cp932")
                ok = True
            except UnicodeEncodeError:
                ok = False
            self._enc[s] = ok
        return ok

    def _surname(self) -> tuple[str, str]:
        rng = self.rng
        for _ in range(50):
            k, kana = self._ch(self.surnames)
            hard = self.hard.get(k)
            if hard is not None and rng.random() < hard[2]:
                k, kana = hard[0], hard[1]
            if not self.cp932 or self._enc_ok(k):
                return k, kana
        return "山本", "ヤマモト"  # pragma: no cover - 50 non-CP932 draws in a row

    def _given(self, sex: int, year: int) -> tuple[str, str]:
        rng = self.rng
        if year >= T.FAKER_GIVEN_FROM and rng.random() < T.FAKER_GIVEN_SHARE:
            return self._ch(self.faker_male if sex == 1 else self.faker_female)
        return self._ch(self.given[sex][min(max(year, 1880), 2100) - 1880])

    def _ri(self, a: int, b: int) -> int:
        """randint(a, b), without randint's overhead (called millions of times)."""
        return a + int(self.rng.random() * (b - a + 1))

    def _ch(self, seq: Sequence[_T]) -> _T:
        """random.choice(seq), without its overhead."""
        return seq[int(self.rng.random() * len(seq))]

    def _new_id(self) -> str:
        self.next_id += 1
        return f"{self.next_id:010d}"

    def _new_hh_no(self) -> str:
        self.next_hh += 1
        return f"{self.next_hh:010d}"

    def _birth_for_age(self, age: int, at: date) -> date:
        hi = _add_years(at, -age).toordinal()
        lo = _add_years(at, -(age + 1)).toordinal() + 1
        return date.fromordinal(lo + int(self.rng.random() * (hi - lo + 1)))

    # --- addresses and phones --------------------------------------------------------------

    def _town(self) -> int:
        return bisect.bisect_right(self.town_cum, self.rng.random() * self.town_cum[-1])

    def _address(self, h: _Household, head_age: int, size: int, town: int | None = None) -> None:
        rng = self.rng
        rnd = rng.random
        t = self._town() if town is None else town
        name, post, _, chome, short = T.TOWNS[t]
        if chome:
            addr = f"{self.prefix}{name}{self._ri(1, chome)}丁目{self._ri(1, 30)}-{self._ri(1, 25)}"
        elif rnd() < 0.6:
            addr = f"{self.prefix}{name}{self._ri(1, 4000)}番地"
        else:
            addr = f"{self.prefix}{name}{self._ri(1, 4000)}-{self._ri(1, 20)}"
        if head_age < 35:
            p_kata = 0.7 if size == 1 else 0.6
        elif head_age < 65:
            p_kata = 0.33
        else:
            p_kata = 0.18
        kata = ""
        if rnd() < p_kata:
            if short in T.PUBLIC_HOUSING and rnd() < (0.35 if head_age >= 65 else 0.2):
                kata = f"市営{short}住宅 {self._ri(1, 8)}-{self._ri(1, 5)}0{self._ri(1, 8)}"
            else:
                floor = self._ri(1, 12 if rnd() < 0.5 else 4)
                kata = f"{self._ch(self.buildings[t])} {floor}0{self._ri(1, 8)}号室"
        h.town, h.addr, h.post, h.kata = t, addr, post, kata

    def _landline(self) -> str:
        return f"0823-{self._ch(T.EXCHANGES)}-{self._ri(0, 9999):04d}"

    def _mobile(self) -> str:
        rng = self.rng
        r = rng.random()
        prefix = "090" if r < 0.5 else "080" if r < 0.9 else "070"
        return f"{prefix}-{self._ri(1000, 9999)}-{self._ri(0, 9999):04d}"

    def _hh_phone(self, head_age: int) -> str:
        land = 0.8 if head_age >= 65 else 0.45 if head_age >= 40 else 0.15
        r = self.rng.random()
        if r < land:
            return self._landline()
        if r < land + (1 - land) * 0.8:
            return self._mobile()
        return ""

    # --- residents and households ----------------------------------------------------------

    def _add_res(self, p: _Person) -> None:
        p.ix = len(self.res)
        self.res.append(p)

    def _del_res(self, p: _Person) -> None:
        i = p.ix
        last = self.res.pop()
        if last is not p:
            self.res[i] = last
            last.ix = i
        p.ix = -1

    def _add_hh(self, h: _Household) -> None:
        h.ix = len(self.hhs)
        self.hhs.append(h)

    def _del_hh(self, h: _Household) -> None:
        i = h.ix
        if i < 0:
            return
        last = self.hhs.pop()
        if last is not h:
            self.hhs[i] = last
            last.ix = i
        h.ix = -1

    def _found(
        self,
        members: list[tuple[_Person, str]],
        at: date,
        like: _Household | None = None,
    ) -> _Household:
        """Create a household of new or moving persons; the first member is the head.

        Persons without a name get the household's surname (同居人 their own) and a given
        name of their birth cohort. `like` copies address, 方書 and phone (世帯分離).
        """
        rng = self.rng
        h = _Household()
        head = members[0][0]
        fam = None
        for p, rel in members:
            p.rel = rel
            p.hh = h
            if not p.sei:
                if rel == "同居人":
                    p.sei, p.sei_kana = self._surname()
                else:
                    if fam is None:
                        fam = self._surname()
                    p.sei, p.sei_kana = fam
            if not p.mei:
                p.mei, p.mei_kana = self._given(p.sex, p.birth.year)
                if self.cp932:
                    while not self._enc_ok(p.mei):  # pragma: no cover - pools are CP932-safe
                        p.mei, p.mei_kana = self._given(p.sex, p.birth.year)
            p.ok = self._enc_ok(p.sei) and self._enc_ok(p.mei)
        h.members = [p for p, _ in members]
        h.head = head
        atk = _key(at)
        head_age = (atk - head.bkey) // 10000
        if like is not None:
            h.town, h.addr, h.post, h.kata, h.phone = (
                like.town, like.addr, like.post, like.kata, like.phone,
            )  # fmt: skip
        else:
            self._address(h, head_age, len(members))
            h.phone = self._hh_phone(head_age)
        for p in h.members:
            if p.phone and not p.phone.startswith("0823"):
                continue  # a mobile number goes with its owner
            if p is not head and 18 <= ((atk - p.bkey) // 10000) < 80 and rng.random() < 0.3:
                p.phone = self._mobile()
            else:
                p.phone = h.phone
        h.u_ins, h.u_tax, h.u_wel = rng.random(), rng.random(), rng.random()
        if not self.loading:
            h.no = self._new_hh_no()
        self._add_hh(h)
        for p in h.members:
            if p.ix < 0:
                self._add_res(p)
            p.status = 1
        return h

    # --- the full load ---------------------------------------------------------------------

    def populate(self, n: int) -> None:
        rng = self.rng
        rnd = rng.random
        base = self.base
        cells: list[tuple[int, int]] = []
        weights: list[float] = []
        for start, male, female in T.PYRAMID_BANDS:
            shape = T.BAND_100_SHAPE if start == 100 else (0.2,) * 5
            for k, s in enumerate(shape):
                cells += [(1, start + k), (2, start + k)]
                weights += [male * s, female * s]
        draws = rng.choices(range(len(cells)), cum_weights=list(itertools.accumulate(weights)), k=n)
        lo = [_add_years(base, -(a + 1)).toordinal() + 1 for a in range(T.MAX_AGE + 1)]
        span = [_add_years(base, -a).toordinal() - lo[a] + 1 for a in range(T.MAX_AGE + 1)]
        fromordinal = date.fromordinal
        buckets: list[list[list[_Person]]] = [[], [[] for _ in lo], [[] for _ in lo]]
        for c in draws:
            sex, a = cells[c]
            buckets[sex][a].append(_Person(sex, fromordinal(lo[a] + int(rnd() * span[a])), a))

        def take(sex: int, target: int, low: int, high: int) -> _Person | None:
            low, high = max(low, 0), min(high, T.MAX_AGE)
            if low > high:
                return None
            target = min(max(target, low), high)
            b = buckets[sex]
            for k in range(high - low + 1):
                a = target - k
                if a >= low and b[a]:
                    return b[a].pop()
                a = target + k
                if k and a <= high and b[a]:
                    return b[a].pop()
            return None

        def give_back(p: _Person) -> None:
            buckets[p.sex][p.a].append(p)

        # A. Families with children under 18 (oldest children first).
        for a in range(17, -1, -1):
            for sex in (1, 2):
                bucket = buckets[sex][a]
                while bucket:
                    self._family(bucket.pop(), take, give_back)
        # B. Widows of 75+ living with a grown-up child.
        for a in range(75, T.MAX_AGE + 1):
            bucket = buckets[2][a]
            keep = []
            while bucket:
                w = bucket.pop()
                c = None
                if rnd() < 0.22:
                    target = a - int(rng.triangular(24, 38, 30))
                    c = take(1 if rnd() < 0.55 else 2, target, 35, a - 18)
                if c is None:
                    keep.append(w)
                elif c.a >= 50 or rnd() < 0.5:
                    c.parent = w
                    self._found([(c, HEAD), (w, "母")], base)
                else:
                    c.parent = w
                    self._found([(w, HEAD), (c, "子")], base)
            bucket.extend(keep)
        # C. Men (oldest first): couples, couples with grown-up children, singles.
        for a in range(T.MAX_AGE, 17, -1):
            bucket = buckets[1][a]
            while bucket:
                m = bucket.pop()
                members = [(m, HEAD)]
                wife = None
                if rnd() < _married_share(a):
                    target = a - int(rng.triangular(-2, 8, 2))
                    wife = take(2, target, max(18, a - 20), a + 6)
                if wife is not None:
                    m.spouse, wife.spouse = wife, m
                    members.append((wife, "妻"))
                    if 42 <= wife.a <= 80 and rnd() < (0.6 if a < 65 else 0.3):
                        births: list[int] = []
                        for _ in range(1 if rnd() < 0.7 else 2):
                            target = wife.a - int(rng.triangular(22, 38, 29))
                            c = take(1 if rnd() < 0.55 else 2, target, 18, wife.a - 18)
                            if c is None:
                                break
                            born = c.birth.toordinal()
                            if any(abs(born - x) < SIBLING_GAP for x in births):
                                give_back(c)
                                break
                            births.append(born)
                            c.parent = wife
                            members.append((c, "子"))
                    if 45 <= a < 75 and rnd() < 0.04:
                        mother = take(2, a + int(rng.triangular(22, 38, 28)), a + 18, T.MAX_AGE)
                        if mother is not None:
                            m.parent = mother
                            members.append((mother, "母"))
                elif 40 <= a <= 70 and rnd() < 0.2:
                    mother = take(2, a + int(rng.triangular(22, 38, 28)), 65, T.MAX_AGE)
                    if mother is not None:
                        m.parent = mother
                        members.append((mother, "母"))
                elif a < 45 and rnd() < 0.03:
                    other = take(2, a + self._ri(-5, 5), 18, a + 10)
                    if other is not None:
                        members.append((other, "同居人"))
                self._found(members, base)
        # D. Women left: mostly living alone; a few sisters or house-sharers.
        for a in range(18, T.MAX_AGE + 1):
            bucket = buckets[2][a]
            while bucket:
                w = bucket.pop()
                members = [(w, HEAD)]
                if a >= 60 and rnd() < 0.03:
                    s = take(2, a + self._ri(-6, 6), a - 10, a + 10)
                    if s is not None:
                        members.append((s, "姉" if s.birth < w.birth else "妹"))
                elif a < 45 and rnd() < 0.02:
                    s = take(2, a + self._ri(-5, 5), 18, a + 10)
                    if s is not None:
                        members.append((s, "同居人"))
                self._found(members, base)
        # 住登外: owners of land or houses in the city who live elsewhere.
        for _ in range(round(n * NON_RESIDENT_SHARE)):
            a = self._ri(30, 90)
            p = _Person(1 if rnd() < 0.55 else 2, self._birth_for_age(a, base), a)
            p.sei, p.sei_kana = self._surname()
            p.mei, p.mei_kana = self._given(p.sex, p.birth.year)
            p.ok = self._enc_ok(p.sei) and self._enc_ok(p.mei)
            h = _Household()
            fmt, h.post = self._ch(T.ELSEWHERE)
            h.addr = fmt.format(c=self._ri(1, 5), b=self._ri(1, 20), g=self._ri(1, 20))
            h.members, h.head = [p], p
            p.hh, p.rel, p.status = h, HEAD, 4
            p.phone = self._mobile() if rnd() < 0.5 else ""
            self.non_res.append(p)
        self._number()
        self._seed_errors()
        self.loading = False

    def _family(
        self,
        child: _Person,
        take: Callable[..., _Person | None],
        give_back: Callable[[_Person], None],
    ) -> None:
        """A household around a child under 18: mother, father, siblings, sometimes grandparents."""
        rng = self.rng
        rnd = rng.random
        a = child.a
        mother = take(2, a + int(rng.triangular(20, 44, 30)), a + 18, a + 46)
        kids = [child]
        births = [child.birth.toordinal()]
        r = rnd()
        extra = 0 if r < 0.36 else 1 if r < 0.8 else 2 if r < 0.96 else 3
        for _ in range(extra):
            sa = a - 1 - int(rnd() * 6)
            if sa < 0 or (mother is not None and mother.a - sa > 46):
                break
            sib = take(1 if rnd() < 0.51 else 2, sa, max(0, sa - 1), a)
            if sib is None:
                break
            born = sib.birth.toordinal()
            if any(abs(born - b) < SIBLING_GAP for b in births):
                give_back(sib)  # not a believable sibling: born too close to another child
                continue
            kids.append(sib)
            births.append(born)
        father = None
        if mother is None or rnd() < 0.87:
            ref = mother.a if mother is not None else a + 31
            father = take(1, ref + int(rng.triangular(-3, 9, 2)), a + 18, a + 62)
        members: list[tuple[_Person, str]] = []
        if father is not None:
            members.append((father, HEAD))
            if mother is not None:
                father.spouse, mother.spouse = mother, father
                members.append((mother, "妻"))
        elif mother is not None:
            members.append((mother, HEAD))
        else:  # nobody of a parent's age is left (tiny cities): a grandparent raises them
            g = take(2, a + 60, a + 36, T.MAX_AGE) or take(1, a + 60, a + 36, T.MAX_AGE)
            if g is None:
                g = take(2, a + 30, 18, T.MAX_AGE) or take(1, a + 30, 18, T.MAX_AGE)
            if g is None:  # a city of children only
                self._found(
                    [(k, HEAD if i == 0 else "その他") for i, k in enumerate(kids)], self.base
                )
                return
            for k in kids:
                k.parent = g
            self._found([(g, HEAD)] + [(k, "孫") for k in kids], self.base)
            return
        parent = mother if mother is not None else father
        parent.born = max(births)
        for k in kids:
            k.parent = parent
            members.append((k, "子"))
        head = members[0][0]
        if len(members) <= 4 and rnd() < 0.1:
            ha = head.a
            gm = take(2, ha + int(rng.triangular(24, 36, 29)), ha + 20, T.MAX_AGE)
            gf = None
            if gm is None or rnd() < 0.45:
                ref = gm.a if gm is not None else ha + 30
                gf = take(1, ref + 2, ref - 2, ref + 10)
            if gm is not None and gf is not None:
                gm.spouse, gf.spouse = gf, gm
            head.parent = gm or gf
            if gf is not None and rnd() < 0.6:
                # The grandfather is still 世帯主: the young family are 子, 子の妻 and 孫.
                new = [(gf, HEAD)]
                if gm is not None:
                    new.append((gm, "妻"))
                for p, rel in members:
                    if rel == HEAD:
                        new.append((p, "子"))
                    elif rel == "妻":
                        new.append((p, "子の妻"))
                    else:
                        new.append((p, "孫"))
                members = new
            else:
                if gf is not None:
                    members.append((gf, "父"))
                if gm is not None:
                    members.append((gm, "母"))
        self._found(members, self.base)

    def _number(self) -> None:
        """宛名番号 in order of birth (older people were registered earlier), then 世帯番号."""
        people = sorted(itertools.chain(self.res, self.non_res), key=lambda p: p.birth)
        for p in people:
            p.id = self._new_id()
        for h in sorted(self.hhs, key=lambda h: h.head.id):
            h.no = self._new_hh_no()
        for p in self.non_res:
            p.hh.no = self._new_hh_no()

    def _seed_errors(self) -> None:
        """Register a few wrong values that 職権修正 rows will correct later."""
        rng = self.rng
        n = max(1, round(len(self.res) * 0.0015))
        for p in rng.sample(self.res, min(n, len(self.res))):
            if p.fix is not None:
                continue
            if rng.random() < 0.6:
                wrong = p.birth + timedelta(days=self._ch((-1, 1)) * self._ri(1, 20))
                if wrong >= self.base:
                    continue
                p.fix = ("birth", p.birth)
                p.birth, p.bkey = wrong, _key(wrong)
            else:
                spots = [i for i, ch in enumerate(p.sei_kana) if ch in _VOICING]
                if not spots:
                    continue
                i = self._ch(spots)
                p.fix = ("kana", p.sei_kana)
                p.sei_kana = p.sei_kana[:i] + _VOICING[p.sei_kana[i]] + p.sei_kana[i + 1 :]
            self.fixes.append(p)

    # --- rows ------------------------------------------------------------------------------

    def _row(self, code: str, d: str, t: str, p: _Person, variants: bool = True) -> list[str]:
        h = p.hh
        name = p.sei + SP + p.mei
        kana = p.sei_kana + SP + p.mei_kana
        if variants:
            r = self.rng.random()
            if r < VARIANT_SHARE / 2:
                name = p.sei + " " + p.mei
            elif r < VARIANT_SHARE:
                kana = kana.translate(_HALFWIDTH)
        head = h.head
        return [
            code,
            d,
            t,
            p.id,
            name,
            kana,
            "1" if p.sex == 1 else "2",
            p.birth.isoformat(),
            h.post,
            h.addr,
            h.kata,
            p.phone,
            h.no,
            p.rel,
            head.sei + SP + head.mei,
            str(p.status),
            _my_number(p.id, self.seed),
        ]

    def _emit(self, code: str, d: int, t: int, p: _Person) -> None:
        """Append a 異動 row for p; keep each person's rows in (異動日, 届出日) order."""
        if p.last_d == d and p.last_t > t:
            t = p.last_t
        p.last_d, p.last_t = d, t
        self.rows.append(
            self._row(code, date.fromordinal(d).isoformat(), date.fromordinal(t).isoformat(), p)
        )
        self.counts[code] = self.counts.get(code, 0) + 1

    def full_rows(self) -> Iterator[list[str]]:
        """The full load: households in 世帯番号 order, 世帯主 first; then the 住登外."""
        d = self.base.isoformat()
        n = 0
        households = sorted(self.hhs, key=lambda h: h.no)
        households += [p.hh for p in self.non_res]
        rank = REL_RANK.get
        row = self._row
        for h in households:
            for p in sorted(h.members, key=lambda p: (rank(p.rel, 8), p.bkey)):
                yield row("00", d, d, p, variants=n >= CLEAN_HEAD_ROWS)
                n += 1

    # --- the simulation --------------------------------------------------------------------

    def _pick(self, accept: Callable[[_Person], float], tries: int = 20000) -> _Person | None:
        res = self.res
        rnd = self.rng.random
        n = len(res)
        if not n:
            return None
        for _ in range(tries):
            p = res[int(rnd() * n)]
            w = accept(p)
            if w and (w >= 1 or rnd() < w):
                if self.cp932 and not self._hh_ok(p.hh):
                    continue
                return p
        return None

    def _hh_ok(self, h: _Household) -> bool:
        return all(m.ok for m in h.members)

    def _delay(self, d: int, low: int, high: int, weekday: bool = True) -> int:
        """届出日 (ordinal): d + low..high days, moved off weekends when possible, ≤ end."""
        t = d + self._ri(low, high)
        if weekday:
            wd = date.fromordinal(t).weekday()
            if wd >= 5:
                back, fwd = t - (wd - 4), t + (7 - wd)
                if back >= d + low:
                    t = back
                elif fwd <= d + high:
                    t = fwd
        return min(t, self.end_ord)

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, prod = math.exp(-lam), 0, self.rng.random()
        while prod > limit:
            k += 1
            prod *= self.rng.random()
        return k

    def simulate_month(self, start: date, stop: date, fy_hook: Callable[[date], None]) -> None:
        """Produce the 異動 of the days start..stop (one month or less) into self.rows."""
        rng = self.rng
        days = (stop - start).days + 1
        years = days / 365.25
        pop = len(self.res)
        m = start.month - 1
        move = T.MOVE_SEASON[m] * 12 / sum(T.MOVE_SEASON)
        death = T.DEATH_SEASON[m] * 12 / sum(T.DEATH_SEASON)
        sz = self.sizes

        def events(rate: float, season: float, key: str | None = None) -> int:
            per_event = sz[key][0] / sz[key][1] if key else 1.0
            return self._poisson(pop * rate * years * season / per_event)

        plan: list[tuple[str, int]] = []
        for kind, n in (
            ("birth", events(RATE_BIRTH, 1.0)),
            ("death", events(RATE_DEATH, death)),
            ("out", events(RATE_MOVE_OUT, move, "out")),
            ("in", events(RATE_MOVE_IN, move, "in")),
            ("addr", events(RATE_ADDRESS, 1 + (move - 1) * 0.5, "addr")),
            ("marry", events(RATE_NAME_CHANGE, 1.0, "marry")),
            ("hh", events(RATE_HOUSEHOLD, 1.0, "hh")),
            ("fix", events(RATE_CORRECTION, 1.0)),
        ):
            plan += [(kind, 0)] * n
        first = start.toordinal()
        plan = [(kind, first + int(rng.random() * days)) for kind, _ in plan]
        rng.shuffle(plan)
        plan.sort(key=lambda e: e[1])
        handlers = {
            "birth": self._birth,
            "death": self._death,
            "out": self._move_out,
            "in": self._move_in,
            "addr": self._address_change,
            "marry": self._marriage,
            "hh": self._household_change,
            "fix": self._correction,
        }
        for kind, d in plan:
            fy_hook(date.fromordinal(d))
            persons = handlers[kind](d)
            if kind in sz and persons is not None:
                sz[kind][0] += persons
                sz[kind][1] += 1

    # Each handler creates the rows of one event on day d (an ordinal) and returns the number
    # of persons it concerned (for 婚姻: of name changes), or None if nobody suitable was found.

    def _birth(self, d: int) -> int | None:
        day = date.fromordinal(d)
        dk = _key(day)

        def mother_ok(p: _Person) -> float:
            if p.sex != 2:
                return 0.0
            w = _FERTILITY.get(((dk - p.bkey) // 10000), 0.0)
            if not w or len(p.hh.members) >= 7 or d - p.born < SIBLING_GAP:
                return 0.0
            rel = p.rel
            if rel in ("妻", "子の妻"):
                return w
            if rel in (HEAD, "子"):
                return w if p.spouse is not None else w * 0.1
            return 0.0

        mother = self._pick(mother_ok)
        if mother is None:
            return None
        h = mother.hh
        baby = _Person(1 if self.rng.random() < 0.51 else 2, day)
        baby.id = self._new_id()
        baby.sei, baby.sei_kana = mother.sei, mother.sei_kana
        baby.mei, baby.mei_kana = self._given(baby.sex, day.year)
        baby.ok = mother.ok and self._enc_ok(baby.mei)
        baby.rel = "子" if mother.rel in (HEAD, "妻") else "孫"
        baby.parent, baby.hh, baby.phone = mother, h, h.phone
        mother.born = d
        h.members.append(baby)
        self._add_res(baby)
        self._emit("11", d, self._delay(d, 0, 14, weekday=False), baby)
        return 1

    def _death(self, d: int) -> int | None:
        day = date.fromordinal(d)
        dk = _key(day)
        mort = _MORTALITY

        def dying(p: _Person) -> float:
            if p.last_d == d:
                return 0.0
            return mort[((dk - p.bkey) // 10000)] / _MORTALITY_MAX

        p = self._pick(dying, tries=50000)
        if p is None:
            return None
        t = self._delay(d, 0, 7, weekday=False)
        p.status = 3
        self._emit("21", d, t, p)
        h = p.hh
        self._leave(p)
        if p.spouse is not None:
            p.spouse.spouse = None
        if h.head is p:
            self._succession(h, p, d, t)
        return 1

    def _leave(self, p: _Person) -> None:
        """Remove p from the residents and from its household (dropping an empty household)."""
        h = p.hh
        h.members.remove(p)
        if p.ix >= 0:
            self._del_res(p)
        if not h.members:
            self._del_hh(h)

    def _succession(self, h: _Household, old: _Person, d: int, t: int) -> None:
        """After the head died: a new 世帯主 and new 続柄 for everyone (世帯変更 rows)."""
        if not h.members:
            return
        day = date.fromordinal(d)
        dk = _key(day)
        adults = [m for m in h.members if ((dk - m.bkey) // 10000) >= 18]
        if not adults:  # children left alone go to relatives elsewhere
            for m in list(h.members):
                m.status = 2
                self._emit("20", d, t, m)
                self._leave(m)
                self.gone.append(m)
            return
        new = old.spouse if old.spouse in h.members else None
        if new is None:
            kids = [m for m in adults if m.rel == "子"]
            if kids:
                kids.sort(key=lambda m: (m.spouse is None, m.birth))
                new = kids[0]
            else:
                elders = [m for m in adults if m.rel in ("父", "母")]
                new = elders[0] if elders else min(adults, key=lambda m: m.birth)
        self._relabel(h, new, old)
        for m in h.members:
            self._emit("32", d, t, m)

    def _relabel(self, h: _Household, new: _Person, old: _Person) -> None:
        """Make `new` the 世帯主 of h and restate every 続柄 relative to them."""
        rn = new.rel
        partner = new.spouse if new.spouse is not None and new.spouse.hh is h else None
        for m in h.members:
            r = m.rel
            if m is new:
                nr = HEAD
            elif rn in SPOUSES:  # the widow(er) or spouse takes over
                if m is old:
                    nr = "夫" if m.sex == 1 else "妻"
                elif r in ("子", "子の妻", "子の夫", "孫", "同居人"):
                    nr = r
                elif r in ("父", "母"):
                    nr = ("夫の" if new.sex == 2 else "妻の") + r
                else:
                    nr = "その他"
            elif rn == "子":  # the next generation takes over
                if m is old:
                    nr = "父" if m.sex == 1 else "母"
                elif r in SPOUSES:
                    nr = "父" if m.sex == 1 else "母"
                elif m is partner:
                    nr = "夫" if m.sex == 1 else "妻"
                elif r == "子":
                    older = m.birth < new.birth
                    nr = ("兄" if older else "弟") if m.sex == 1 else ("姉" if older else "妹")
                elif r == "孫":
                    nr = "子" if m.parent is new or (partner and m.parent is partner) else "その他"
                elif r in ("父", "母"):
                    nr = "祖父" if r == "父" else "祖母"
                elif r == "同居人":
                    nr = r
                else:
                    nr = "その他"
            elif rn in ("父", "母"):
                if m is old:
                    nr = "子"
                elif r in SPOUSES:
                    nr = "子の夫" if m.sex == 1 else "子の妻"
                elif r == "子":
                    nr = "孫"
                elif m is partner:
                    nr = "夫" if m.sex == 1 else "妻"
                elif r == "同居人":
                    nr = r
                else:
                    nr = "その他"
            else:
                nr = "同居人" if r == "同居人" else "その他"
            m.rel = nr
        h.head = new
        h.members.sort(key=lambda p: p is not new)

    def _unit(self, p: _Person, day: date) -> list[_Person]:
        """Who moves with p: the whole household, or p's own family within it."""
        h = p.hh
        if p is h.head or p.rel in SPOUSES:
            return list(h.members)
        dk = _key(day)
        if ((dk - p.bkey) // 10000) < 18:
            par = p.parent
            if par is not None and par.hh is h and par is not h.head and par.rel not in SPOUSES:
                return self._subfamily(par)
            return list(h.members)
        return self._subfamily(p)

    def _subfamily(self, p: _Person) -> list[_Person]:
        h = p.hh
        sp = p.spouse if p.spouse is not None and p.spouse.hh is h else None
        out = [p]
        if sp is not None:
            out.append(sp)
        out += [m for m in h.members if m.parent is not None and (m.parent is p or m.parent is sp)
                and m is not p and m is not sp]  # fmt: skip
        if h.head in out:
            return list(h.members)
        return out

    def _pick_mover(self, day: date) -> _Person | None:
        """A resident drawn by the age-dependent mobility of 転居/転出 (young adults move most)."""
        dk = _key(day)
        mob = _MOBILITY
        return self._pick(lambda q: mob[((dk - q.bkey) // 10000)])

    def _move_out(self, d: int) -> int | None:
        day = date.fromordinal(d)
        p = self._pick_mover(day)
        if p is None:
            return None
        t = self._delay(d, 0, 14)
        unit = self._unit(p, day)
        for m in unit:
            m.status = 2
            self._emit("20", d, t, m)
            self._leave(m)
            self.gone.append(m)
        return len(unit)

    def _new_person(self, sex: int, age: int, day: date) -> _Person:
        p = _Person(sex, self._birth_for_age(age, day))
        p.id = self._new_id()
        return p

    def _kids(self, parent: _Person, n: int, oldest: int, day: date) -> list[_Person]:
        """Up to n children aged 0..oldest of a moving-in parent, born SIBLING_GAP apart."""
        rnd = self.rng.random
        kids: list[_Person] = []
        births: list[int] = []
        for _ in range(n):
            for _try in range(10):
                birth = self._birth_for_age(self._ri(0, oldest), day)
                b = birth.toordinal()
                if all(abs(b - x) >= SIBLING_GAP for x in births):
                    break
            else:
                continue
            c = _Person(1 if rnd() < 0.51 else 2, birth)
            c.id = self._new_id()
            c.parent = parent
            kids.append(c)
            births.append(b)
        if births:
            parent.born = max(births)
        return kids

    def _move_in(self, d: int) -> int | None:
        rng = self.rng
        rnd = rng.random
        day = date.fromordinal(d)
        dk = _key(day)
        t = self._delay(d, 0, 14)
        r = rnd()
        if r < 0.05:  # 再転入 of someone who moved out, or a 住登外 person moving in
            pool = self.gone if r < 0.04 else self.non_res
            for _ in range(20):
                if not pool:
                    break
                i = int(rnd() * len(pool))
                p = pool[i]
                if p.status not in (2, 4) or ((dk - p.bkey) // 10000) < 18 or p.last_d >= d:
                    continue
                if self.cp932 and not p.ok:
                    continue
                pool[i] = pool[-1]
                pool.pop()
                if p.spouse is not None and p.spouse.spouse is p:
                    p.spouse.spouse = None
                p.spouse = p.parent = None
                self._found([(p, HEAD)], day)
                self._emit("10", d, t, p)
                return 1
        if r < 0.08:  # an elderly parent moves in with a son's family

            def son(q: _Person) -> float:
                if q.sex != 1 or q.rel != HEAD or len(q.hh.members) > 5:
                    return 0.0
                if not 40 <= ((dk - q.bkey) // 10000) <= 65:
                    return 0.0
                return 0.0 if any(m.rel in ("父", "母") for m in q.hh.members) else 1.0

            head = self._pick(son, tries=2000)
            if head is not None:
                h = head.hh
                ha = (dk - head.bkey) // 10000
                p = self._new_person(
                    2 if rnd() < 0.75 else 1, min(100, ha + int(rng.triangular(24, 36, 29))), day
                )
                p.sei, p.sei_kana = head.sei, head.sei_kana
                p.mei, p.mei_kana = self._given(p.sex, p.birth.year)
                p.ok = head.ok and self._enc_ok(p.mei)
                p.rel = "母" if p.sex == 2 else "父"
                p.hh, p.phone = h, h.phone
                head.parent = p
                h.members.append(p)
                self._add_res(p)
                self._emit("10", d, t, p)
                return 1
        kind = rnd()
        np = self._new_person
        if kind < 0.42:  # young single
            members = [(np(1 if rnd() < 0.55 else 2, self._ri(18, 34), day), HEAD)]
        elif kind < 0.54:  # single, middle-aged
            members = [(np(1 if rnd() < 0.6 else 2, self._ri(35, 64), day), HEAD)]
        elif kind < 0.64 or kind >= 0.86:  # couple, or family with children
            ha = int(rng.triangular(24, 48, 33))
            husband = np(1, ha, day)
            wife = np(2, max(20, ha - int(rng.triangular(-2, 7, 2))), day)
            husband.spouse, wife.spouse = wife, husband
            members = [(husband, HEAD), (wife, "妻")]
            if kind >= 0.86:
                wa = (dk - wife.bkey) // 10000
                n = 1 + (rnd() < 0.55) + (rnd() < 0.15)
                members += [(c, "子") for c in self._kids(wife, n, max(0, min(15, wa - 22)), day)]
        elif kind < 0.68:  # single parent
            pa = self._ri(25, 45)
            par = np(2 if rnd() < 0.85 else 1, pa, day)
            members = [(par, HEAD)]
            members += [
                (c, "子") for c in self._kids(par, 1 + (rnd() < 0.4), min(15, pa - 20), day)
            ]
        elif kind < 0.78:  # elderly single (often returning to the family home)
            members = [(np(2 if rnd() < 0.65 else 1, self._ri(65, 92), day), HEAD)]
        else:  # elderly couple
            ha = self._ri(65, 85)
            husband, wife = np(1, ha, day), np(2, max(60, ha - self._ri(0, 6)), day)
            husband.spouse, wife.spouse = wife, husband
            members = [(husband, HEAD), (wife, "妻")]
        self._found(members, day)
        for p, _ in members:
            self._emit("10", d, t, p)
        return len(members)

    def _address_change(self, d: int) -> int | None:
        day = date.fromordinal(d)
        p = self._pick_mover(day)
        if p is None:
            return None
        h = p.hh
        t = self._delay(d, 0, 14)
        unit = self._unit(p, day)
        if len(unit) < len(h.members) and self.rng.random() < 0.6:
            # Part of the household moves to its own place in the city: a new 世帯.
            self._split(unit, day, same_address=False)
            for m in unit:
                self._emit("31", d, t, m)
            return len(unit)
        old_phone = h.phone
        town = h.town if self.rng.random() < 0.35 else None
        self._address(h, ((_key(day) - h.head.bkey) // 10000), len(h.members), town)
        if old_phone.startswith("0823"):
            h.phone = self._landline()
            for m in h.members:
                if m.phone == old_phone:
                    m.phone = h.phone
        for m in h.members:
            self._emit("31", d, t, m)
        return len(h.members)

    def _split(self, unit: list[_Person], day: date, same_address: bool) -> _Household:
        """unit[0] (with spouse and children) leaves its household and founds a new one."""
        lead = unit[0]
        old = lead.hh
        for m in unit:
            old.members.remove(m)
        members = []
        for m in unit:
            if m is lead:
                rel = HEAD
            elif m is lead.spouse:
                rel = "夫" if m.sex == 1 else "妻"
            elif m.parent is lead or m.parent is lead.spouse:
                rel = "子"
            else:
                rel = "その他"
            members.append((m, rel))
        return self._found(members, day, like=old if same_address else None)

    def _marriage(self, d: int) -> int | None:
        rng = self.rng
        day = date.fromordinal(d)
        dk = _key(day)

        def single(p: _Person, low: int, high: int, sex: int) -> float:
            if p.sex != sex or p.spouse is not None or p.last_d == d:
                return 0.0
            a = (dk - p.bkey) // 10000
            if not low <= a <= high:
                return 0.0
            h = p.hh
            if p.rel == HEAD:
                if len(h.members) != 1:
                    return 0.0
            elif p.rel not in ("子", "孫"):
                return 0.0
            if any(m.parent is p for m in h.members):
                return 0.0
            return 1.0 if 25 <= a <= 34 else 0.5

        bride = self._pick(lambda p: single(p, 22, 42, 2))
        if bride is None:
            return None
        ba = (dk - bride.bkey) // 10000
        groom = None
        if rng.random() < 0.55:
            groom = self._pick(
                lambda p: single(p, max(22, ba - 3), ba + 8, 1) if p.hh is not bride.hh else 0.0,
                tries=3000,
            )
        outsider = groom is None
        if outsider:
            groom = self._new_person(1, max(20, ba + int(rng.triangular(-2, 8, 2))), day)
            groom.sei, groom.sei_kana = self._surname()
            groom.mei, groom.mei_kana = self._given(1, groom.birth.year)
            groom.ok = self._enc_ok(groom.sei) and self._enc_ok(groom.mei)
        wifes_name = rng.random() < 0.05
        changer, keeper = (groom, bride) if wifes_name else (bride, groom)
        changes = changer.sei != keeper.sei
        persons = 0
        if changes:
            if changer.fix is not None and changer.fix[0] == "kana":
                changer.fix = None  # the mistyped reading goes with the old surname
            changer.sei, changer.sei_kana = keeper.sei, keeper.sei_kana
            changer.ok = self._enc_ok(changer.sei) and self._enc_ok(changer.mei)
            if changer.ix >= 0:  # a resident: 氏名変更 first, then the move
                self._emit("30", d, d, changer)
                persons += 1
        join = (
            not outsider and groom.rel == HEAD and len(groom.hh.members) == 1 and rng.random() < 0.5
        )
        bride_old = bride.hh
        bride_old.members.remove(bride)
        if not bride_old.members:
            self._del_hh(bride_old)
        groom.spouse, bride.spouse = bride, groom
        if join:
            h = groom.hh
            bride.rel, bride.hh, bride.parent = "妻", h, None
            h.members.append(bride)
            self._emit("31", d, d, bride)
            return persons
        if not outsider:
            gh = groom.hh
            gh.members.remove(groom)
            if not gh.members:
                self._del_hh(gh)
        groom.parent = bride.parent = None
        self._found([(groom, HEAD), (bride, "妻")], day)
        self._emit("10" if outsider else "31", d, d, groom)
        self._emit("31", d, d, bride)
        return persons

    def _household_change(self, d: int) -> int | None:
        rng = self.rng
        day = date.fromordinal(d)
        dk = _key(day)
        if rng.random() < 0.6:
            # 世帯分離: a grown-up child (with their own family) becomes a separate 世帯 at the
            # same address.
            def child(p: _Person) -> float:
                if p.rel != "子" or len(p.hh.members) < 2:
                    return 0.0
                return 1.0 if 20 <= ((dk - p.bkey) // 10000) <= 64 else 0.0

            p = self._pick(child, tries=5000)
            if p is None:
                return None
            unit = self._subfamily(p)
            if len(unit) == len(p.hh.members):
                return None
            self._split(unit, day, same_address=True)
            for m in unit:
                self._emit("32", d, d, m)
            return len(unit)

        # 世帯主変更: an elderly head hands over to a grown-up child.
        def successor(p: _Person) -> float:
            if p.rel != "子" or ((dk - p.bkey) // 10000) < 35:
                return 0.0
            return 1.0 if ((dk - p.hh.head.bkey) // 10000) >= 70 else 0.0

        p = self._pick(successor, tries=5000)
        if p is None:
            return None
        h = p.hh
        self._relabel(h, p, h.head)
        for m in h.members:
            self._emit("32", d, d, m)
        return len(h.members)

    def _correction(self, d: int) -> int | None:
        rng = self.rng
        day = date.fromordinal(d)
        if day.weekday() >= 5:
            return None
        for _ in range(10):
            if not self.fixes:
                break
            i = int(rng.random() * len(self.fixes))
            p = self.fixes[i]
            if p.status != 1 or p.ix < 0 or p.fix is None:
                self.fixes[i] = self.fixes[-1]
                self.fixes.pop()
                continue
            if (self.cp932 and not self._hh_ok(p.hh)) or p.last_d == d:
                continue
            self.fixes[i] = self.fixes[-1]
            self.fixes.pop()
            field, value = p.fix
            p.fix = None
            if field == "birth":
                p.birth, p.bkey = value, _key(value)
            else:
                p.sei_kana = value
            self._emit("40", d, d, p)
            return 1
        # Nothing left to correct: a mistyped phone number.
        p = self._pick(lambda q: 1.0 if q.phone and q.last_d != d else 0.0, tries=200)
        if p is None:
            return None
        p.phone = self._landline() if p.phone.startswith("0823") else self._mobile()
        self._emit("40", d, d, p)
        return 1

    # --- fiscal-year categories ------------------------------------------------------------

    def fiscal_rows(self, fy: int, at: date) -> list[tuple[str, str, str, str]]:
        """保険区分 and 課税区分 of every resident on `at` (the start of fiscal year fy)."""
        year = str(fy)
        atk = _key(at)
        rows = []
        for h in self.hhs:
            ha = (atk - h.head.bkey) // 10000
            size = len(h.members)
            if size == 1:
                welfare = h.u_wel < (0.055 if ha >= 65 else 0.035)
            else:
                welfare = h.u_wel < 0.0095
            exempt_share = 0.5 if ha >= 75 else 0.36 if ha >= 65 else 0.1
            if size == 1:
                exempt_share += 0.08
            tax = "3" if welfare else "2" if h.u_tax < exempt_share else "1"
            retired = ha >= 65 and h.u_ins < 0.7
            for p in h.members:
                if welfare:
                    ins = "3"  # 生活保護 (医療扶助): neither 国保 nor 後期高齢
                else:
                    a = (atk - p.bkey) // 10000
                    if a >= 75:
                        ins = "2"
                    elif a >= 65:
                        ins = "1" if h.u_ins < 0.7 else "3"
                    elif h.u_ins < 0.2 or (retired and p.rel in (HEAD, "妻", "夫")):
                        ins = "1"
                    else:
                        ins = "3"
                rows.append((year, p.id, ins, tax))
        rows.sort(key=lambda r: r[1])
        return rows


# --- files -------------------------------------------------------------------------------------


def _write_csv(
    path: Path,
    header: tuple[str, ...],
    rows: Iterable[list[str] | tuple[str, ...]],
    encoding: str,
    crlf: bool,
    quote_all: bool = False,
) -> None:
    """Write a CSV file. In memory first for strict encodings (an unencodable row leaves no
    half-written file behind), streamed for UTF-8 (the million-row full load)."""
    terminator = "\r\n" if crlf else "\n"
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    if encoding.startswith("utf-8"):
        with path.open("w", encoding=encoding, newline="") as fh:
            writer = csv.writer(fh, lineterminator=terminator, quoting=quoting)
            writer.writerow(header)
            writer.writerows(rows)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=terminator, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


def _months(start: date, end: date) -> list[tuple[date, date]]:
    """(first, last) day of each calendar month from the month of start to that of end."""
    out = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append((date(y, m, 1), _month_end(y, m)))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


_LABELS = {
    "10": "転入",
    "11": "出生",
    "20": "転出",
    "21": "死亡",
    "30": "氏名変更",
    "31": "住所変更",
    "32": "世帯変更",
    "40": "職権修正",
}
_OUR_FILES = ("01-resident-full-*.csv", "02-resident-diff-*.csv", "03-fiscal-categories-FY*.csv")


def generate_city(
    out_dir: Path,
    residents: int = 20000,
    seed: int = 1,
    base_date: date = date(2023, 4, 1),
    end_date: date | None = None,
    municipality_name: str = "呉市",
    prefecture: str = "広島県",
    *,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write a synthetic city's resident feed into out_dir; return the files in import order.

    1. ``01-resident-full-YYYYMMDD.csv``: 全件 (異動区分 00) of `residents` persons on
       base_date plus about 0.5% 住登外 persons, UTF-8 with BOM, CRLF.
    2. ``02-resident-diff-YYYYMM.csv``: the 異動 of each month after base_date up to end_date
       (default 2026-10-31). Every 5th file is CP932 (CRLF, all fields quoted; only
       CP932-encodable people have 異動 in those months), the others UTF-8 without BOM, LF.
    3. ``03-fiscal-categories-FY{year}.csv``: 保険区分 and 課税区分 of the residents at the
       start of each fiscal year from that of base_date to that of end_date, UTF-8.

    Files of these three patterns already in out_dir are removed first. `progress`, if
    given, receives short Japanese progress messages.
    """
    end = end_date or DEFAULT_END
    if residents < 1:
        raise ValueError("residents must be at least 1")
    if end < base_date:
        raise ValueError("end_date must not be before base_date")
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for pattern in _OUR_FILES:
        for old in sorted(out_dir.glob(pattern)):
            old.unlink()

    city = _City(seed, base_date, end, municipality_name, prefecture)
    city.populate(residents)
    full = out_dir / f"01-resident-full-{base_date:%Y%m%d}.csv"
    _write_csv(full, FEED_HEADER, city.full_rows(), "utf-8-sig", crlf=True)
    say(f"全件ファイルを書きました: {full.name}（{residents + len(city.non_res):,} 人）")
    paths = [full]

    fiscal: list[Path] = []

    def write_fiscal(fy: int, at: date) -> None:
        path = out_dir / f"03-fiscal-categories-FY{fy}.csv"
        _write_csv(path, FISCAL_HEADER, city.fiscal_rows(fy, at), "utf-8", crlf=False)
        fiscal.append(path)

    write_fiscal(fiscal_year_of(base_date), base_date)
    pending = [date(y, 4, 1) for y in range(fiscal_year_of(base_date) + 1, fiscal_year_of(end) + 1)]

    def fy_hook(day: date) -> None:
        # Called before each event: a fiscal year's snapshot holds everything up to 1 April.
        while pending and day > pending[0]:
            write_fiscal(pending[0].year, pending[0])
            pending.pop(0)

    n_file = 0
    for first, last in _months(base_date, end):
        start = max(first, base_date + timedelta(days=1))
        stop = min(last, end)
        if start > stop:
            continue
        n_file += 1
        city.cp932 = n_file % CP932_EVERY == 0
        city.rows = []
        city.simulate_month(start, stop, fy_hook)
        fy_hook(stop + timedelta(days=1))  # snapshots dated up to the end of this month
        rows = sorted(city.rows, key=lambda r: (r[1], r[2]))
        path = out_dir / f"02-resident-diff-{first:%Y%m}.csv"
        encoding = "utf-8"
        if city.cp932:
            try:
                _write_csv(path, FEED_HEADER, rows, "cp932", crlf=True, quote_all=True)
                encoding = "cp932"
            except UnicodeEncodeError:  # pragma: no cover - the simulation avoids this
                _write_csv(path, FEED_HEADER, rows, "utf-8", crlf=False)
        else:
            _write_csv(path, FEED_HEADER, rows, "utf-8", crlf=False)
        paths.append(path)
        say(
            f"異動ファイルを書きました: {path.name}"
            f"（{len(rows):,} 行、{encoding}、住民 {len(city.res):,} 人）"
        )
    while pending:  # end_date on 1 April exactly, or no month after base_date
        write_fiscal(pending[0].year, pending[0])
        pending.pop(0)
    counts = "、".join(f"{label} {city.counts.get(code, 0):,}" for code, label in _LABELS.items())
    say(f"異動の内訳: {counts}")
    for path in fiscal:
        say(f"年度別区分ファイルを書きました: {path.name}")
    return paths + fiscal
