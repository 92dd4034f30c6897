"""Pure rules for the resident feed: one row in, a normalised record or Japanese errors out.

No I/O here, so every rule is testable without a database, and the bulk path (a 1,000,000-row
full load) and the per-row path (a daily 異動 file) share the same functions. The hot path is
written for speed: clean rows (the common case) pass through a few C-level checks only.
See docs/formats/resident-feed.md for the format these rules implement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from kenshin.core.text import (
    is_kana_name,
    kana_search_key,
    name_search_key,
    normalize_digits,
    normalize_kana,
    normalize_name,
)
from kenshin.core.wareki import parse_date
from kenshin.linkage.mynumber import InvalidMyNumber, is_valid, normalize

RESIDENT_HEADER = (
    "異動区分",
    "異動日",
    "届出日",
    "宛名番号",
    "氏名",
    "氏名カナ",
    "性別",
    "生年月日",
    "郵便番号",
    "住所",
    "方書",
    "電話番号",
    "世帯番号",
    "続柄",
    "世帯主氏名",
    "住民状態",
)
# An optional last column: the 個人番号, when the 住基 sends it. It goes straight to the
# 番号連携サーバ and is never stored, logged or echoed by this app (DESIGN.md, Identifiers).
MY_NUMBER_COLUMN = "個人番号"
RESIDENT_HEADER_WITH_MY_NUMBER = (*RESIDENT_HEADER, MY_NUMBER_COLUMN)
CATEGORY_HEADER = ("年度", "宛名番号", "保険区分", "課税区分")

# 異動区分 code → ChangeKind value (models.ChangeKind); kept as plain strings so this module
# stays free of Django imports.
CHANGE_CODES = {
    "00": "full_load",
    "10": "move_in",
    "11": "birth",
    "20": "move_out",
    "21": "death",
    "30": "name_change",
    "31": "address_change",
    "32": "household_change",
    "40": "official_correction",
}
STATUS_CODES = {"1": "resident", "2": "moved_out", "3": "deceased", "4": "non_resident"}
INSURANCE_CODES = {"1": "national_health_insurance", "2": "late_elderly", "3": "other"}
TAX_CODES = {"1": "taxed", "2": "exempt", "3": "public_assistance"}
SEX_CODES = {"1": 1, "2": 2}

# Which 住民状態 each 異動 must leave the person in (None: any).
REQUIRED_STATUS = {
    "move_in": "resident",
    "birth": "resident",
    "move_out": "moved_out",
    "death": "deceased",
}
STATUS_LABELS = {
    "resident": "住民",
    "moved_out": "転出",
    "deceased": "死亡",
    "non_resident": "住登外",
}

# Messages for the name, kana, address, 方書, phone and 世帯主氏名 columns never echo the
# value (personal data): error reports end up on consoles, in e-mails and in tickets.

EARLIEST_BIRTH = "1880-01-01"
MAX_NAME = 100
MAX_ADDRESS = 200


@dataclass(frozen=True, slots=True)
class FeedError:
    """One problem in a feed file, located by row (1 = the header line) and column."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        if not self.row:  # about the file as a whole, not one row
            return self.message
        where = f"{self.row}行目" + (f" {self.column}" if self.column else "")
        return f"{where}: {self.message}"


def header_error(found: list[str], expected: tuple[str, ...], label: str) -> FeedError | None:
    """Compare a header line with the specification; name the first column that differs."""
    cleaned = [c.strip() for c in found]
    if tuple(cleaned) == expected:
        return None
    if len(cleaned) != len(expected):
        return FeedError(
            1,
            "",
            f"見出し行が{label}の仕様と違います（{len(expected)}列必要ですが{len(cleaned)}列あります）",
        )
    for i, (got, want) in enumerate(zip(cleaned, expected, strict=True), start=1):
        if got != want:
            return FeedError(
                1,
                "",
                f"見出し行が{label}の仕様と違います（{i}列目は「{want}」が必要ですが「{got}」です）",
            )
    return None  # pragma: no cover - unreachable


def resident_header_error(found: list[str]) -> tuple[FeedError | None, bool]:
    """Check a resident file's header → (error or None, whether it carries 個人番号).

    The 個人番号 column is optional and, when present, the last (17th) one.
    """
    with_my_number = len(found) == len(RESIDENT_HEADER_WITH_MY_NUMBER)
    expected = RESIDENT_HEADER_WITH_MY_NUMBER if with_my_number else RESIDENT_HEADER
    err = header_error(found, expected, "住民記録ファイル")
    if err is not None and len(found) != len(expected):
        err = FeedError(
            1,
            "",
            f"見出し行が住民記録ファイルの仕様と違います（{len(RESIDENT_HEADER)}列、"
            f"個人番号の列を付ける場合は{len(RESIDENT_HEADER_WITH_MY_NUMBER)}列必要ですが"
            f"{len(found)}列あります）",
        )
    return err, with_my_number


def split_my_number(
    cells: list[str], row: int, errors: list[FeedError]
) -> tuple[list[str], str] | None:
    """A row of a file with the 個人番号 column → (the 16 register cells, the 個人番号 cell)."""
    if len(cells) != len(RESIDENT_HEADER_WITH_MY_NUMBER):
        errors.append(
            FeedError(
                row,
                "",
                f"列の数が違います（{len(RESIDENT_HEADER_WITH_MY_NUMBER)}列必要ですが"
                f"{len(cells)}列あります）。区切り文字のずれや列の抜けがないか確認してください",
            )
        )
        return None
    return cells[:-1], cells[-1]


def parse_my_number(value: str, row: int, errors: list[FeedError]) -> str | None:
    """The 個人番号 cell → "" (blank: none sent), the 12 digits, or None after an error.

    The message names the row and the column, never the value: an error list is printed,
    mailed and attached to tickets, and a 個人番号 must not travel with it.
    """
    if not value or not value.strip():
        return ""
    try:
        number = normalize(value)
    except InvalidMyNumber:
        errors.append(FeedError(row, MY_NUMBER_COLUMN, "12桁の数字ではありません"))
        return None
    if not is_valid(number):
        errors.append(
            FeedError(row, MY_NUMBER_COLUMN, "検査用数字（12桁目）が合いません。番号の誤りです")
        )
        return None
    return number


def _iso_date(value: str) -> str:
    """Return the date as ISO text; raise ValueError with a Japanese message if it is not one."""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    return parse_date(value).isoformat()


def _digits(value: str, low: int, high: int) -> str | None:
    if not (value.isascii() and value.isdigit()):
        value = normalize_digits(value)
        if not (value.isascii() and value.isdigit()):
            return None
    return value if low <= len(value) <= high else None


# A row whose every cell is already in stored form (the common case in a register extract)
# matches this one pattern; for such a row every normaliser is the identity, so the fast path
# below only checks dates and limits. Anything else takes the full path, which also writes the
# error messages. tests/test_rules.py proves both paths give the same result.
_CLEAN_TEXT = (
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
    r"\ufeff\u3099\u309a\uff01-\uff5e\uffe0-\uffe6\uff61-\uff9f\ue000-\uf8ff\U000f0000-\U0010ffff]"
)
# 外字 arrive from CP932 as private-use characters: they print as garbage on letters.
_PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff]")
_CLEAN_NAME = _CLEAN_TEXT + r"+(?:\u3000" + _CLEAN_TEXT + r"+)*"
_KATAKANA = r"[\u30a1-\u30fa\u30fc-\u30fe]"
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CELL_SEPARATOR = "\x1f"  # a control character, so never part of a clean cell


def _row_pattern(text: str, kana: str) -> re.Pattern[str]:
    return re.compile(
        r"\x1f".join(
            (
                "(?:00|10|11|20|21|30|31|32|40)",
                _ISO,
                _ISO,
                "[0-9]{1,15}",
                text,
                kana,
                "[12]",
                _ISO,
                "(?:[0-9]{3}-?[0-9]{4})?",
                text,
                f"(?:{text})?",
                "(?:[0-9][0-9-]{0,19})?",
                "[0-9]{1,15}",
                text,
                text,
                "[1-4]",
            )
        )
    )


# Every cell already in stored form: every normaliser would return its input unchanged.
_CLEAN_ROW = _row_pattern(_CLEAN_NAME, _KATAKANA + r"+(?:\u3000" + _KATAKANA + r"+)*")
# Codes, dates and numbers clean; the text cells (names, kana, address) still to normalise.
_CODED_ROW = _row_pattern(r"[^\x1f\ue000-\uf8ff\U000f0000-\U0010ffff]+", r"[^\x1f]+")
_fromiso = date.fromisoformat


def parse_resident_row(
    cells: list[str], row: int, today_iso: str, errors: list[FeedError]
) -> tuple | None:
    """Validate and normalise one resident row.

    Fast path for rows whose codes, dates and numbers are already clean (nearly every row of
    a register extract); anything else, and every row with a problem, goes through
    parse_resident_row_full, which writes the error messages. Both return the same tuple.
    """
    if len(cells) != 16:
        return parse_resident_row_full(cells, row, today_iso, errors)
    joined = _CELL_SEPARATOR.join(cells)
    (code, eff, rcpt, atena, name, kana, sex, birth, postal, addr, annex, phone, hh, rel,
     head, status) = cells  # fmt: skip
    if _CLEAN_ROW.fullmatch(joined) is None:
        if _CODED_ROW.fullmatch(joined) is None:
            return parse_resident_row_full(cells, row, today_iso, errors)
        name, addr, annex, rel, head = (
            normalize_name(name), normalize_name(addr), normalize_name(annex),
            normalize_name(rel), normalize_name(head),
        )  # fmt: skip
        kana = normalize_kana(kana)
        if not (name and addr and rel and head and is_kana_name(kana)):
            return parse_resident_row_full(cells, row, today_iso, errors)
    kind = CHANGE_CODES[code]
    status_v = STATUS_CODES[status]
    try:
        _fromiso(eff), _fromiso(rcpt), _fromiso(birth)
    except ValueError:
        return parse_resident_row_full(cells, row, today_iso, errors)
    if (
        EARLIEST_BIRTH <= birth <= eff <= today_iso
        and EARLIEST_BIRTH <= rcpt <= today_iso
        and (kind != "birth" or eff == birth)
        and REQUIRED_STATUS.get(kind, status_v) == status_v
        and len(name) <= MAX_NAME
        and len(kana) <= MAX_NAME
        and len(addr) <= MAX_ADDRESS
        and len(annex) <= MAX_NAME
        and len(rel) <= 20
        and len(head) <= MAX_NAME
    ):
        return (
            kind, eff, rcpt, atena, name, kana, kana_search_key(kana),
            name_search_key(name)[:MAX_NAME],
            1 if sex == "1" else 2, birth, postal.replace("-", ""), addr, annex, phone, hh,
            rel, head, status_v,
        )  # fmt: skip
    return parse_resident_row_full(cells, row, today_iso, errors)


def parse_resident_row_full(
    cells: list[str], row: int, today_iso: str, errors: list[FeedError]
) -> tuple | None:
    """Validate and normalise one resident row.

    Returns the tuple (change_kind, valid_from, receipt_date, atena_no, name, name_kana,
    kana_key, name_key, sex, birth_date, postal_code, address, address_annex, phone,
    household_no, relationship, household_head_name, status) with dates as ISO text, or None
    after appending every problem of the row to `errors`.
    """
    if len(cells) != 16:
        errors.append(
            FeedError(
                row,
                "",
                f"列の数が違います（16列必要ですが{len(cells)}列あります）。"
                "区切り文字のずれや列の抜けがないか確認してください",
            )
        )
        return None
    n_before = len(errors)
    (
        code,
        eff,
        rcpt,
        atena,
        name,
        kana,
        sex,
        birth,
        postal,
        addr,
        annex,
        phone,
        hh,
        rel,
        head,
        status,
    ) = cells

    code, sex, status = normalize_digits(code), normalize_digits(sex), normalize_digits(status)
    kind = CHANGE_CODES.get(code)
    if kind is None:
        errors.append(
            FeedError(
                row,
                "異動区分",
                f"「{code}」は定義されていないコードです（{'、'.join(CHANGE_CODES)} のいずれか）",
            )
        )
    dates = []
    for col, v in (("異動日", eff), ("届出日", rcpt), ("生年月日", birth)):
        v = v.strip()
        if not v:
            errors.append(FeedError(row, col, "必須項目が空です"))
            dates.append(None)
            continue
        try:
            iso = _iso_date(v)
        except ValueError as exc:
            errors.append(FeedError(row, col, str(exc)))
            dates.append(None)
            continue
        if iso > today_iso:
            errors.append(FeedError(row, col, f"「{v}」は未来の日付です"))
        elif iso < EARLIEST_BIRTH:
            errors.append(FeedError(row, col, f"「{v}」は古すぎる日付です（1880年以降）"))
        dates.append(iso)
    eff_iso, rcpt_iso, birth_iso = dates
    if eff_iso and birth_iso and eff_iso < birth_iso:
        errors.append(FeedError(row, "異動日", "生年月日より前の日付です"))
    if kind == "birth" and eff_iso and birth_iso and eff_iso != birth_iso:
        errors.append(FeedError(row, "異動日", "出生の異動日は生年月日と同じでなければなりません"))

    atena_no = _digits(atena.strip(), 1, 15)
    if atena_no is None:
        errors.append(FeedError(row, "宛名番号", f"「{atena}」は半角数字1〜15桁ではありません"))
    household_no = _digits(hh.strip(), 1, 15)
    if household_no is None:
        errors.append(FeedError(row, "世帯番号", f"「{hh}」は半角数字1〜15桁ではありません"))

    name_n = normalize_name(name)
    if not name_n:
        errors.append(FeedError(row, "氏名", "必須項目が空です"))
    elif len(name_n) > MAX_NAME:
        errors.append(FeedError(row, "氏名", f"{MAX_NAME}文字を超えています"))
    kana_n = normalize_kana(kana)
    if not kana_n:
        errors.append(FeedError(row, "氏名カナ", "必須項目が空です"))
    elif not is_kana_name(kana_n):
        errors.append(FeedError(row, "氏名カナ", "カタカナと空白以外の文字が含まれています"))
    elif len(kana_n) > MAX_NAME:
        errors.append(FeedError(row, "氏名カナ", f"{MAX_NAME}文字を超えています"))

    sex_v = SEX_CODES.get(sex)
    if sex_v is None:
        errors.append(
            FeedError(row, "性別", f"「{sex}」は定義されていないコードです（1 男、2 女）")
        )

    postal_n = ""
    if postal.strip():
        postal_n = normalize_digits(postal).replace("-", "")
        if not (len(postal_n) == 7 and postal_n.isascii() and postal_n.isdigit()):
            errors.append(FeedError(row, "郵便番号", f"「{postal}」は7桁の郵便番号ではありません"))
    addr_n = normalize_name(addr)
    if not addr_n:
        errors.append(FeedError(row, "住所", "必須項目が空です"))
    elif len(addr_n) > MAX_ADDRESS:
        errors.append(FeedError(row, "住所", f"{MAX_ADDRESS}文字を超えています"))
    annex_n = normalize_name(annex)
    if len(annex_n) > MAX_NAME:
        errors.append(FeedError(row, "方書", f"{MAX_NAME}文字を超えています"))
    phone_n = normalize_digits(phone) if phone else ""
    if phone_n and (len(phone_n) > 20 or not phone_n.replace("-", "").isdigit()):
        errors.append(FeedError(row, "電話番号", "数字とハイフン以外の文字が含まれています"))
    rel_n = normalize_name(rel)
    if not rel_n:
        errors.append(FeedError(row, "続柄", "必須項目が空です"))
    elif len(rel_n) > 20:
        errors.append(FeedError(row, "続柄", "20文字を超えています"))
    head_n = normalize_name(head)
    if not head_n:
        errors.append(FeedError(row, "世帯主氏名", "必須項目が空です"))
    elif len(head_n) > MAX_NAME:
        errors.append(FeedError(row, "世帯主氏名", f"{MAX_NAME}文字を超えています"))
    for col, value in (
        ("氏名", name_n),
        ("住所", addr_n),
        ("方書", annex_n),
        ("続柄", rel_n),
        ("世帯主氏名", head_n),
    ):
        if _PRIVATE_USE.search(value):
            errors.append(
                FeedError(
                    row,
                    col,
                    "外字（私用領域の文字）が含まれています。住基側で標準の文字に置き換えてください",
                )
            )

    status_v = STATUS_CODES.get(status)
    if status_v is None:
        errors.append(
            FeedError(
                row,
                "住民状態",
                f"「{status}」は定義されていないコードです（1 住民、2 転出、3 死亡、4 住登外）",
            )
        )
    elif kind in REQUIRED_STATUS and status_v != REQUIRED_STATUS[kind]:
        errors.append(
            FeedError(
                row,
                "住民状態",
                f"{_KIND_LABELS[kind]}の行の住民状態は「{STATUS_LABELS[REQUIRED_STATUS[kind]]}」でなければなりません",
            )
        )

    if len(errors) != n_before:
        return None
    return (
        kind, eff_iso, rcpt_iso, atena_no, name_n, kana_n, kana_search_key(kana_n),
        name_search_key(name_n)[:MAX_NAME], sex_v, birth_iso, postal_n, addr_n, annex_n, phone_n,
        household_no, rel_n, head_n, status_v,
    )  # fmt: skip


_KIND_LABELS = {
    "full_load": "全件",
    "move_in": "転入",
    "birth": "出生",
    "move_out": "転出",
    "death": "死亡",
    "name_change": "氏名変更",
    "address_change": "住所変更",
    "household_change": "世帯変更",
    "official_correction": "職権修正",
}

# Index positions in the tuple returned by parse_resident_row.
KIND, VALID_FROM, RECEIPT, ATENA, STATUS = 0, 1, 2, 3, 17
# The attributes compared to decide whether a row changes a person's record.
ATTRS = slice(4, 18)


def parse_category_row(
    cells: list[str], row: int, errors: list[FeedError]
) -> tuple[int, str, str, str] | None:
    """Validate one 年度別区分 row → (fiscal_year, atena_no, insurance, tax) or None."""
    if len(cells) != 4:
        errors.append(
            FeedError(
                row,
                "",
                f"列の数が違います（4列必要ですが{len(cells)}列あります）。区切り文字のずれや列の抜けがないか確認してください",
            )
        )
        return None
    n_before = len(errors)
    fy_s, atena, ins, tax = (normalize_digits(c) for c in cells)
    fy = _digits(fy_s, 4, 4)
    if fy is None or not 2000 <= int(fy) <= 2100:
        errors.append(FeedError(row, "年度", f"「{fy_s}」は西暦4桁の年度ではありません"))
    atena_no = _digits(atena, 1, 15)
    if atena_no is None:
        errors.append(FeedError(row, "宛名番号", f"「{atena}」は半角数字1〜15桁ではありません"))
    ins_v = INSURANCE_CODES.get(ins)
    if ins_v is None:
        errors.append(
            FeedError(
                row,
                "保険区分",
                f"「{ins}」は定義されていないコードです（1 市国保、2 後期高齢、3 それ以外）",
            )
        )
    tax_v = TAX_CODES.get(tax)
    if tax_v is None:
        errors.append(
            FeedError(
                row,
                "課税区分",
                f"「{tax}」は定義されていないコードです（1 課税、2 非課税、3 生活保護）",
            )
        )
    if len(errors) != n_before:
        return None
    return int(fy), atena_no, ins_v, tax_v  # type: ignore[arg-type]


# Which 住民状態 a person must have just before each 異動 (None: not in the register).
_ALLOWED_BEFORE = {
    "move_in": {None, "moved_out", "non_resident"},
    "birth": {None},
    "move_out": {"resident"},
    "death": {"resident", "non_resident"},
    "name_change": {"resident", "non_resident"},
    "address_change": {"resident", "non_resident"},
    "household_change": {"resident", "non_resident"},
    # A 職権修正 may correct anything, including a wrongly recorded 転出 or 死亡.
    "official_correction": {"resident", "moved_out", "deceased", "non_resident"},
}
# 異動 that change a record's details but never the person's 住民状態.
_KEEP_STATUS = frozenset({"name_change", "address_change", "household_change"})


def check_transition(
    kind: str, before: str | None, after: str, row: int, atena_no: str
) -> FeedError | None:
    """Can a person whose 住民状態 is `before` (None: unknown) undergo this 異動 and end `after`?

    The rules of the 住民基本台帳: only a resident moves out; nobody comes back from 死亡
    except by 職権修正; 氏名・住所・世帯の変更 leave the 住民状態 as it was.
    """
    if before is None and kind not in ("move_in", "birth"):
        return FeedError(
            row,
            "宛名番号",
            f"「{atena_no}」は住民記録にありません"
            "（転入・出生以外の異動は、登録済みの方の分だけ取り込めます）",
        )
    if kind == "birth" and before is not None:
        return FeedError(
            row,
            "宛名番号",
            f"「{atena_no}」は既に登録されている宛名番号です（出生は新しい宛名番号で届きます）",
        )
    if before not in _ALLOWED_BEFORE[kind]:
        label = STATUS_LABELS[before]  # type: ignore[index]
        if kind == "move_in" and before == "resident":
            detail = "既に住民として登録されています（転入は取り込めません）"
        else:
            detail = f"「{label}」の方には{_KIND_LABELS[kind]}の異動を取り込めません"
        return FeedError(row, "宛名番号", f"「{atena_no}」は{detail}")
    if kind in _KEEP_STATUS and after != before:
        return FeedError(
            row,
            "住民状態",
            f"{_KIND_LABELS[kind]}では住民状態は変わりません"
            f"（異動前は「{STATUS_LABELS[before]}」です）",  # type: ignore[index]
        )
    return None
