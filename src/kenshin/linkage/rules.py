"""Pure rules of the 番号連携サーバ: 事務 codes, the 団体内統合宛名番号 format, the 名寄せ key,
the masked display of a 個人番号. No database, no Django: the HTTP server, the in-process client
and the tests all decide the same way.

Why the 統合宛名番号 carries a check digit: staff key it into search boxes and other systems copy
it by hand; a typo must be refused, not silently resolve to somebody else. There is no national
format for this number (each 団体 chooses its own), so the scheme is ours and written down here:

    15 digits = a 14-digit zero-padded serial (NumberCounter, never reused)
                + one check digit computed by the Luhn algorithm (ISO/IEC 7812-1 Annex B)
                  over those 14 digits.

Luhn catches every single-digit error and every transposition of adjacent digits except 09/90,
and it is what every staff member's card reader already knows. It is deliberately *not* the
個人番号 formula, so a 統合宛名番号 is never mistaken for a 個人番号 (and it is 15 digits, which
the leak guard's 12-digit pattern does not match).
"""

from __future__ import annotations

import hashlib
from datetime import date

from kenshin.core.text import kana_search_key, name_search_key
from kenshin.linkage.contract import InvalidInput

#: 事務 a calling system may name (番号法 別表 item → code). Codes are ASCII and stable; the
#: Japanese name is what the access log screen shows. This system's own 事務 is ``kenko_zoshin``.
JIMU: dict[str, str] = {
    "kenko_zoshin": "健康増進法による健康増進事業の実施に関する事務",
    "juki": "住民基本台帳に関する事務",
    "kokuho": "国民健康保険法による保険給付の支給又は保険料の徴収に関する事務",
    "kaigo": "介護保険法による保険給付の支給、地域支援事業の実施又は保険料の徴収に関する事務",
    "zeimu": "地方税法その他の地方税に関する法律による地方税の賦課徴収に関する事務",
}

UNIFIED_SERIAL_DIGITS = 14
UNIFIED_LENGTH = UNIFIED_SERIAL_DIGITS + 1
MAX_SERIAL = 10**UNIFIED_SERIAL_DIGITS - 1


def luhn_check_digit(digits: str) -> int:
    """The Luhn check digit to append to ``digits`` (ASCII digits, most significant first)."""
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("digits expected")
    total = 0
    # From the right, the digit next to the check digit is doubled, then every second one.
    for n, ch in enumerate(reversed(digits)):
        d = int(ch)
        if n % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def unified_atena_no(serial: int) -> str:
    """The 団体内統合宛名番号 made from a serial: 14 digits zero-padded + Luhn check digit."""
    if not 1 <= serial <= MAX_SERIAL:
        raise ValueError("serial out of range")
    body = f"{serial:0{UNIFIED_SERIAL_DIGITS}d}"
    return body + str(luhn_check_digit(body))


def is_valid_unified(value: str) -> bool:
    """True for exactly 15 ASCII digits, a non-zero serial and a correct check digit."""
    if len(value) != UNIFIED_LENGTH or not value.isascii() or not value.isdigit():
        return False
    body = value[:UNIFIED_SERIAL_DIGITS]
    return int(body) > 0 and luhn_check_digit(body) == int(value[-1])


def serial_of(value: str) -> int:
    """The serial (= Person primary key) of a 統合宛名番号; InvalidInput if it is malformed.

    Why the caller wants this: every look-up by 統合宛名番号 becomes a primary-key read.
    """
    value = (value or "").strip()
    if not is_valid_unified(value):
        raise InvalidInput("団体内統合宛名番号の形式または検査用数字が正しくありません")
    return int(value[:UNIFIED_SERIAL_DIGITS])


# --- 名寄せ (five items) ------------------------------------------------------------------------

FIVE_ITEMS = ("漢字氏名", "カナ氏名", "生年月日", "性別", "住所")
SEX_CODES = frozenset({1, 2})  # 住基: 1 男, 2 女
_SEPARATOR = "\x1f"  # unit separator: cannot occur in any normalised item


def five_item_key(name: str, kana: str, birth_date: date, sex: int, address: str) -> str:
    """SHA-256 (hex) over the five 名寄せ items after normalisation; InvalidInput if one is empty.

    Why all five and never fewer: linking two 宛名 to one 統合宛名番号 on name and birth date
    alone joins namesakes (issue 4: "never on fewer items"). The items are normalised the way
    search keys are (core.text): width, spaces and written variants such as 髙/高 do not count,
    small kana are folded (older registers keyed キヨウコ for キョウコ), so the same person keyed
    by two systems gives one key. The key is a hash so the Atena table can index one column.
    """
    parts = (
        name_search_key(name or ""),
        kana_search_key(kana or ""),
        birth_date.isoformat() if isinstance(birth_date, date) else "",
        str(sex) if sex in SEX_CODES else "",
        name_search_key(address or ""),
    )
    missing = [label for label, part in zip(FIVE_ITEMS, parts, strict=True) if not part]
    if missing:
        raise InvalidInput("名寄せの5項目がそろっていません（" + "・".join(missing) + "）")
    return hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8")).hexdigest()


def mask(my_number: str) -> str:
    """``**** **** 3214``: only the last four digits of a (normalised) 個人番号 are shown.

    Why the last four: that is what staff read back to a resident on the phone; the first
    eight would narrow the number without helping anyone.
    """
    digits = "".join(ch for ch in my_number if ch.isdigit())
    if len(digits) != 12:
        raise ValueError("12 digits expected")
    return "**** **** " + digits[-4:]
