"""Pure rules of the intake: read a row's values, check them, decide whom a row is about.

Why pure: these are the decisions that hurt when wrong (a result on the wrong resident, a
wrong-year file taken in), so they are functions over plain values, tested table by table
without a database. ``pipeline`` feeds them what the database knows (vouchers, the register,
exams on record) and writes what they decide.

Matching (IMP-05, security.md; the マイナ保険証 mislinks came from kana + birth date + sex):
a row names its person by a hard key — the 受診券番号 issued for the programme and year, or
the 宛名番号 — and the register must confirm it by 生年月日 and 性別. The kana name is a
secondary check only: it can send a row to quarantine, never find a person. A row without a
hard key is never matched automatically; every doubt goes to quarantine for staff.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any, NamedTuple

from kenshin.core.csvfile import FORMULA_START  # the same starts the exports escape
from kenshin.core.fiscal import age_on, fiscal_year_of, fy_end_age
from kenshin.core.text import kana_search_key, normalize_digits
from kenshin.core.wareki import parse_date
from kenshin.intake.layout import BY_KEY, FREE_TEXT, RESULT_KEYS, SourceRow

SEIKEN_KEYS = ("seiken_date", "seiken_institution", "seiken_method", "seiken_result")
_DIGITS = re.compile(r"^[0-9]+$")
_MONTH = re.compile(r"^(\d{4})[-/.年]?(\d{1,2})月?$")
SEX = {"1": 1, "2": 2, "男": 1, "女": 2, "男性": 1, "女性": 2, "M": 1, "F": 2, "m": 1, "f": 2}
SETTING = {"1": "individual", "2": "group", "個別": "individual", "集団": "group",
           "individual": "individual", "group": "group"}  # fmt: skip
FLAG = {"": False, "0": False, "1": True, "いいえ": False, "はい": True, "○": True}


@dataclass(frozen=True)
class Problem:
    """What is wrong with one cell (or the row, column ''), in Japanese."""

    column: str  # a layout key, '' for the row as a whole
    value: str
    message: str

    def as_dict(self) -> dict[str, str]:
        header = BY_KEY[self.column].header if self.column in BY_KEY else ""
        return {"column": header, "value": self.value[:200], "message": self.message}


@dataclass(frozen=True)
class MethodRule:
    """What the row checks need of one method (from the year's catalogue and vocabularies)."""

    code: str
    name: str
    programme: str
    programme_name: str
    sex: str  # any | male | female
    min_age: int
    settings: tuple[str, ...]
    items: tuple[str, ...]  # item codes
    required: frozenset[str]
    values: Mapping[str, Mapping[str, str]]  # item → {code or label: code}
    triage: bool  # HPV検査単独法: triage items needed when HPV positive
    seiken_methods: frozenset[str]
    seiken_results: frozenset[str]
    others: tuple[str, ...] = ()  # the result columns that are not this method's (must be blank)
    max_age: int | None = None
    # 便潜血 2日法 ("days"): item → value code (or the text as given) → the (item, message) of
    # each shape problem — programs' days_problems for the method; None for other rules.
    days: Callable[[Mapping[str, str]], Sequence[Any]] | None = None


@dataclass(frozen=True)
class Context:
    """Everything a row is checked against, built once per batch."""

    fiscal_year: int  # the contract year of the file
    today: date
    methods: Mapping[str, MethodRule]  # alias (code or name) → rule
    programmes: Mapping[str, str]  # alias (code or name) → code
    max_text: Mapping[str, int]  # free-text column → max length


@dataclass(slots=True)
class CheckedRow:
    """A row's values after reading, with what is wrong (problems) and what to look at (flags)."""

    source: SourceRow
    voucher_no: str = ""
    atena_no: str = ""
    name_kana: str = ""
    birth_date: date | None = None
    sex: int | None = None
    exam_date: date | None = None
    institution_code: str = ""
    setting: str = ""
    place: str = ""
    method: MethodRule | None = None
    results: dict[str, str] = field(default_factory=dict)
    smoking_index: int | None = None
    hpv_follow_up: bool = False
    complication: str = ""
    coupon_no: str = ""
    billing_category: str = ""
    billing_month: date | None = None
    seiken: dict[str, Any] | None = None
    seiken_untaken: bool = False  # a national 精検結果 of no class of ours: flagged, not taken
    problems: list[Problem] = field(default_factory=list)
    flags: list[Problem] = field(default_factory=list)

    def key(self, atena_no: str) -> tuple[str, str, date | None, bool]:
        """What makes two rows the same exam: person, method, day (and 追跡検査 or not)."""
        return (atena_no, self.method.code if self.method else "", self.exam_date,
                self.hpv_follow_up)  # fmt: skip


# How the FHIR reader (intake/fhir.py) keeps a national code that is no value of ours.
NATIONAL_CODE = "jami:"
_NATIONAL_SEIKEN = re.compile(r"jami:([0-9]{1,2})")


def _err(row: CheckedRow, column: str, value: str, message: str) -> None:
    row.problems.append(Problem(column, value, message))


@lru_cache(maxsize=131_072)
def _parsed_date(value: str) -> date | str:
    """A date, or the message saying why the text is not one (a file repeats its dates: the
    exam days of a month, the birth dates of its people — each is read once)."""
    try:
        return parse_date(value)
    except ValueError as exc:
        return str(exc)


def read_date(value: str) -> date | None:
    """A date cell as :func:`check_row` reads it (None: blank, or not a date it accepts)."""
    if not value:
        return None
    parsed = _parsed_date(value)
    return None if isinstance(parsed, str) else parsed


def _date(row: CheckedRow, key: str, value: str) -> date | None:
    if not value:
        return None
    parsed = _parsed_date(value)
    if isinstance(parsed, str):
        _err(row, key, value, parsed)
        return None
    return parsed


def _digits(row: CheckedRow, key: str, value: str, lengths: range, what: str) -> str:
    if not value:
        return ""
    if value.isascii() and value.isdigit():  # the usual case: nothing to fold
        if len(value) in lengths:
            return value
        folded = value
    else:
        folded = normalize_digits(value)
    if not folded:
        return ""
    if not _DIGITS.match(folded) or len(folded) not in lengths:
        n = f"{lengths.start}〜{lengths.stop - 1}" if len(lengths) > 1 else str(lengths.start)
        _err(row, key, value, f"{what}は {n} 桁の数字です")
        return ""
    return folded


def _month(row: CheckedRow, value: str) -> date | None:
    if not value:
        return None
    folded = normalize_digits(value)
    m = _MONTH.match(folded)
    try:
        if m:
            return date(int(m.group(1)), int(m.group(2)), 1)
        return parse_date(value + ("1日" if value.endswith("月") else "")).replace(day=1)
    except ValueError:
        _err(row, "billing_month", value, "請求月は 2025-06 か 令和7年6月 のように書きます")
        return None


def _result_value(rule: MethodRule, item: str, value: str) -> str | None:
    return rule.values[item].get(value) or rule.values[item].get(normalize_digits(value))


MISTYPED_VOUCHER = "受診券番号のチェック数字が合いません（打ち間違いではないか確かめてください）"


def refuse_mistyped_voucher(row: CheckedRow) -> None:
    """A 受診券番号 never issued whose check digit fails is a typing error of the clinic's,
    not a voucher to look for: an error on the row (asked only of numbers not found, as the
    digit costs more than the look-up at 300,000 rows)."""
    _err(row, "voucher_no", row.voucher_no, MISTYPED_VOUCHER)
    row.voucher_no = ""


def check_row(source: SourceRow, ctx: Context) -> CheckedRow:
    """Read and check one row on its own (matching and cross-row checks come later)."""
    c = source.cells
    row = CheckedRow(source)
    width = c.get("__width__")
    if width:
        expected, got = width.split(":")
        _err(row, "", "", f"列の数が見出しと違います（見出し {expected} 列、この行 {got} 列）。"
                          "列がずれていないか確かめてください")  # fmt: skip
        return row
    get = c.get
    row.voucher_no = _digits(row, "voucher_no", get("voucher_no", ""), range(10, 11), "受診券番号")
    row.atena_no = _digits(row, "atena_no", get("atena_no", ""), range(1, 16), "宛名番号")
    row.name_kana = get("name_kana", "")
    row.birth_date = _date(row, "birth_date", get("birth_date", ""))
    sex = get("sex", "")
    row.sex = SEX.get(sex) or SEX.get(normalize_digits(sex))
    if row.sex is None:
        _err(row, "sex", sex, "性別は 1（男）か 2（女）です")
    if row.birth_date is None and not any(p.column == "birth_date" for p in row.problems):
        _err(row, "birth_date", "", "生年月日が入っていません")
    exam_date = get("exam_date", "")
    row.exam_date = _date(row, "exam_date", exam_date)
    if row.exam_date is None:
        if exam_date == "":
            _err(row, "exam_date", "", "受診日が入っていません")
    elif row.exam_date > ctx.today:
        _err(row, "exam_date", exam_date, "受診日が未来の日付です")
    elif fiscal_year_of(row.exam_date) != ctx.fiscal_year:
        _err(row, "exam_date", exam_date,
             f"受診日が契約年度（{ctx.fiscal_year}年度、{ctx.fiscal_year}-04-01〜"
             f"{ctx.fiscal_year + 1}-03-31）の外です")  # fmt: skip
    if row.birth_date and row.exam_date and row.birth_date > row.exam_date:
        _err(row, "birth_date", get("birth_date", ""), "生年月日が受診日より後です")
    row.institution_code = _digits(
        row, "institution_code", get("institution_code", ""), range(10, 11), "医療機関コード"
    )
    if not row.institution_code and not get("institution_code"):
        _err(row, "institution_code", "", "医療機関コードが入っていません")
    setting = get("setting", "")
    row.setting = SETTING.get(setting) or SETTING.get(normalize_digits(setting), "")
    if not row.setting:
        _err(row, "setting", setting, "検診方式は 1（個別）か 2（集団）です")
    _check_method(row, ctx)
    _check_other(row, ctx)
    if (
        get("seiken_date")
        or get("seiken_institution")
        or get("seiken_method")
        or get("seiken_result")
    ):
        if row.method is not None and row.method.seiken_results:
            _check_seiken(row)
        else:
            for key in SEIKEN_KEYS:
                if get(key):
                    _err(row, key, get(key, ""), "この検査方法の精密検査は記録しません")
    for key in FREE_TEXT:
        value = get(key)
        if not value:
            continue
        if value.startswith(FORMULA_START):
            row.flags.append(
                Problem(key, value, "数式のように見える値です（文字として保存します）")
            )
        limit = ctx.max_text.get(key)
        if limit is not None and len(value) > limit:
            _err(row, key, value, f"{BY_KEY[key].header}は {limit} 文字までです")
    return row


def _check_method(row: CheckedRow, ctx: Context) -> None:
    c = row.source.cells
    method_text = c.get("method", "")
    rule = ctx.methods.get(method_text)
    if rule is None:
        _err(row, "method", method_text,
             f"検査方法が{ctx.fiscal_year}年度の検診事業にありません" if method_text
             else "検査方法が入っていません")  # fmt: skip
        return
    programme_text = c.get("programme", "")
    if programme_text and ctx.programmes.get(programme_text) != rule.programme:
        _err(row, "programme", programme_text, f"{rule.name}は{rule.programme_name}の検査です")
    if row.setting and row.setting not in rule.settings:
        label = "個別" if row.setting == "individual" else "集団"
        _err(row, "setting", c.get("setting", ""), f"{rule.name}は{label}検診で実施していません")
    row.method = rule
    for key in rule.others or [k for k in RESULT_KEYS if k not in rule.values]:
        value = c.get(key)
        if value:
            _err(row, key, value, f"{rule.name}にはない項目です（空欄にしてください）")
    for key in rule.items:
        value = c.get(key)
        if not value:
            continue
        code = _result_value(rule, key, value)
        if code is None:
            _err(row, key, value, _not_a_value(rule, key, value))
        else:
            row.results[key] = code


def _not_a_value(rule: MethodRule, item: str, value: str) -> str:
    """Why a result cell is not a value of the item — for a national code the FHIR reader
    could not map (``jami:…``), what the national document said."""
    header = BY_KEY[item].header
    allowed = _allowed(rule, item)
    if not value.startswith(NATIONAL_CODE):
        return f"{header}に使えない値です（{allowed}）"
    code, paired, target = value.removeprefix(NATIONAL_CODE).partition("/")
    if not paired:
        return f"全国様式のコード {code} は{header}の値に当たりません（{allowed}）"
    said = (
        f"精密検査の対象有無 {target}"
        if target
        else "精密検査の対象有無がない（または 2 つの判定に 1 つ）"
    )
    return (
        f"全国様式の判定 {code} と {said} の組は{header}の値に当たりません"
        "（所見の有無 1 なし・2 あり と 精密検査の対象有無 1 不要・2 要精密検査 の組で読みます）"
    )


def _allowed(rule: MethodRule, item: str) -> str:
    """The item's values for a message: each code with its label when the label is short
    (negative＝陰性), the codes alone when the labels are sentences (胃X線のカテゴリー)."""
    labels: dict[str, str] = {}
    for alias, code in rule.values[item].items():
        if alias != code and (code not in labels or len(alias) < len(labels[code])):
            labels[code] = alias
    codes = sorted(set(rule.values[item].values()))
    if all(len(labels.get(c, "")) <= 6 for c in codes):
        shown = [f"{c}＝{labels[c]}" if labels.get(c) and labels[c] != c else c for c in codes]
    else:
        shown = codes
    return "、".join(shown) + " のどれか"


def _check_other(row: CheckedRow, ctx: Context) -> None:
    c = row.source.cells
    rule = row.method
    row.hpv_follow_up = FLAG.get(c.get("hpv_follow_up", ""), None) or False
    if c.get("hpv_follow_up", "") not in FLAG:
        _err(row, "hpv_follow_up", c["hpv_follow_up"], "HPV追跡検査は 1（はい）か空欄です")
    if row.hpv_follow_up and rule is not None and not rule.triage:
        _err(row, "hpv_follow_up", c["hpv_follow_up"], "追跡検査は HPV検査単独法の検査だけです")
    if rule is not None:
        for item in rule.items:
            if item in rule.required and not c.get(item):
                _err(row, item, "", f"{BY_KEY[item].header}が入っていません")
        if rule.triage and not row.hpv_follow_up and row.results.get("hpv") == "positive":
            for item in rule.items[1:]:
                if not c.get(item):
                    _err(row, item, "", f"HPV 陽性のときは{BY_KEY[item].header}が必要です")
        if rule.days is not None:
            given = {item: row.results.get(item) or c.get(item, "") for item in rule.items}
            for problem in rule.days(given):
                _err(row, problem.item, c.get(problem.item, ""), problem.message)
    smoking = c.get("smoking_index", "")
    if smoking:
        folded = normalize_digits(smoking)
        if not _DIGITS.match(folded) or int(folded) > 9_999:
            _err(row, "smoking_index", smoking, "喫煙指数は 0〜9999 の整数です")
        else:
            row.smoking_index = int(folded)
    coupon = c.get("coupon_no")
    row.coupon_no = normalize_digits(coupon) if coupon else ""
    if row.coupon_no and (len(row.coupon_no) > 16 or not row.coupon_no.isascii()):
        _err(row, "coupon_no", c["coupon_no"], "クーポン番号は 16 文字までの英数字です")
    row.place = c.get("place", "")
    row.complication = c.get("complication", "")
    row.billing_category = c.get("billing_category", "")
    row.billing_month = _month(row, c.get("billing_month", ""))


def _check_seiken(row: CheckedRow) -> None:
    c = row.source.cells
    rule = row.method
    assert rule is not None  # nosec B101 - called with a method only
    values = {k: c.get(k, "") for k in ("seiken_date", "seiken_institution", "seiken_method",
                                         "seiken_result")}  # fmt: skip
    if not any(values.values()):
        return
    seiken_date = _date(row, "seiken_date", values["seiken_date"])
    if seiken_date and row.exam_date and not row.exam_date <= seiken_date <= date.max:
        _err(row, "seiken_date", values["seiken_date"], "精検受診日が受診日より前です")
    if values["seiken_method"] and values["seiken_method"] not in rule.seiken_methods:
        _err(row, "seiken_method", values["seiken_method"],
             "精検方法は " + "、".join(sorted(rule.seiken_methods)) + " のどれかです")  # fmt: skip
    national = _NATIONAL_SEIKEN.fullmatch(values["seiken_result"])
    if national:
        # A national 精検結果 with no result of ours (胃 4: 早期がんのうち粘膜内がん): the
        # primary exam is taken in, the 精検 is not (its case stays 未把握 until the 精検's
        # report is recorded) — and staff are told, rather than a result guessed. Its date
        # and whether the exam is 要精検 at all are still checked (seiken_untaken).
        row.flags.append(Problem("seiken_result", values["seiken_result"], (
            f"精検結果（全国様式のコード {national.group(1)}）は Kenshin の精検結果の区分に"
            "当てはまらないため、一次検診の結果だけを取り込みます。"
            "精検の結果は精検の報告として記録してください")))  # fmt: skip
        row.seiken_untaken = True
        return
    if values["seiken_result"] and values["seiken_result"] not in rule.seiken_results:
        _err(row, "seiken_result", values["seiken_result"],
             "精検結果は " + "、".join(sorted(rule.seiken_results)) + " のどれかです")  # fmt: skip
    row.seiken = {
        "exam_date": seiken_date.isoformat() if seiken_date else None,
        "institution": values["seiken_institution"],
        "method": values["seiken_method"],
        "result": values["seiken_result"],
    }


# ------------------------------------------------------------------------------ matching


class VoucherInfo(NamedTuple):
    voucher_no: str
    atena_no: str
    fiscal_year: int
    programme: str  # '' = every programme


class PersonInfo(NamedTuple):
    atena_no: str
    birth_date: date
    sex: int
    name_kana: str
    status: str = "resident"  # the current record's 住民状態
    status_since: date | None = None  # the day the current record began (死亡・転出 day)


class Match(NamedTuple):
    """Whom the row is about (None: quarantine) and why not, with the candidates to show."""

    atena_no: str | None
    reasons: tuple[Problem, ...] = ()
    candidates: tuple[str, ...] = ()


_LOOSE = str.maketrans({"ヴ": "ブ", "ヂ": "ジ", "ヅ": "ズ", "ヲ": "オ", "ヱ": "エ", "ヰ": "イ"})


def kana_matches(given: str, registered: str) -> bool:
    """The secondary kana check: the same name once width, small kana, ヴ/ブ, ヂ/ジ, ヅ/ズ,
    long-vowel marks and spaces are set aside — variants a clinic's system produces, not
    another person. Empty given kana is no evidence either way (True)."""
    if not given or given == registered:
        return True
    return _loose_kana(given) == _loose_kana(registered)


@lru_cache(maxsize=65_536)
def _loose_kana(s: str) -> str:
    return kana_search_key(s).translate(_LOOSE).replace("ー", "")


def match_row(
    row: CheckedRow,
    voucher: VoucherInfo | None,
    people: Mapping[str, PersonInfo],
    *,
    sender_institution: str = "",
) -> Match:
    """Decide the row's person from its hard keys, or why it must wait for staff.

    ``voucher``: the voucher issued under the row's 受診券番号 (None: none issued or none
    given). ``people``: the register's current records of the voucher's and the row's
    宛名番号. Every disagreement is a reason; any reason means quarantine.
    """
    reasons: list[Problem] = []
    candidates: list[str] = []
    rule = row.method
    atena = row.atena_no
    if row.voucher_no:
        if voucher is None:
            reasons.append(
                Problem("voucher_no", row.voucher_no, "この受診券番号は発行されていません")
            )
        else:
            candidates.append(voucher.atena_no)
            if row.exam_date and voucher.fiscal_year != fiscal_year_of(row.exam_date):
                reasons.append(Problem("voucher_no", row.voucher_no,
                                       f"受診券は{voucher.fiscal_year}年度のものです"))  # fmt: skip
            if rule is not None and voucher.programme and voucher.programme != rule.programme:
                reasons.append(Problem("voucher_no", row.voucher_no,
                                       "受診券は別の検診事業のものです"))  # fmt: skip
            if atena and atena != voucher.atena_no:
                reasons.append(Problem("atena_no", atena,
                                       "受診券番号と宛名番号が別の人を指しています"))  # fmt: skip
            atena = voucher.atena_no
    if atena and atena not in candidates:
        candidates.append(atena)
    if not row.voucher_no and not row.atena_no:
        reasons.append(Problem("", "", "受診券番号も宛名番号もないため照合できません"
                                       "（氏名・生年月日だけでは照合しません）"))  # fmt: skip
    person = people.get(atena) if atena else None
    if atena and person is None and not reasons:
        reasons.append(Problem("atena_no", atena, "この宛名番号の住民記録がありません"))
    if person is not None:
        if row.birth_date and person.birth_date != row.birth_date:
            reasons.append(Problem("birth_date", row.source.cells.get("birth_date", ""),
                                   "生年月日が住民記録と合いません"))  # fmt: skip
        if row.sex and person.sex != row.sex:
            reasons.append(Problem("sex", row.source.cells.get("sex", ""),
                                   "性別が住民記録と合いません"))  # fmt: skip
        if not kana_matches(row.name_kana, person.name_kana):
            reasons.append(Problem("name_kana", row.name_kana,
                                   "氏名カナが住民記録と合いません（二次確認）"))  # fmt: skip
        reasons.extend(eligibility_reasons(row, person))
    if sender_institution and row.institution_code and row.institution_code != sender_institution:
        reasons.append(Problem("institution_code", row.institution_code,
                               f"送付元（{sender_institution}）と違う医療機関の"
                               "受診です"))  # fmt: skip
    if reasons or person is None:
        return Match(None, tuple(reasons), tuple(candidates))
    return Match(person.atena_no, (), tuple(candidates))


_LEFT = {"deceased": "死亡", "moved_out": "転出"}


def eligibility_reasons(row: CheckedRow, person: PersonInfo) -> list[Problem]:
    """Why this person cannot have had this exam, whoever decided the person (the hard keys
    or staff resolving a quarantined row): the method's sex and age band (年度末年齢), and
    being a resident of the city on the exam day. Staff may overrule a mistyped birth date;
    not these."""
    out: list[Problem] = []
    rule = row.method
    if rule is not None and rule.sex != "any" and person.sex != (1 if rule.sex == "male" else 2):
        who = "男" if person.sex == 1 else "女"
        out.append(Problem("method", rule.name, f"{who}性は{rule.name}の対象ではありません"))
    if rule is not None and row.exam_date is not None:
        age = fy_end_age(person.birth_date, fiscal_year_of(row.exam_date))
        if age < rule.min_age or (rule.max_age is not None and age > rule.max_age):
            band = (
                f"{rule.min_age}〜{rule.max_age} 歳" if rule.max_age else f"{rule.min_age} 歳以上"
            )
            message = f"年度末年齢 {age} 歳は{rule.name}の対象年齢（{band}）の外です"
            out.append(Problem("method", rule.name, message))
    status, since = person.status, person.status_since
    if (
        row.exam_date is not None
        and status in _LEFT
        and since is not None
        and row.exam_date >= since
    ):
        out.append(Problem("exam_date", row.source.cells.get("exam_date", ""),
                           f"受診日には住民ではありません（{since} {_LEFT[status]}）"))  # fmt: skip
    elif status == "non_resident":
        out.append(Problem("", "", "住登外の方です（市の検診の対象か確かめてください）"))
    return out


# ------------------------------------------------------------------------------ the fact


def ages(birth: date, exam_date: date) -> tuple[int, int]:
    """受診時年齢 and 年度末年齢 of the exam."""
    return age_on(birth, exam_date), fy_end_age(birth, fiscal_year_of(exam_date))


def fact_of(row: CheckedRow, atena_no: str, birth: date) -> dict[str, Any]:
    """The staged values of a row that will become an exam (JSON-ready: ISO dates)."""
    assert row.method is not None and row.exam_date is not None  # nosec B101 - valid rows only
    age, end_age = ages(birth, row.exam_date)
    return {
        "atena_no": atena_no,
        "programme": row.method.programme,
        "method": row.method.code,
        "exam_date": row.exam_date.isoformat(),
        "setting": row.setting,
        "institution_code": row.institution_code,
        "results": row.results,
        "smoking_index": row.smoking_index,
        "hpv_follow_up": row.hpv_follow_up,
        "voucher_no": row.voucher_no,
        "coupon_no": row.coupon_no,
        "place": row.place,
        "complication": row.complication,
        "billing_category": row.billing_category,
        "billing_month": row.billing_month.isoformat() if row.billing_month else None,
        "age_at_exam": age,
        "fy_end_age": end_age,
        "seiken": row.seiken,
    }


def diff_of(fact: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [on record, in the file]} for the fields that differ (empty: unchanged).

    The fields are those screening reports for an exam on record (``StoredExam.values``):
    exactly what a correction may change (``screening.revise_exams``)."""
    return {
        name: [value, fact.get(name)]
        for name, value in stored.items()
        if (value or None) != (fact.get(name) or None)
    }
