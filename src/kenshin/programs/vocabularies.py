"""Result vocabularies of the primary exams and which values mean 要精検 — data and pure rules.

Why here: a method's result items belong with the method (the catalogue), and every path that
takes in a result — the manual entry screen, the file and FHIR intake, the follow-up case
that a 要精検 opens — must accept the same values and draw the same conclusion from them. The
vocabularies are national (学会の判定基準, the 事業報告's 作成要領), so they live in one reviewed
data file, ``vocabularies.toml``, not in a year's catalogue; this module parses it once and
answers two questions: is a result well formed (:func:`check_result`), and does it make the
exam 要精検 for the 事業報告 (:func:`needs_seiken`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

FILE = Path(__file__).with_name("vocabularies.toml")
RULES = ("any", "triage", "days")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,30}$")


class VocabularyError(ValueError):
    """The vocabulary file is malformed (a message naming the place, in Japanese)."""


@dataclass(frozen=True)
class Value:
    code: str
    label: str
    seiken: bool  # 要精検 for the 事業報告
    jami: str  # the value's code in the national format's table ('' where not known)
    note: str  # what staff should know beside the category (再撮影, 要精検（がん以外）…)
    # Where the national 判定 alone cannot carry the value (胃: 所見あり/なし), its code in the
    # vocabulary's jami_target_system, the programme's 精密検査対象有無 ('' otherwise).
    jami_target: str = ""
    # False: written in the national format as (jami, jami_target) but never read back as
    # this value — another value is that pair's exact reading (胃X線 カテゴリー3a is written
    # as 所見あり・要精密検査, which reads back as 所見あり・要精検, 区分の記載なし).
    jami_read: bool = True


@dataclass(frozen=True)
class Vocabulary:
    code: str
    name: str
    source: str
    jami_system: str  # OID of the national code table ('' where the format has none)
    values: tuple[Value, ...]
    jami_target_system: str = ""  # OID of the 精密検査対象有無 table paired with jami_system

    def value(self, code: str) -> Value | None:
        return self._by_code.get(code)

    @cached_property
    def _by_code(self) -> dict[str, Value]:
        # Asked for every result of every exam (a 300,000-row file asks ~400,000 times).
        return {v.code: v for v in self.values}


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    vocabulary: Vocabulary
    required: bool


@dataclass(frozen=True)
class MethodResults:
    """The result items a method's exam records, and how they decide 要精検."""

    method: str
    rule: str  # "any" | "triage" | "days"
    items: tuple[Item, ...]

    def item(self, code: str) -> Item | None:
        return next((i for i in self.items if i.code == code), None)


@dataclass(frozen=True)
class SeikenMethod:
    code: str
    label: str
    inappropriate: bool  # does not count as 精検 (the person is 精検未受診)
    appropriate_after: tuple[str, ...]  # …except after these primary "method:value"s

    def counts_after(self, primary_method: str, primary_result: str) -> bool:
        """Whether this 精検 method counts as 精検 after the given primary exam."""
        return not self.inappropriate or f"{primary_method}:{primary_result}" in (
            self.appropriate_after
        )


@dataclass(frozen=True)
class SeikenSpec:
    """How a programme's 精密検査 is recorded: its methods and its result categories."""

    programme: str
    methods: tuple[SeikenMethod, ...]
    results: tuple[str, ...]  # codes of SEIKEN_RESULTS
    report_within_days: int  # no report after this many days: on the worklist

    def method(self, code: str) -> SeikenMethod | None:
        return next((m for m in self.methods if m.code == code), None)


@dataclass(frozen=True)
class Vocabularies:
    """The whole shipped file: result items per method, 精検 per programme."""

    methods: dict[str, MethodResults]
    seiken: dict[str, SeikenSpec]
    seiken_results: dict[str, str]  # code → label (がんであった者 …)


@dataclass(frozen=True)
class ResultProblem:
    """One thing wrong with a result, as staff read it (the item's name, what was expected)."""

    item: str  # item code ('' when the problem is the method itself)
    message: str


def parse(data: Mapping[str, Any]) -> Vocabularies:
    """The vocabulary document → its parts; refuses a malformed one, naming the place."""
    if data.get("format") != 1:
        raise VocabularyError("語彙ファイルの format は 1 にしてください")
    vocabularies: dict[str, Vocabulary] = {}
    for n, raw in enumerate(data.get("vocabulary", []), start=1):
        vocabulary = _vocabulary(raw, f"{n} 番目の vocabulary")
        if vocabulary.code in vocabularies:
            raise VocabularyError(f"語彙 {vocabulary.code} が二度定義されています")
        vocabularies[vocabulary.code] = vocabulary
    methods: dict[str, MethodResults] = {}
    for n, raw in enumerate(data.get("method", []), start=1):
        where = f"{n} 番目の method（{raw.get('code', '')}）"
        code = _code(raw.get("code"), where)
        rule = raw.get("rule", "any")
        if rule not in RULES:
            raise VocabularyError(f"{where}: rule は {' / '.join(RULES)} のどれかです")
        items = []
        for m, item in enumerate(raw.get("items", []), start=1):
            place = f"{where} の {m} 番目の項目"
            vocabulary = vocabularies.get(item.get("vocabulary", ""))
            if vocabulary is None:
                raise VocabularyError(f"{place}: 語彙 {item.get('vocabulary')!r} がありません")
            items.append(
                Item(
                    code=_code(item.get("code"), place),
                    name=str(item.get("name") or ""),
                    vocabulary=vocabulary,
                    required=bool(item.get("required", True)),
                )
            )
        if not items:
            raise VocabularyError(f"{where}: 結果の項目がありません")
        if len({i.code for i in items}) != len(items):
            raise VocabularyError(f"{where}: 同じ項目コードが二度あります")
        if rule == "triage" and (items[0].required is False or len(items) < 2):
            raise VocabularyError(f"{where}: triage は必須の最初の項目と、判定する項目が要ります")
        if rule == "days" and (
            len(items) < 2
            or any(i.required for i in items)
            or len({i.vocabulary.code for i in items}) != 1
        ):
            raise VocabularyError(
                f"{where}: days は同じ語彙の任意の項目（各日、最後に全体の判定）が要ります"
            )
        if code in methods:
            raise VocabularyError(f"{where}: 検査方法 {code} が二度定義されています")
        methods[code] = MethodResults(method=code, rule=rule, items=tuple(items))
    seiken_results = {str(k): str(v) for k, v in data.get("seiken_results", {}).items()}
    seiken: dict[str, SeikenSpec] = {}
    for n, raw in enumerate(data.get("seiken", []), start=1):
        spec = _seiken(raw, f"{n} 番目の seiken（{raw.get('programme', '')}）", seiken_results)
        if spec.programme in seiken:
            raise VocabularyError(f"精検の定義 {spec.programme} が二度あります")
        seiken[spec.programme] = spec
    return Vocabularies(methods=methods, seiken=seiken, seiken_results=seiken_results)


def _seiken(raw: Mapping[str, Any], where: str, labels: Mapping[str, str]) -> SeikenSpec:
    programme = _code(raw.get("programme"), where)
    results = tuple(raw.get("results", []))
    unknown = [r for r in results if r not in labels]
    if not results or unknown:
        raise VocabularyError(f"{where}: results は seiken_results のコードです（{unknown}）")
    methods = tuple(
        SeikenMethod(
            code=_code(m.get("code"), f"{where} の {i} 番目の方法"),
            label=str(m.get("label") or ""),
            inappropriate=bool(m.get("inappropriate", False)),
            appropriate_after=tuple(m.get("appropriate_after", ())),
        )
        for i, m in enumerate(raw.get("methods", []), start=1)
    )
    if not methods or len({m.code for m in methods}) != len(methods):
        raise VocabularyError(f"{where}: 精検の方法がないか、同じコードが二度あります")
    days = raw.get("report_within_days", 90)
    if not isinstance(days, int) or not 1 <= days <= 730:
        raise VocabularyError(f"{where}: report_within_days は 1〜730 の日数です")
    return SeikenSpec(
        programme=programme, methods=methods, results=results, report_within_days=days
    )


def _vocabulary(raw: Mapping[str, Any], where: str) -> Vocabulary:
    code = _code(raw.get("code"), where)
    values = []
    for n, value in enumerate(raw.get("values", []), start=1):
        place = f"語彙 {code} の {n} 番目の値"
        if not isinstance(value.get("seiken"), bool):
            raise VocabularyError(f"{place}: seiken は true か false で書いてください")
        values.append(
            Value(
                code=_code(value.get("code"), place),
                label=str(value.get("label") or ""),
                seiken=value["seiken"],
                jami=str(value.get("jami", "")),
                note=str(value.get("note", "")),
                jami_target=str(value.get("jami_target", "")),
                jami_read=_flag(value.get("jami_read", True), f"{place}: jami_read"),
            )
        )
    if not values:
        raise VocabularyError(f"語彙 {code}: 値がありません")
    if len({v.code for v in values}) != len(values):
        raise VocabularyError(f"語彙 {code}: 同じ値コードが二度あります")
    return Vocabulary(
        code=code,
        name=str(raw.get("name") or code),
        source=str(raw.get("source") or ""),
        jami_system=str(raw.get("jami_system", "")),
        values=tuple(values),
        jami_target_system=str(raw.get("jami_target_system", "")),
    )


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise VocabularyError(f"{where} は true か false で書いてください")
    return value


def _code(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _CODE.match(value):
        raise VocabularyError(f"{where}: code は英数字・-・_ の 30 文字以内です（{value!r}）")
    return value


@cache
def shipped() -> Vocabularies:
    """The vocabularies shipped with Kenshin (parsed once per process)."""
    return parse(tomllib.loads(FILE.read_text(encoding="utf-8")))


def results_of(method: str) -> MethodResults | None:
    """The result items of a method (None for a method that records no coded result)."""
    return shipped().methods.get(method)


def seiken_specs() -> tuple[SeikenSpec, ...]:
    """Every programme whose 精密検査 is tracked, with its methods and results."""
    return tuple(shipped().seiken.values())


def seiken_result_labels() -> dict[str, str]:
    """精検結果 code → the 事業報告's label (がんであった者 …)."""
    return dict(shipped().seiken_results)


def seiken_of(programme: str) -> SeikenSpec | None:
    """How the programme's 精密検査 is recorded (None: no 精検 tracked for it)."""
    return shipped().seiken.get(programme)


def check_result(
    method: str, results: Mapping[str, str], *, follow_up: bool = False
) -> list[ResultProblem]:
    """What is wrong with a result given as {item code: value code} — empty when nothing.

    Only the method's own items with its vocabularies' values are accepted; required items
    must be there. HPV検査単独法: a positive HPV test needs its triage cytology, except at the
    追跡検査 (``follow_up``), which is the HPV test alone. 便潜血 ("days"): each day's result,
    or the 2日分 judgement alone (the national format carries only that) — never one day
    alone, and a judgement given with both days must be what the days make it.
    """
    spec = results_of(method)
    if spec is None:
        return [ResultProblem("", f"検査方法 {method} の結果の項目が定義されていません")]
    problems = []
    for code, value in results.items():
        item = spec.item(code)
        if item is None:
            names = "、".join(i.name for i in spec.items)
            problems.append(ResultProblem(code, f"この検査の項目ではありません（項目: {names}）"))
        elif item.vocabulary.value(value) is None:
            allowed = "、".join(v.code for v in item.vocabulary.values)
            problems.append(
                ResultProblem(code, f"{item.name}に {value!r} はありません（{allowed} のどれか）")
            )
    for item in spec.items:
        if item.required and not results.get(item.code):
            problems.append(ResultProblem(item.code, f"{item.name}が入っていません"))
    if spec.rule == "triage" and not follow_up and results.get(spec.items[0].code) == "positive":
        for item in spec.items[1:]:
            if not results.get(item.code):
                problems.append(ResultProblem(item.code, f"HPV 陽性のときは{item.name}が必要です"))
    return problems + days_problems(method, results)


def days_problems(
    method: str, results: Mapping[str, str], names: Mapping[str, str] | None = None
) -> list[ResultProblem]:
    """What is wrong with the shape of a "days" result (便潜血 2日法): which items are there.

    Why a rule of its own: clinics report each day, while the national format reports one
    judgement for the two days (陽性 when either day is). Either is a whole result; one day
    alone is not, and a judgement that contradicts its days is refused rather than one of
    them believed. ``results``: item code → value code; a given but unknown value counts as
    given (its value is refused elsewhere). ``names``: item code → the name to use in the
    messages (an intake file's column headers); the items' own names by default. Empty for a
    method of another rule.
    """
    spec = results_of(method)
    if spec is None or spec.rule != "days":
        return []
    *days, whole = spec.items

    def name(item: Item) -> str:
        return (names or {}).get(item.code, item.name)

    missing = [d for d in days if not results.get(d.code)]
    if not results.get(whole.code):
        hint = f"（2日分の判定だけなら{name(whole)}に）"
        return [ResultProblem(d.code, f"{name(d)}が入っていません{hint}") for d in missing]
    if missing and len(missing) != len(days):
        hint = f"（{name(whole)}と一緒なら日ごとの結果は全部そろえてください）"
        return [ResultProblem(d.code, f"{name(d)}が入っていません{hint}") for d in missing]
    made = "" if missing else _made_from_days(days, whole, results)
    overall = whole.vocabulary.value(results[whole.code])
    if not made or overall is None:
        return []
    if overall.code != made:
        return [
            ResultProblem(
                whole.code, f"{name(whole)}が日ごとの結果と合いません（どれかの日が陽性なら陽性）"
            )
        ]
    return []


def whole_of_days(method: str, results: Mapping[str, str]) -> str:
    """The 2日分 judgement of a "days" result: the one given, or made from the days as the
    guideline makes it (the 要精検 value when any day is, else the other) — '' when the
    result is not whole (a day missing or a value not in the vocabulary), never a guess."""
    spec = results_of(method)
    if spec is None or spec.rule != "days" or days_problems(method, results):
        return ""
    *days, whole = spec.items
    if results.get(whole.code):
        found = whole.vocabulary.value(results[whole.code])
        return found.code if found else ""
    return _made_from_days(days, whole, results)


def _made_from_days(days: Sequence[Item], whole: Item, results: Mapping[str, str]) -> str:
    """The judgement the days make (the 要精検 value when any day is, else the other); ''
    when a day is not a value of the vocabulary."""
    values = [d.vocabulary.value(results.get(d.code, "")) for d in days]
    if None in values:
        return ""
    positive = any(v.seiken for v in values if v is not None)
    return next((v.code for v in whole.vocabulary.values if v.seiken == positive), "")


def days_agree(method: str, on_record: Mapping[str, str], given: Mapping[str, str]) -> bool:
    """True when ``given`` is only the 2日分 judgement and ``on_record`` is the days that make
    that same judgement: a national-format file that says less than the clinic's own record,
    not a correction (its days are kept)."""
    spec = results_of(method)
    if spec is None or spec.rule != "days":
        return False
    whole = spec.items[-1].code
    if set(given) != {whole} or on_record.get(whole):
        return False
    made = whole_of_days(method, on_record)
    return bool(made) and made == whole_of_days(method, given)


def needs_seiken(method: str, results: Mapping[str, str], *, follow_up: bool = False) -> bool:
    """Whether a (checked) result makes the exam 要精検 as the 事業報告 counts it.

    "any": one item's value is enough — 便潜血 positive on either day, any non-NILM cytology
    or an inadequate specimen, マンモグラフィ 3 and over; 胸部X線 D is not (it is notified as
    要精検（がん以外）) while 喀痰 D is. "triage" (HPV検査単独法, domain.md §2.3): a positive
    HPV test is not itself 要精検; its triage cytology decides — except at the 追跡検査
    (``follow_up``), where a positive HPV test is 要精検 by itself.
    """
    spec = results_of(method)
    if spec is None:
        raise KeyError(method)

    def seiken(item: Item) -> bool:
        value = item.vocabulary.value(results.get(item.code, ""))
        return value is not None and value.seiken

    if spec.rule == "triage":
        gate, rest = spec.items[0], spec.items[1:]
        positive = results.get(gate.code) == "positive"
        return positive and (follow_up or any(seiken(i) for i in rest))
    return any(seiken(i) for i in spec.items)
