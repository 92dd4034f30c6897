"""The programme catalogue of one fiscal year: plain, frozen data parsed from a reviewable file.

Why data and not code: the rules change by fiscal year (HPV 検査単独法 from FY2024, periodontal
ages 20/30 from FY2024) and by city (呉市's even-age 胃内視鏡), so a year's catalogue is a
document (a TOML file under version control, then a versioned row that staff may copy forward
and adjust), and one rule engine (:mod:`kenshin.programs.rules` for one person,
the roster build's SQL for everybody) reads it. The format is described in docs/programmes.md.

:func:`parse` turns the document (a dict, as ``tomllib`` or the JSON column gives it) into a
:class:`Catalogue` and refuses anything it does not understand, with a Japanese message that
names the place (``programmes[2].methods[1].min_age``): a typo in a rule file must never
silently widen or narrow a roster.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1

SEXES = {"any": 0, "male": 1, "female": 2}  # 住基 sex codes: 1 男, 2 女
SEX_LABELS = {"any": "男女", "male": "男性", "female": "女性"}
INTERVALS = {
    "annual": "毎年度",
    "biennial": "2年に1回（毎年度受診機会あり）",
    "five_yearly": "5年に1回（節目年齢）",
    "milestone": "節目年齢のみ",
    "once": "生涯に1回",
}
COHORTS = {"": "なし", "even_age": "偶数年齢", "odd_age": "奇数年齢"}
SETTINGS = {"individual": "個別", "group": "集団"}
EXEMPTIONS = {
    "public_assistance": "生活保護",
    "coupon": "無料クーポン",
    "tax_exempt": "市民税非課税世帯",
    "age70": "70歳以上",
    "late_elderly": "後期高齢者医療",
}


# Codes are stored in narrow columns and compiled into the roster build's SQL: lower-case ASCII.
_METHOD_CODE = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
_PROGRAMME_CODE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


class CatalogueError(ValueError):
    """The document does not describe a valid catalogue; the message says where and why."""


@dataclass(frozen=True)
class Coupon:
    """A free-screening coupon cohort: people who turned ``turned_age`` in the previous FY."""

    turned_age: int
    prefix: str
    name: str


@dataclass(frozen=True)
class Method:
    """One screening method (検査方法) and the rule that decides who is eligible for it."""

    code: str
    name: str
    programme: str
    sex: str  # any | male | female
    min_age: int
    max_age: int | None
    interval: str  # annual | biennial | five_yearly | milestone | once
    milestones: tuple[int, ...]
    cohort: str  # "" | even_age | odd_age
    smoking_index_min: int | None
    with_programme: str  # "" or the programme this one is done together with (no roster)
    # False for a city's add-on (乳房超音波 in the 30s): its exams do not count as screening by
    # the programme for the interval rules (a woman scanned at 39 still starts MMG at 40).
    counts_for_programme: bool
    settings: tuple[str, ...]
    copay: Mapping[str, int]
    unit_price: Mapping[str, int]
    coupon: Coupon | None
    enabled: bool = True

    @property
    def sex_code(self) -> int:
        """0 for both sexes, else the 住基 code the person's sex must equal."""
        return SEXES[self.sex]

    @property
    def rostered(self) -> bool:
        """A method done together with another programme's exam has no roster of its own."""
        return self.enabled and not self.with_programme


@dataclass(frozen=True)
class Programme:
    code: str
    name: str
    one_method_per_year: bool
    methods: tuple[Method, ...]


@dataclass(frozen=True)
class Fees:
    early_months: tuple[int, ...]
    exemptions: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    fiscal_year: int
    municipality_code: str
    title: str
    fees: Fees
    programmes: tuple[Programme, ...]
    methods_by_code: Mapping[str, Method] = field(repr=False, compare=False, default_factory=dict)

    def method(self, code: str) -> Method:
        return self.methods_by_code[code]

    @property
    def methods(self) -> tuple[Method, ...]:
        return tuple(m for p in self.programmes for m in p.methods)

    @property
    def not_counting_methods(self) -> frozenset[str]:
        """Methods whose exams do not count as screening by their programme (city add-ons)."""
        return frozenset(m.code for m in self.methods if not m.counts_for_programme)

    def programme(self, code: str) -> Programme:
        for p in self.programmes:
            if p.code == code:
                return p
        raise KeyError(code)


# ------------------------------------------------------------------------------ parsing


class _Reader:
    """Reads one table of the document and remembers where it is, for the error messages."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, Mapping):
            raise CatalogueError(f"{where or '文書'}: 表（キーと値の組）である必要があります")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., label: str = ""):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise CatalogueError(f"{self._at(key)}: 必須の項目がありません{label}")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind is int:
            raise CatalogueError(f"{self._at(key)}: 整数で書いてください（{value!r}）")
        if not isinstance(value, kind):
            raise CatalogueError(f"{self._at(key)}: 形式が違います（{value!r}）")
        return value

    def choice(self, key: str, choices: Mapping[str, str], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            allowed = "、".join(k for k in choices if k)
            raise CatalogueError(f"{self._at(key)}: {value!r} は使えません（使える値: {allowed}）")
        return value

    def age(self, key: str, default: Any = ...) -> int | None:
        value = self.get(key, int, default)
        if value is not None and not 0 <= value <= 130:
            raise CatalogueError(f"{self._at(key)}: 年齢は 0〜130 で書いてください（{value}）")
        return value

    def yen(self, key: str) -> dict[str, int]:
        table = _Reader(self.get(key, dict), self._at(key))
        out: dict[str, int] = {}
        for setting in table.data:
            if setting not in SETTINGS:
                raise CatalogueError(f"{table._at(setting)}: 方式は individual か group です")
            amount = table.get(setting, int)
            if not 0 <= amount <= 1_000_000:
                raise CatalogueError(f"{table._at(setting)}: 金額が範囲外です（{amount}）")
            out[setting] = amount
        return out

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            raise CatalogueError(f"{self._at(unknown[0])}: この項目は定義されていません")


def _method(data: Any, where: str, programme: str) -> Method:
    r = _Reader(data, where)
    code = r.get("code", str)
    settings_ = tuple(r.get("settings", list))
    for s in settings_:
        if s not in SETTINGS:
            raise CatalogueError(f"{where}.settings: 方式は individual か group です（{s!r}）")
    if not settings_:
        raise CatalogueError(f"{where}.settings: 個別・集団のどちらかが必要です")
    coupon = None
    if "coupon" in r.data:
        c = _Reader(r.get("coupon", dict), f"{where}.coupon")
        coupon = Coupon(c.age("turned_age"), c.get("prefix", str), c.get("name", str))
        c.done()
        if not (coupon.prefix.isascii() and coupon.prefix.isalpha() and len(coupon.prefix) == 1):
            raise CatalogueError(f"{where}.coupon.prefix: 英字 1 文字で書いてください")
    method = Method(
        code=code,
        name=r.get("name", str),
        programme=programme,
        sex=r.choice("sex", SEXES),
        min_age=r.age("min_age"),
        max_age=r.age("max_age", None),
        interval=r.choice("interval", INTERVALS),
        milestones=tuple(r.get("milestones", list, [])),
        cohort=r.choice("cohort", COHORTS, ""),
        smoking_index_min=r.get("smoking_index_min", int, None),
        with_programme=r.get("with_programme", str, ""),
        settings=settings_,
        copay=r.yen("copay"),
        unit_price=r.yen("unit_price"),
        coupon=coupon,
        counts_for_programme=r.get("counts_for_programme", bool, True),
        enabled=r.get("enabled", bool, True),
    )
    r.done()
    _check_method(method, where)
    return method


def _check_method(m: Method, where: str) -> None:
    if not _METHOD_CODE.match(m.code):
        raise CatalogueError(f"{where}.code: 英小文字・数字・_ で 30 文字以内です（{m.code!r}）")
    if m.max_age is not None and m.max_age < m.min_age:
        raise CatalogueError(f"{where}.max_age: min_age（{m.min_age}）より小さくできません")
    if any(not isinstance(a, int) or isinstance(a, bool) for a in m.milestones):
        raise CatalogueError(f"{where}.milestones: 年齢（整数）の並びで書いてください")
    if m.interval in ("five_yearly", "milestone", "once") and not m.milestones:
        raise CatalogueError(f"{where}.milestones: この受診間隔には節目年齢が必要です")
    if m.interval in ("annual", "biennial") and m.milestones:
        raise CatalogueError(f"{where}.milestones: 毎年度・2年に1回の検診には節目年齢を書きません")
    for a in m.milestones:
        if a < m.min_age or (m.max_age is not None and a > m.max_age):
            raise CatalogueError(f"{where}.milestones: {a}歳が対象年齢の範囲外です")
    if m.cohort and m.interval != "biennial":
        raise CatalogueError(f"{where}.cohort: 偶数・奇数年齢は 2年に1回の検診だけに使えます")
    if m.smoking_index_min is not None and not 1 <= m.smoking_index_min <= 10_000:
        raise CatalogueError(f"{where}.smoking_index_min: 1〜10000 で書いてください")
    for table, label in ((m.copay, "copay"), (m.unit_price, "unit_price")):
        missing = [s for s in m.settings if s not in table]
        if missing:
            raise CatalogueError(
                f"{where}.{label}: 実施する方式 {SETTINGS[missing[0]]} の金額がありません"
            )


def parse(data: Mapping[str, Any]) -> Catalogue:
    """Validate a catalogue document and return it as frozen data (CatalogueError if invalid)."""
    r = _Reader(data, "")
    if r.get("format", int) != FORMAT:
        raise CatalogueError(f"format: この版の Kenshin が読めるのは format = {FORMAT} です")
    fy = r.get("fiscal_year", int)
    if not 2000 <= fy <= 2100:
        raise CatalogueError(f"fiscal_year: 年度が範囲外です（{fy}）")
    mc = r.get("municipality_code", str)
    if not (len(mc) == 6 and mc.isdigit()):
        raise CatalogueError("municipality_code: 団体コード（6桁の数字）で書いてください")
    f = _Reader(r.get("fees", dict), "fees")
    months = tuple(f.get("early_months", list, []))
    if any(not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= 12 for m in months):
        raise CatalogueError("fees.early_months: 月（1〜12）の並びで書いてください")
    exemptions = tuple(f.get("exemptions", list, []))
    for e in exemptions:
        if e not in EXEMPTIONS:
            allowed = "、".join(EXEMPTIONS)
            raise CatalogueError(f"fees.exemptions: {e!r} は使えません（使える値: {allowed}）")
    f.done()
    programmes: list[Programme] = []
    seen_methods: dict[str, Method] = {}
    raw_programmes = r.get("programmes", list)
    for i, raw in enumerate(raw_programmes):
        where = f"programmes[{i}]"
        p = _Reader(raw, where)
        code = p.get("code", str)
        if not _PROGRAMME_CODE.match(code):
            raise CatalogueError(f"{where}.code: 英小文字・数字・_ で 20 文字以内です（{code!r}）")
        methods = tuple(
            _method(m, f"{where}.methods[{j}]", code) for j, m in enumerate(p.get("methods", list))
        )
        if not methods:
            raise CatalogueError(f"{where}.methods: 検査方法が 1 つ以上必要です")
        programme = Programme(code, p.get("name", str), p.get("one_method_per_year", bool, False),
                              methods)  # fmt: skip
        p.done()
        if any(q.code == code for q in programmes):
            raise CatalogueError(f"{where}.code: 検診事業 {code!r} が重複しています")
        for m in methods:
            if m.code in seen_methods:
                raise CatalogueError(f"{where}: 検査方法 {m.code!r} が重複しています")
            seen_methods[m.code] = m
        programmes.append(programme)
    prefixes: dict[str, str] = {}
    for m in seen_methods.values():
        if m.coupon is not None:
            if m.coupon.prefix in prefixes:
                raise CatalogueError(
                    f"{m.code}.coupon.prefix: {m.coupon.prefix!r} は {prefixes[m.coupon.prefix]} の"
                    "クーポンと同じです（番号が重なります）"
                )
            prefixes[m.coupon.prefix] = m.code
    codes = {p.code for p in programmes}
    for m in seen_methods.values():
        if m.with_programme and (m.with_programme not in codes or m.with_programme == m.programme):
            raise CatalogueError(
                f"{m.code}.with_programme: 同時に実施する検診事業 {m.with_programme!r} がありません"
            )
    catalogue = Catalogue(
        fiscal_year=fy,
        municipality_code=mc,
        title=r.get("title", str),
        fees=Fees(months, exemptions),
        programmes=tuple(programmes),
        methods_by_code=seen_methods,
    )
    r.done()
    return catalogue


def load_file(path: Path | str) -> tuple[dict[str, Any], Catalogue]:
    """Read a TOML catalogue file: the raw document (kept as written) and its parsed form."""
    path = Path(path)
    try:
        # utf-8-sig: a file saved by Windows Notepad starts with a BOM, which TOML forbids.
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise CatalogueError(
            f"{path.name}: UTF-8 で保存してください（Shift_JIS などは読めません）"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path.name}: TOML として読めません（{exc}）") from None
    return data, parse(data)


SHIPPED_DIR = Path(__file__).resolve().parent / "catalogues"


def shipped_files() -> list[Path]:
    """The default catalogues that ship with the project (one file per fiscal year)."""
    return sorted(SHIPPED_DIR.glob("*.toml"))


# ------------------------------------------------------------------------------ writing

# The order in which a method's keys are written (and shown): the order of the shipped files.
_TOP_KEYS = ("format", "fiscal_year", "municipality_code", "title")
_FEES_KEYS = ("early_months", "exemptions")
_PROGRAMME_KEYS = ("code", "name", "one_method_per_year")
_METHOD_KEYS = (
    "code", "name", "sex", "min_age", "max_age", "interval", "milestones", "cohort",
    "smoking_index_min", "with_programme", "counts_for_programme", "settings", "copay",
    "unit_price", "coupon", "enabled",
)  # fmt: skip


def _ordered(table: Mapping[str, Any], keys: tuple[str, ...]) -> list[tuple[str, Any]]:
    """The table's items in the documented order; keys the format does not know come last
    (parse refuses them, so a valid document has none)."""
    known = [(k, table[k]) for k in keys if k in table]
    return known + [(k, v) for k, v in table.items() if k not in keys]


def to_toml(document: Mapping[str, Any], header: tuple[str, ...] = ()) -> str:
    """Write a catalogue document as TOML in the layout of the shipped files.

    Why tomlkit and not a hand-written writer: quoting and escaping of TOML strings is easy to
    get subtly wrong, and tomlkit (unlike tomli-w) writes the inline tables and one-line arrays
    that keep a method on one screen, as in the files staff review. ``header`` lines become
    comments at the top. Comments of the original file are not kept: the stored version is a
    document, not a file. Keys come in the documented order whatever order the database
    returned them in (PostgreSQL's jsonb does not keep it).
    """
    import tomlkit

    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line))
    if header:
        doc.add(tomlkit.nl())
    for key, value in _ordered(document, _TOP_KEYS):
        if key not in ("fees", "programmes"):
            doc.add(key, value)
    if "fees" in document:
        fees = tomlkit.table()
        for key, value in _ordered(document["fees"], _FEES_KEYS):
            fees.add(key, value)
        doc.add(tomlkit.nl())
        doc.add("fees", fees)
    programmes = tomlkit.aot()
    for raw in document.get("programmes", []):
        table = tomlkit.table()
        for key, value in _ordered(raw, _PROGRAMME_KEYS):
            if key != "methods":
                table.add(key, value)
        methods = tomlkit.aot()
        for method in raw.get("methods", []):
            row = tomlkit.table()
            for key, value in _ordered(method, _METHOD_KEYS):
                if isinstance(value, Mapping):
                    inline = tomlkit.inline_table()
                    inline.update(value)
                    value = inline
                row.add(key, value)
            methods.append(row)
        table.add("methods", methods)
        programmes.append(table)
    doc.add("programmes", programmes)
    return tomlkit.dumps(doc)


# ------------------------------------------------------------------------------ comparing


@dataclass(frozen=True)
class Change:
    """One difference between two catalogues, worded for staff.

    ``子宮頸部細胞診: 上限年齢 — → 29歳``
    """

    subject: str  # a method's or programme's name, or 自己負担 for the fees settings
    item: str
    before: str = ""
    after: str = ""

    def __str__(self) -> str:
        if not self.before and not self.after:
            return f"{self.subject}: {self.item}"
        return f"{self.subject}: {self.item} {self.before} → {self.after}"


NONE = "—"


def _age(value: int | None) -> str:
    return NONE if value is None else f"{value}歳"


def _ages(values: tuple[int, ...]) -> str:
    return "・".join(str(a) for a in values) + "歳" if values else NONE


def _yen(value: int | None) -> str:
    return NONE if value is None else f"{value:,}円"


def _coupon(c: Coupon | None) -> str:
    return NONE if c is None else f"{c.name}（前年度に{c.turned_age}歳、番号の頭 {c.prefix}）"


def _settings(values: tuple[str, ...]) -> str:
    return "・".join(SETTINGS[s] for s in values) or NONE


def _method_changes(old: Method, new: Method, programme_names: Mapping[str, str]) -> list[Change]:
    fields: list[tuple[str, str, str]] = [
        ("名称", old.name, new.name),
        ("検診事業", programme_names.get(old.programme, old.programme),
         programme_names.get(new.programme, new.programme)),
        ("対象の性別", SEX_LABELS[old.sex], SEX_LABELS[new.sex]),
        ("下限年齢", _age(old.min_age), _age(new.min_age)),
        ("上限年齢", _age(old.max_age), _age(new.max_age)),
        ("受診間隔", INTERVALS[old.interval], INTERVALS[new.interval]),
        ("節目年齢", _ages(old.milestones), _ages(new.milestones)),
        ("偶数・奇数年齢", COHORTS[old.cohort], COHORTS[new.cohort]),
        ("喫煙指数の下限", str(old.smoking_index_min or NONE), str(new.smoking_index_min or NONE)),
        ("同時に実施する検診", programme_names.get(old.with_programme, old.with_programme or NONE),
         programme_names.get(new.with_programme, new.with_programme or NONE)),
        ("実施方式", _settings(old.settings), _settings(new.settings)),
    ]  # fmt: skip
    for setting, label in SETTINGS.items():
        fields.append(
            (f"自己負担（{label}）", _yen(old.copay.get(setting)), _yen(new.copay.get(setting)))
        )
    for setting, label in SETTINGS.items():
        fields.append(
            (
                f"委託料単価（{label}）",
                _yen(old.unit_price.get(setting)),
                _yen(new.unit_price.get(setting)),
            )
        )
    fields.append(("無料クーポン", _coupon(old.coupon), _coupon(new.coupon)))
    fields.append(
        ("実施", "する" if old.enabled else "しない", "する" if new.enabled else "しない")
    )
    return [Change(new.name, item, a, b) for item, a, b in fields if a != b]


def changes(old: Catalogue, new: Catalogue) -> list[Change]:
    """What differs from ``old`` to ``new``, in the order of ``new``'s programmes and methods.

    Pure: two parsed catalogues in, a short list out — the year page shows it against the
    previous fiscal year, the version page against the previous version. Titles and the
    fiscal year itself are not differences worth listing.
    """
    out: list[Change] = []
    (old_exemptions, old_months), (new_exemptions, new_months) = (
        describe_fees(old.fees),
        describe_fees(new.fees),
    )
    if old_exemptions != new_exemptions:
        out.append(Change("自己負担", "免除の種類（判定の順）", old_exemptions, new_exemptions))
    if old_months != new_months:
        out.append(Change("自己負担", "前年度の課税区分で判定する受診月", old_months, new_months))
    names = {p.code: p.name for p in (*old.programmes, *new.programmes)}
    old_programmes = {p.code: p for p in old.programmes}
    for p in new.programmes:
        before = old_programmes.get(p.code)
        if before is None:
            out.append(Change(p.name, "検診事業を追加"))
            continue
        if before.name != p.name:
            out.append(Change(p.name, "名称", before.name, p.name))
        if before.one_method_per_year != p.one_method_per_year:
            yes_no = {True: "1つだけ", False: "複数可"}
            out.append(
                Change(
                    p.name,
                    "同じ年度に受けられる検査方法",
                    yes_no[before.one_method_per_year],
                    yes_no[p.one_method_per_year],
                )
            )
    new_codes = {p.code for p in new.programmes}
    for p in old.programmes:
        if p.code not in new_codes:
            out.append(Change(p.name, "検診事業を削除"))
    for m in new.methods:
        before_m = old.methods_by_code.get(m.code)
        if before_m is None:
            out.append(Change(m.name, "検査方法を追加"))
        else:
            out.extend(_method_changes(before_m, m, names))
    for m in old.methods:
        if m.code not in new.methods_by_code:
            out.append(Change(m.name, "検査方法を削除"))
    return out


# ------------------------------------------------------------------------------ adjusting

# What the staff screen may adjust on a method (the rest stays as the file wrote it).
ADJUSTABLE = (
    "min_age", "max_age", "cohort", "milestones", "settings", "copay", "unit_price", "enabled",
)  # fmt: skip


NO_CHANGE = "変更がありません（前の版と同じ内容は保存しません）"


def adjusted(
    document: Mapping[str, Any], method_code: str, values: Mapping[str, Any]
) -> tuple[dict[str, Any], Catalogue]:
    """The document with one method adjusted, validated: (new document, its catalogue).

    CatalogueError (with the place) if the result is not a valid catalogue or changes nothing.
    Compared as rules, not as text: leaving out ``enabled = true`` is no change.
    """
    new = with_method_values(document, method_code, values)
    catalogue = parse(new)
    if catalogue == parse(document):
        raise CatalogueError(NO_CHANGE)
    return new, catalogue


def with_method_values(
    document: Mapping[str, Any], method_code: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """A copy of ``document`` with one method's adjustable items replaced by ``values``.

    Pure and unvalidated (the caller parses the result): an empty value (None, "", []) removes
    the key, so the document says "no upper age" by leaving ``max_age`` out, as files do.
    KeyError if the method is not in the document.
    """
    import copy

    unknown = set(values) - set(ADJUSTABLE)
    if unknown:
        raise ValueError(f"adjustable items only: {sorted(unknown)}")
    new = copy.deepcopy(dict(document))
    for programme in new.get("programmes", []):
        for method in programme.get("methods", []):
            if method.get("code") == method_code:
                for key, value in values.items():
                    if value is None or value == "" or value == [] or value == {}:
                        method.pop(key, None)
                    else:
                        method[key] = copy.deepcopy(value)
                return new
    raise KeyError(method_code)


# ------------------------------------------------------------------------------ describing


@dataclass(frozen=True)
class MethodSummary:
    """One method in words, as the year page and ``kenshin programs show`` list it."""

    code: str
    name: str
    sex: str
    ages: str
    interval: str
    milestones: str
    cohort: str
    settings: str
    copay: str
    unit_price: str
    coupon: str
    enabled: str
    extra: str  # 喫煙指数 / 同時実施: conditions most methods do not have
    amounts: tuple[tuple[str, str, str], ...] = ()  # (方式, 自己負担, 委託料単価) per setting
    coupon_short: str = NONE  # 前年度に40歳（B）


def _per_setting(m: Method, amounts: Mapping[str, int]) -> str:
    return "、".join(f"{SETTINGS[s]} {_yen(amounts.get(s))}" for s in m.settings)


def describe(m: Method, programme_names: Mapping[str, str] | None = None) -> MethodSummary:
    names = programme_names or {}
    extra = []
    if m.smoking_index_min is not None:
        extra.append(f"喫煙指数 {m.smoking_index_min} 以上")
    if m.with_programme:
        extra.append(f"{names.get(m.with_programme, m.with_programme)}と同時に実施（名簿なし）")
    ages = f"{m.min_age}歳〜" + (f"{m.max_age}歳" if m.max_age is not None else "")
    return MethodSummary(
        code=m.code,
        name=m.name,
        sex=SEX_LABELS[m.sex],
        ages=ages,
        interval=INTERVALS[m.interval],
        milestones=_ages(m.milestones),
        cohort=COHORTS[m.cohort] if m.cohort else NONE,
        settings=_settings(m.settings),
        copay=_per_setting(m, m.copay),
        unit_price=_per_setting(m, m.unit_price),
        coupon=_coupon(m.coupon),
        enabled="実施" if m.enabled else "実施しない",
        extra="、".join(extra),
        amounts=tuple(
            (SETTINGS[s], _yen(m.copay.get(s)), _yen(m.unit_price.get(s))) for s in m.settings
        ),
        coupon_short=f"前年度に{m.coupon.turned_age}歳（{m.coupon.prefix}）" if m.coupon else NONE,
    )


def describe_fees(fees: Fees) -> tuple[str, str]:
    """(免除の種類 in order, 前年度の課税区分で判定する月) in words."""
    return (
        "、".join(EXEMPTIONS[e] for e in fees.exemptions) or NONE,
        "・".join(f"{m}月" for m in fees.early_months) or NONE,
    )
