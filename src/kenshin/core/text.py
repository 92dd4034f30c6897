"""Normalisation policy for names (氏名), kana (氏名カナ) and digit fields.

This docstring is the policy; docs/text-normalisation.md repeats it for staff.

Why a single policy
-------------------
Names arrive from the resident register feed, from screen input and from
paper forms typed by contractors.  The same person shows up as 「ﾔﾏﾀﾞ ﾀﾛｳ」,
「やまだ　たろう」 and 「ヤマダ　タロウ」, or as 「髙橋」 and 「高橋」.  We must
(1) **store** what was written, faithfully, because a name is an identity
attribute and its written form (including 異体字) matters to the resident; and
(2) **find** people regardless of how the name was keyed.  So there are two
kinds of functions:

* *Normalisers* (``normalize_name``, ``normalize_kana``, ``normalize_digits``)
  produce the form we store.  They only remove noise that never carries
  meaning (width differences, whitespace runs, control characters).
* *Search keys* (``kana_search_key``, ``name_search_key``) produce a
  deliberately lossy form, stored in an indexed column next to the name and
  used only for matching.  Prefix search on a key is the range
  ``key >= p AND key < p || '\\uffff'`` (``p`` itself passed through the same
  key function), which a B-tree index serves without LIKE-escaping.

Rules
-----
``normalize_name`` (漢字氏名, 住所):
    * Kanji are kept **exactly** as written: no NFC/NFKC is ever applied to
      them, because that would replace CJK compatibility ideographs (U+F900…)
      with unified ones.  U+FA11 﨑, astral kanji such as 𠮷 (U+20BB7),
      ideographic variation sequences (base + U+E0100…U+E01EF) and private
      use characters (外字) pass through untouched.
    * Width folding only: full-width ASCII (Ａ１－ → A1-) and ￥ etc. become
      half-width; half-width katakana become full-width (ｶﾞ → ガ), and a kana
      followed by a combining (semi-)voiced mark is composed (NFD カ+゙ → ガ).
    * Any run of whitespace (space, U+3000, tab, newline, NBSP, …) becomes one
      ideographic space U+3000; leading and trailing whitespace is removed.
    * Control characters and invisible format characters (ZWSP, BOM,
      LRM/RLM, bidi embeddings/isolates, soft hyphen, word joiner) are removed.

``normalize_kana`` (氏名カナ):
    * NFKC (half-width ｶﾞ → ガ, full-width letters → ASCII), spacing voiced
      marks ゛゜ joined to the preceding kana (カ゛ → ガ).
    * Hiragana → katakana (ゔ → ヴ, ゝゞ → ヽヾ).
    * Small kana are **kept** (ァ stays ァ) – they are what was written.
    * A long-vowel-like mark directly after a kana (ｰ - ‐ ‑ ‒ – — ― − ～ 〜 ~ －)
      becomes the prolonged sound mark ー (U+30FC), one for one.
    * Whitespace as in ``normalize_name``; controls removed.
    * ``is_kana_name`` accepts a normalised value made only of katakana
      U+30A1–U+30FA, ー, ヽ, ヾ, U+3000 and, after the first character, the middle
      dot ・ that registers write between the parts of foreign names (スミス・ジョン).

``kana_search_key``:
    ``normalize_kana``, remove spaces, then fold small kana to large
    (ァィゥェォ → アイウエオ, ッ → ツ, ャュョ → ヤユヨ, ヮ → ワ, ヵ → カ, ヶ → ケ),
    because older registers were keyed with large kana only (キヨウコ for
    キョウコ).  Voiced marks are **not** folded: ガ ≠ カ.

``name_search_key``:
    NFKC on everything (here compatibility ideographs *may* fold: the key is
    not shown to anyone), drop variation selectors, whitespace and controls,
    case-fold Latin letters, then fold common 異体字 with ``VARIANT_FOLDS``.
    The table is conservative: only pairs that registries and staff treat as
    the "same" character when searching (髙/高, 﨑/崎, 邊/邉/辺, 齋/齊/斉/斎 …).
    Pairs that are distinct names in practice (龍/竜, 埼/崎, 桧/檜 …) are not
    folded.  A search may therefore return 斎藤 for 斉藤 – the list shows the
    written name, so staff choose; it never changes what is stored.

``normalize_digits``:
    Full-width digits → ASCII, any dash (including ー misused between digits)
    → ``-``, all whitespace removed.  For phone numbers, postal codes, numbers.

Performance
-----------
These run on every row of a million-row import.  ``normalize_name``,
``normalize_kana`` and ``kana_search_key`` first check the input with one
precompiled regular expression and return it unchanged when it is already
clean (the common case).  Otherwise the input is split on whitespace and each
part goes through a bounded LRU cache (2**16 parts) in front of the slow path
(``str.translate``, NFKC, regex substitutions – never per-character Python
loops): surnames and given names repeat so much that a feed sent entirely in
half-width kana costs about one dictionary lookup per part.  No rule acts
across whitespace, so per-part conversion is exactly the whole-string rule
(a property test checks this against the uncached implementation).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

__all__ = [
    "VARIANT_FOLDS",
    "is_kana_name",
    "kana_search_key",
    "name_search_key",
    "normalize_digits",
    "normalize_kana",
    "normalize_name",
]

_IDEOGRAPHIC_SPACE = "\u3000"
_PART_CACHE_SIZE = 1 << 16


def _char_class(chars: str) -> str:
    return "".join(re.escape(c) for c in chars)


# Every character for which str.isspace() is true (the same set as regex \s and str.strip()).
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
# C0/C1 controls that are not whitespace (whitespace controls collapse to a space instead).
_CONTROLS = "".join(
    c for c in map(chr, (*range(0x00, 0x20), *range(0x7F, 0xA0))) if not c.isspace()
)
# Invisible format characters that only ever appear as copy-and-paste noise in names.
_INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u200b\u200c\u200d\u200e\u200f"  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\ufeff"  # BOM / ZWNBSP
)
_DELETE: dict[int, None] = dict.fromkeys(map(ord, _CONTROLS + _INVISIBLE))

# Width folding = the Unicode <wide>/<narrow> compatibility mappings, restricted to
# full-width ASCII (FF01–FF5E), full-width signs ￠￡￢￣￤￥￦ (FFE0–FFE6) and
# half-width katakana (FF61–FF9F).  None of these is an ideograph.
_WIDTH: dict[int, str] = {}
for _cp in (*range(0xFF01, 0xFF5F), *range(0xFFE0, 0xFFE7), *range(0xFF61, 0xFFA0)):
    _tag, _, _target = unicodedata.decomposition(chr(_cp)).partition(" ")
    if _tag in ("<wide>", "<narrow>"):
        _WIDTH[_cp] = chr(int(_target, 16))

_NAME_TABLE: dict[int, str | None] = {**_DELETE, **_WIDTH}
_COMBINING_MARKS = "\u3099\u309a"

# Anything normalize_name would change.  If this finds nothing the input is returned as is.
_NAME_DIRTY = re.compile(
    "["
    + _char_class(_CONTROLS + _INVISIBLE + _COMBINING_MARKS)
    + "\uff01-\uff5e\uffe0-\uffe6\uff61-\uff9f"
    + "]"
    + r"|[^\S\u3000]|\A\u3000|\u3000(?:\u3000|\Z)"
)
_WS_RUN = re.compile(r"\s+")
_KANA_WITH_MARK = re.compile(r"[\u3041-\u30ff][\u3099\u309a]")


def _compose(m: re.Match[str]) -> str:
    return unicodedata.normalize("NFC", m.group())


def _name_part_slow(part: str) -> str:
    """Width-fold, drop invisibles and compose kana marks in one whitespace-free part."""
    t = part.translate(_NAME_TABLE)
    if "\u3099" in t or "\u309a" in t:
        t = _KANA_WITH_MARK.sub(_compose, t)
    return t


# Surnames, given names and address parts repeat a lot across a million rows; caching
# the per-part slow path turns most dirty inputs into a few dictionary lookups.
_name_part = lru_cache(maxsize=_PART_CACHE_SIZE)(_name_part_slow)


def _join_parts(parts: list[str], convert: Callable[[str], str]) -> str:
    if len(parts) == 1:
        return convert(parts[0])
    out = list(map(convert, parts))
    if "" in out:
        out = [p for p in out if p]
    return _IDEOGRAPHIC_SPACE.join(out)


def normalize_name(s: str) -> str:
    """Return the stored form of a kanji name or address (see module policy).

    Kanji, compatibility ideographs, variation sequences and 外字 are never
    changed; only width, whitespace and invisible characters are.
    """
    if _NAME_DIRTY.search(s) is None:
        return s
    # Nothing in a part's conversion creates or crosses whitespace, so the
    # string can be split on whitespace runs, converted part by part and
    # re-joined with single U+3000 (which also trims the ends).
    return _join_parts(s.split(), _name_part)


# --- kana ----------------------------------------------------------------------------------------

_KATAKANA = "\u30a1-\u30fa\u30fc-\u30fe"  # ァ…ヺ, ー, ヽ, ヾ
_KANA_CLEAN = re.compile(f"[{_KATAKANA}]+(?:\u3000[{_KATAKANA}]+)*")
# The middle dot ・ separates the parts of foreign names (スミス・ジョン) in registers.
_KANA_NAME = re.compile(
    f"\u3000*[{_KATAKANA}][{_KATAKANA}\u3000]*(?:\u30fb[{_KATAKANA}][{_KATAKANA}\u3000]*)*"
)

# Before NFKC: drop controls; spacing ゛゜ become combining marks so NFKC composes them
# with the preceding kana (NFKC alone would turn ゛ into a space + combining mark).
_KANA_PRE: dict[int, str | None] = {**_DELETE, 0x309B: "\u3099", 0x309C: "\u309a"}
# ぁ (U+3041) … ゖ (U+3096) and ゝゞ (U+309D/E) sit exactly 0x60 below their katakana.
_HIRA_TO_KATA: dict[int, int] = {cp: cp + 0x60 for cp in (*range(0x3041, 0x3097), 0x309D, 0x309E)}
_NEEDS_KANA_PRE = re.compile("[" + _char_class(_CONTROLS + _INVISIBLE) + "\u309b\u309c]")
_HAS_HIRAGANA = re.compile("[\u3041-\u3096\u309d\u309e]")
# Long-vowel-like marks as they look *after* NFKC (ｰ→ー, －→-, ～→~ already folded).
_DASHES = "-~\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u301c\uff0d\uff5e\uff70"
_DASH_AFTER_KANA = re.compile(f"(?<=[{_KATAKANA}])[{_char_class(_DASHES)}]+")


def _choonpu(m: re.Match[str]) -> str:
    return "ー" * len(m.group())


def _normalize_kana_slow(s: str) -> str:
    """The whole normalize_kana algorithm in its plain, uncached form (also the test oracle)."""
    # str.translate costs ~80 ns a character on non-ASCII text: only run it when needed.
    t = s.translate(_KANA_PRE) if _NEEDS_KANA_PRE.search(s) is not None else s
    t = unicodedata.normalize("NFKC", t)
    if _HAS_HIRAGANA.search(t) is not None:
        t = t.translate(_HIRA_TO_KATA)
    if "\u3099" in t or "\u309a" in t:
        # e.g. わ+゙ has no precomposed hiragana but ワ+゙ composes to ヷ.
        t = unicodedata.normalize("NFC", t)
    t = _DASH_AFTER_KANA.sub(_choonpu, t)
    return _WS_RUN.sub(_IDEOGRAPHIC_SPACE, t.strip())


_kana_part = lru_cache(maxsize=_PART_CACHE_SIZE)(_normalize_kana_slow)


def normalize_kana(s: str) -> str:
    """Return the stored form of a kana name: full-width katakana, single U+3000 spaces.

    ``normalize_kana("ﾔﾏﾀﾞ ﾀﾛｳ") == "ヤマダ　タロウ"``; small kana are kept.
    """
    if _KANA_CLEAN.fullmatch(s) is not None:
        return s
    # No step of the algorithm acts across whitespace (NFKC does not compose over a
    # space; a dash after a space is not a long-vowel mark), so it is applied per part
    # through a cache: feeds that send every name in half-width kana stay fast.
    return _join_parts(s.split(), _kana_part)


def is_kana_name(s: str) -> bool:
    """True if ``s`` (already normalised) is only katakana, ー, ヽ, ヾ and U+3000.

    At least one non-space character is required.  Used by form and feed
    validators after :func:`normalize_kana`.
    """
    return _KANA_NAME.fullmatch(s) is not None


_SMALL_KANA = "ァィゥェォッャュョヮヵヶ"
_LARGE_KANA = "アイウエオツヤユヨワカケ"
_SMALL_TO_LARGE = dict(zip(_SMALL_KANA, _LARGE_KANA, strict=True))
_HAS_SMALL = re.compile(f"[{_SMALL_KANA}]")
_SPACE_THEN_NON_KATAKANA = re.compile(f"\u3000[^{_KATAKANA}]")


def _settle(t: str) -> str:
    """Re-apply composition and the long-vowel rule after characters were removed or changed."""
    return _DASH_AFTER_KANA.sub(_choonpu, unicodedata.normalize("NFKC", t))


def kana_search_key(s: str) -> str:
    """Return the matching key for a kana name: no spaces, small kana folded to large.

    ``kana_search_key("キョウコ") == kana_search_key("ｷﾖｳｺ") == "キヨウコ"``.
    Voiced marks are kept (ガ ≠ カ).  Prefix search:
    ``key >= p AND key < p + "\\uffff"`` with ``p = kana_search_key(prefix)``.
    """
    if "・" in s or "･" in s:
        # The middle dot separates name parts like a space does: スミス・ジョン ≡ スミス　ジョン.
        s = s.replace("・", _IDEOGRAPHIC_SPACE).replace("･", _IDEOGRAPHIC_SPACE)
    if _KANA_CLEAN.fullmatch(s) is not None:
        t = s.replace(_IDEOGRAPHIC_SPACE, "")
    else:
        t = normalize_kana(s)
        if _SPACE_THEN_NON_KATAKANA.search(t) is not None:
            # Removing the space brings a mark or dash next to a kana; settle that
            # the way normalize_kana would, so that the key is stable under re-keying.
            t = _settle(t.replace(_IDEOGRAPHIC_SPACE, ""))
        else:
            t = t.replace(_IDEOGRAPHIC_SPACE, "")
    small = _HAS_SMALL.findall(t)
    if small:
        # str.translate costs ~80 ns per character on non-ASCII text; a few
        # str.replace calls for the small kana actually present are cheaper.
        for c in set(small):
            t = t.replace(c, _SMALL_TO_LARGE[c])
        if "\u3099" in t or "\u309a" in t:
            t = _settle(t)  # ヵ+゙ has no composite, but カ+゙ is ガ
    return t


# --- kanji search key ----------------------------------------------------------------------------

#: 異体字 folded to a common form in :func:`name_search_key` only (never in stored names).
#: Conservative on purpose: 龍/竜, 埼/崎, 桧/檜, 舘/館 and similar are NOT folded.
VARIANT_FOLDS: dict[str, str] = {
    "髙": "高",
    "﨑": "崎",
    "嵜": "崎",
    "碕": "崎",
    "𠮷": "吉",
    "邉": "辺",
    "邊": "辺",
    "濵": "浜",
    "濱": "浜",
    "齋": "斎",
    "齊": "斎",
    "斉": "斎",
    "澤": "沢",
    "櫻": "桜",
    "廣": "広",
    "國": "国",
    "嶋": "島",
    "嶌": "島",
    "冨": "富",
    "藏": "蔵",
    "德": "徳",
    "惠": "恵",
    "眞": "真",
    "壽": "寿",
    "瀨": "瀬",
    "彌": "弥",
    "淵": "渕",
    "渊": "渕",
    "實": "実",
    "榮": "栄",
}

_VARIATION_SELECTORS = (
    *range(0x180B, 0x1810),  # Mongolian free variation selectors
    *range(0xFE00, 0xFE10),  # VS1–VS16
    *range(0xE0100, 0xE01F0),  # VS17–VS256 (IVS)
)
_NAME_KEY_TABLE: dict[int, str | None] = {
    **_DELETE,
    **dict.fromkeys(map(ord, _WHITESPACE)),
    **dict.fromkeys(_VARIATION_SELECTORS),
    **{ord(k): v for k, v in VARIANT_FOLDS.items()},
}
_NAME_KEY_DIRTY = re.compile(
    "["
    + _char_class(_CONTROLS + _INVISIBLE + _WHITESPACE + "".join(VARIANT_FOLDS))
    + "\u180b-\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]"
)


def name_search_key(s: str) -> str:
    """Return the matching key for a kanji name: 髙橋 and 高橋 give the same key.

    NFKC, case-fold, drop spaces/variation selectors/controls, fold
    ``VARIANT_FOLDS``.  The final NFKC composes marks that became adjacent
    once spaces were removed, so the key is stable under re-keying.
    """
    # Dropping whitespace first keeps the common input on NFKC's quick-check path.
    t = unicodedata.normalize("NFKC", "".join(s.split())).casefold()
    if _NAME_KEY_DIRTY.search(t) is not None:
        t = t.translate(_NAME_KEY_TABLE)
    return unicodedata.normalize("NFKC", t)


_DIGIT_TABLE: dict[int, str | None] = {
    **{0xFF10 + i: str(i) for i in range(10)},
    **dict.fromkeys(
        map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\ufe63\uff0d\uff70"), "-"
    ),
    **dict.fromkeys(map(ord, _WHITESPACE)),
}


def normalize_digits(s: str) -> str:
    """Fold a number-like field: full-width digits → ASCII, dashes → ``-``, no whitespace.

    ``normalize_digits("０９０ー１２３４－５６７８ ") == "090-1234-5678"``.
    Characters other than digits, dashes and whitespace are left for the
    validator to reject.
    """
    return s.translate(_DIGIT_TABLE)
