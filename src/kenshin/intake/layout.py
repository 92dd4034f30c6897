"""The Kenshin result layout: the columns every intake format is read into.

Why one layout: a clinic's CSV, the same layout as an Excel workbook, a clinic's own layout
through a saved column profile, and the national FHIR Bundles all become rows of these columns
(``SourceRow.cells``: column key → text as the file had it). Validation, matching and the
error file then have one shape to deal with, and a column named in an error message is always
one of these Japanese headers.

The result items are one column per item code of ``programs/vocabularies.toml`` (判定 serves
every method whose single item is ``judgement``…): a row fills the columns of its method's
items and leaves the others blank. docs/formats/kenshin-csv.md describes each column.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    key: str  # identifier in code and in profiles
    header: str  # the Japanese header in the file
    note: str = ""


IDENTITY = (
    Column("voucher_no", "受診券番号", "受診券の番号（10 桁、最後がチェック数字）"),
    Column("atena_no", "宛名番号", "分かる場合のみ"),
    Column("name_kana", "氏名カナ", "照合の補助（これだけでは照合しません）"),
    Column(
        "birth_date",
        "生年月日",
        "西暦（2025-04-01、20250401、2025/4/1）か和暦（昭和50年4月1日、S50.4.1）",
    ),
    Column("sex", "性別", "1 男、2 女（男・女も可）"),
)
EXAM = (
    Column("exam_date", "受診日", "生年月日と同じ書き方"),
    Column("institution_code", "医療機関コード", "10 桁"),
    Column("setting", "検診方式", "1 個別、2 集団（個別・集団も可）"),
    Column("place", "検診場所", "集団検診の会場"),
    Column("programme", "検診事業", "gastric など、または 胃がん検診 などの名前"),
    Column("method", "検査方法", "gastric_xray など、または 胃部エックス線検査 などの名前"),
)
# One column per result item code (programs/vocabularies.toml, [[method]] items).
RESULTS = (
    Column("judgement", "判定"),
    Column("category", "カテゴリー"),
    Column("day1", "便潜血1日目"),
    Column("day2", "便潜血2日目"),
    Column("overall", "便潜血判定", "2日分の判定（全国様式の形）。日ごとの結果があれば空欄で可"),
    Column("adequacy", "標本の適否"),
    Column("bethesda", "ベセスダ分類"),
    Column("hpv", "HPV検査"),
    Column("triage_adequacy", "トリアージ標本の適否"),
    Column("triage", "トリアージ細胞診"),
    Column("result", "子宮内膜細胞診"),
    Column("hbs", "HBs抗原"),
    Column("hcv", "HCV判定"),
)
OTHER = (
    Column("smoking_index", "喫煙指数", "肺がん検診の問診（1 日の本数 × 年数）"),
    Column("hpv_follow_up", "HPV追跡検査", "1 = トリアージ陰性から 1 年後の追跡検査"),
    Column("complication", "偶発症"),
    Column("coupon_no", "クーポン番号"),
    Column("billing_category", "請求区分"),
    Column("billing_month", "請求月", "2025-06 または 令和7年6月"),
)
SEIKEN = (
    Column("seiken_date", "精検受診日", "精密検査の結果が分かっている場合"),
    Column("seiken_institution", "精検機関"),
    Column("seiken_method", "精検方法", "programs/vocabularies.toml の [[seiken]] の方法コード"),
    Column(
        "seiken_result", "精検結果", "cancer, suspected, adenoma, other_disease, no_abnormality"
    ),
)
COLUMNS: tuple[Column, ...] = IDENTITY + EXAM + RESULTS + OTHER + SEIKEN
BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}
BY_HEADER: dict[str, Column] = {c.header: c for c in COLUMNS}
RESULT_KEYS: tuple[str, ...] = tuple(c.key for c in RESULTS)
# A file must carry these headers (values may still be blank where a rule allows it).
REQUIRED_HEADERS: tuple[str, ...] = tuple(
    BY_KEY[k].header
    for k in ("voucher_no", "atena_no", "birth_date", "sex", "exam_date", "institution_code",
              "setting", "method")
)  # fmt: skip
# Free-text columns: stored as given. A formula-like value there (=, +, -, @) is kept as text
# and flagged (IMP-06); in a coded column it is simply not a valid code.
FREE_TEXT: frozenset[str] = frozenset(
    {"name_kana", "place", "complication", "billing_category", "seiken_institution"}
)


def header_row() -> list[str]:
    """The header line of the Kenshin result CSV, in order."""
    return [c.header for c in COLUMNS]


@dataclass(slots=True)
class SourceRow:
    """One row as read from a file, before any check.

    ``row_no``: the row number staff see in their spreadsheet (the header is row 1), or the
    Bundle's position in an NDJSON file. ``cells``: column key → text ('' for blank), only
    the layout's keys. ``raw``: the row as the file had it, for the error file the clinic
    corrects and sends back.
    """

    row_no: int
    cells: dict[str, str]
    raw: list[str] = field(default_factory=list)
