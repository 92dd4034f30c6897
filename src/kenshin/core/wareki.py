"""Japanese era dates (和暦) and tolerant date parsing for feed files.

Why this module exists
----------------------
Residents, paper forms and municipal feed files write dates as 和暦
(「令和7年4月1日」, 「R7.4.1」, 「H310430」) as often as in the Western
calendar, and with full-width digits.  Notices we print must use 和暦 too.
Two rules matter:

* **Era boundaries are exact days**, not years: 1989-01-07 is 昭和64年1月7日
  and 1989-01-08 is 平成元年1月8日; 2019-04-30 is 平成31年4月30日 and
  2019-05-01 is 令和元年5月1日.  The first year of an era is written 元年.
* **A date outside its era is an error**, not something to roll over:
  「平成31年5月1日」 or 「平成32年1月1日」 never existed, and silently
  turning them into 令和 dates would hide a data-entry mistake.  Likewise
  impossible days (「令和7年2月30日」) are rejected, never clamped.

Errors are ``ValueError`` with a Japanese message that quotes the input, so
the message can be shown to staff as is (e.g. in an import error report).

:func:`parse_date` is on the bulk-import hot path (a million calls), so the
two canonical machine formats ``YYYY-MM-DD`` and ``YYYYMMDD`` are recognised
first without any normalisation; everything else goes through NFKC (to fold
full-width digits, letters and punctuation) and regular expressions.

明治 is taken to start on 1868-01-25 (Gregorian date of 明治元年1月1日) and
Gregorian dates are mapped by year, which is the modern administrative
convention even for 明治1–5年, when the lunar calendar was still in use.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import NamedTuple

__all__ = ["parse_date", "parse_wareki", "to_wareki", "to_wareki_short"]


class _Era(NamedTuple):
    name: str
    abbr: str
    start: date


# Oldest first.  Each era ends the day before the next one starts.
_ERAS: tuple[_Era, ...] = (
    _Era("明治", "M", date(1868, 1, 25)),
    _Era("大正", "T", date(1912, 7, 30)),
    _Era("昭和", "S", date(1926, 12, 25)),
    _Era("平成", "H", date(1989, 1, 8)),
    _Era("令和", "R", date(2019, 5, 1)),
)
_ERA_BY_TOKEN: dict[str, int] = {}
for _i, _era in enumerate(_ERAS):
    _ERA_BY_TOKEN[_era.name] = _i
    _ERA_BY_TOKEN[_era.abbr] = _i

_MAX_SHOWN = 40  # characters of the offending input quoted in an error message


def _era_index(d: date) -> int:
    for i in range(len(_ERAS) - 1, -1, -1):
        if d >= _ERAS[i].start:
            return i
    raise ValueError(f"{d.isoformat()} は明治より前の日付のため和暦に変換できません")


def to_wareki(d: date) -> str:
    """Format ``d`` as a 和暦 date such as 「令和7年4月1日」 (元年 for year 1).

    Raises ``ValueError`` for dates before 明治 (1868-01-25).
    """
    era = _ERAS[_era_index(d)]
    year = d.year - era.start.year + 1
    year_text = "元" if year == 1 else str(year)
    return f"{era.name}{year_text}年{d.month}月{d.day}日"


def to_wareki_short(d: date) -> str:
    """Format ``d`` in the compact form used in tables, e.g. 「R7.4.1」 (year 1 is 「R1」)."""
    era = _ERAS[_era_index(d)]
    return f"{era.abbr}{d.year - era.start.year + 1}.{d.month}.{d.day}"


# --- parsing -------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")

# Applied to the NFKC-folded, whitespace-free, upper-cased input.
_WAREKI = re.compile(
    r"(?P<era>明治|大正|昭和|平成|令和|[MTSHR])"
    r"(?:"
    r"(?P<y>元|[0-9]{1,3})"
    r"(?:年(?P<m>[0-9]{1,2})月(?P<d>[0-9]{1,2})日?"
    r"|(?P<sep>[./-])(?P<m2>[0-9]{1,2})(?P=sep)(?P<d2>[0-9]{1,2}))"
    r"|(?P<yc>[0-9]{2})(?P<mc>[0-9]{2})(?P<dc>[0-9]{2})"
    r")"
)
# Something that looks like an era date but with an era we do not know (慶応, X, ...).
_UNKNOWN_ERA = re.compile(r"(?P<era>[^\W\d_A-Z]{1,4}|[A-Z])(?:元|[0-9]{1,3})(?:年|[./-]|[0-9]{4}$)")

_GREGORIAN = (
    re.compile(r"(?P<y>[0-9]{4})(?P<sep>[./-])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})"),
    re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"),
    re.compile(r"(?P<y>[0-9]{4})年(?P<m>[0-9]{1,2})月(?P<d>[0-9]{1,2})日?"),
)


def _shown(s: str) -> str:
    s = s.strip()
    return s if len(s) <= _MAX_SHOWN else s[: _MAX_SHOWN - 1] + "…"


def _fold(s: str) -> str:
    """NFKC (full-width digits/letters/punctuation, ㍻ → 平成), drop spaces, upper-case."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", s)).upper()


def _make_date(year: int, month: int, day: int, original: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"「{_shown(original)}」は存在しない日付です") from None


def _parse_wareki_folded(folded: str, original: str) -> date | None:
    """Parse an already folded string; ``None`` if it does not look like 和暦 at all."""
    m = _WAREKI.fullmatch(folded)
    if m is None:
        unknown = _UNKNOWN_ERA.match(folded)
        if unknown is not None:
            raise ValueError(
                f"「{_shown(original)}」の元号「{unknown['era']}」には対応していません"
            )
        return None
    index = _ERA_BY_TOKEN[m["era"]]
    era = _ERAS[index]
    if m["yc"] is not None:
        year_text, month_text, day_text = m["yc"], m["mc"], m["dc"]
    elif m["m"] is not None:
        year_text, month_text, day_text = m["y"], m["m"], m["d"]
    else:
        year_text, month_text, day_text = m["y"], m["m2"], m["d2"]
    era_year = 1 if year_text == "元" else int(year_text)
    result = _make_date(era.start.year + era_year - 1, int(month_text), int(day_text), original)
    next_start = _ERAS[index + 1].start if index + 1 < len(_ERAS) else None
    if era_year < 1 or result < era.start or (next_start is not None and result >= next_start):
        raise ValueError(f"「{_shown(original)}」は{era.name}の期間外です")
    return result


def parse_wareki(s: str) -> date:
    """Parse a 和暦 date.

    Accepted (after NFKC, so full-width digits/letters and ㍻/㋿ work; spaces
    are ignored): 「令和7年4月1日」, 「令和元年5月1日」, 「R7.4.1」, 「r7/4/1」,
    「Ｈ31-4-30」, 「R7年4月1日」, and the compact form 「R070401」 (era letter +
    two digits each for year, month, day).  Era letters are M/T/S/H/R.

    Raises ``ValueError`` with a Japanese message for an unreadable string,
    an unknown era, a day that does not exist, or a date outside the era
    (「平成31年5月1日」は平成の期間外です).
    """
    result = _parse_wareki_folded(_fold(s), s)
    if result is None:
        raise ValueError(f"「{_shown(s)}」は和暦の日付として読めません")
    return result


_fromisoformat = date.fromisoformat


def parse_date(s: str) -> date:
    """Parse a date from a feed file: Western calendar or 和暦.

    Accepted: ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYY.MM.DD`` (one- or two-digit
    month and day, the same separator twice), ``YYYYMMDD``, 「YYYY年M月D日」,
    full-width digits, surrounding spaces, and every form :func:`parse_wareki`
    accepts.

    Fast path: the exact 10-character ``YYYY-MM-DD`` and 8-digit ``YYYYMMDD``
    forms go straight to the C ``date.fromisoformat`` (a few hundred ns).
    Anything it rejects falls through to the general path, which produces
    the precise error message.

    Raises ``ValueError``: 「2025-02-30」は存在しない日付です,
    「abc」は日付として読めません, or the 和暦 messages of :func:`parse_wareki`.
    """
    n = len(s)
    if n == 10:
        if s[4] == "-" and s[7] == "-":
            try:
                return _fromisoformat(s)
            except ValueError:
                pass
    elif n == 8 and s.isascii() and s.isdigit():
        try:
            return _fromisoformat(s)
        except ValueError:
            pass
    folded = _fold(s)
    for pattern in _GREGORIAN:
        m = pattern.fullmatch(folded)
        if m is not None:
            return _make_date(int(m["y"]), int(m["m"]), int(m["d"]), s)
    result = _parse_wareki_folded(folded, s)
    if result is None:
        raise ValueError(f"「{_shown(s)}」は日付として読めません")
    return result
