"""Find 個人番号 and residents' names in text that must never carry them (MN-03).

Why: logs, URLs and error pages leave the application's control — web server access logs,
proxies, browser history, a log shipper, a screenshot attached to a ticket. The test suite
captures them (and page titles) and scans them with `scan`, so a change that starts printing
a name or a 個人番号 fails the build instead of reaching production.

Why pure functions here (and the capture in tests/plugins/leakguard.py): what counts as a leak
is a domain decision worth unit-testing on its own, and it may later serve a log-shipping
filter as well as the tests.

The guard must not itself be the leak: a `Finding` never holds the value it found, only an
excerpt in which every hit is replaced by a tag such as ［氏名］.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from kenshin.core import mynumber

MYNUMBER = "個人番号"
NAME = "氏名"
MIN_NAME_CHARS = 3  # letters: shorter "names" (a surname alone, "李明") match too much noise
MAX_KEY_CHARS = 40  # a prefix this long identifies the person just as well
EXCERPT_CHARS = 24  # context on each side of a hit
# Around a hit often sit the person's other data (birth date, phone, 宛名番号): in excerpts
# every run of 4+ digits is hidden too. Shorter runs (a status code part, "06") stay readable.
_LONG_DIGITS = re.compile(r"[0-9]{4,}")

_WHITESPACE = re.compile(r"\s+")
_NON_SPACE = re.compile(r"\S")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# UTF-8 bytes read as Latin-1 (WSGI's str convention; Django's get_full_path re-quotes them)
_MOJIBAKE = re.compile(r"[\xc2-\xf4][\x80-\xbf]+")


@dataclass(frozen=True)
class Finding:
    """One hit: what kind, where it was seen, and a masked excerpt around it."""

    kind: str  # MYNUMBER or NAME
    where: str  # e.g. "log django.request @ tests/x.py::test_y"
    excerpt: str  # hits replaced by ［個人番号］ / ［氏名］; never the value itself

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}: …{self.excerpt}…"


def name_key(name: str) -> str:
    """The form names are matched in: NFKC, no whitespace ("山田　太郎", "山田 太郎" → "山田太郎").

    NFKC folds width (ﾔﾏﾀﾞ → ヤマダ) and compatibility ideographs; the scanned text is folded
    the same way, so a name is found however it was keyed or rendered.
    """
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", name))[:MAX_KEY_CHARS]


class NameMatcher:
    """All names as one compiled trie-shaped regex (the Aho-Corasick idea in the re engine).

    A plain alternation of thousands of names makes re try each name at each position; a trie
    shares prefixes, so each text position costs about one path through the trie.
    """

    def __init__(self, names: Iterable[str]) -> None:
        keys = {name_key(n) for n in names if n}
        self.keys = frozenset(k for k in keys if _letters(k) >= MIN_NAME_CHARS)
        self._regex = re.compile(_trie_pattern(self.keys)) if self.keys else None

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:  # never list the names (pytest may print locals on failure)
        return f"<NameMatcher {len(self.keys)} names>"

    def spans(self, norm: str) -> list[tuple[int, int]]:
        """Spans in `norm` (NFKC text) of every name, ignoring whitespace inside the name."""
        if self._regex is None:
            return []
        stripped = _WHITESPACE.sub("", norm)
        hits = [(m.start(), m.end()) for m in self._regex.finditer(stripped)]
        if not hits:
            return []
        positions = [m.start() for m in _NON_SPACE.finditer(norm)]
        return [(positions[a], positions[b - 1] + 1) for a, b in hits]


def _letters(key: str) -> int:
    """Letters (kanji, kana, ー, Latin) in a key: "0-04" or "・・・" is no one's name."""
    return sum(1 for ch in key if unicodedata.category(ch).startswith("L"))


def _trie_pattern(keys: Iterable[str]) -> str:
    trie: dict = {}
    for key in keys:
        node = trie
        for ch in key:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _node_pattern(trie)


def _node_pattern(node: dict) -> str:
    ends_here = "" in node
    branches = [re.escape(ch) + _node_pattern(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends_here:  # greedy: the longest name wins, so the whole name is masked
        return f"(?:{body})?"
    return body


def readable(text: str) -> str:
    """The text as a person would read it: the encodings a value hides behind are undone.

    Percent-encoding, repeated (a ``?next=`` URL quotes a quoted URL), UTF-8 read as Latin-1
    (WSGI query strings), JSON \\uXXXX escapes (API error bodies are ASCII-only JSON) and HTML
    character references; then NFKC, which folds full-width digits and hyphens and half-width
    kana.
    """
    if "&" in text:
        text = html.unescape(text)
    if "\\u" in text:
        text = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    for _ in range(3):
        if "%" not in text and "+" not in text:
            break
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    text = _MOJIBAKE.sub(_utf8_read_as_latin1, text)
    return unicodedata.normalize("NFKC", text)


def _utf8_read_as_latin1(m: re.Match[str]) -> str:
    try:
        return m.group().encode("latin-1").decode("utf-8")
    except UnicodeError:
        return m.group()


def mynumber_spans(norm: str) -> list[tuple[int, int]]:
    """Spans of valid-looking 個人番号 (core.mynumber decides what counts)."""
    spans = []
    start = 0
    for found in mynumber.find_all(norm):
        at = norm.find(found, start)
        spans.append((at, at + len(found)))
        start = at + len(found)
    return spans


def scan(text: str, names: NameMatcher | Iterable[str] = (), *, where: str = "") -> list[Finding]:
    """Every 個人番号 (valid check digit; ASCII, full-width or 4-4-4) and every known name in text.

    `names` is a prebuilt NameMatcher (build it once for many texts) or any iterable of full
    names. The text is first made `readable`, so percent-encoded or JSON-escaped values,
    full-width digits and hyphens, half-width kana and names with or without a space between
    姓 and 名 are all found.
    """
    matcher = names if isinstance(names, NameMatcher) else NameMatcher(names)
    norm = readable(text)
    hits = [(a, b, MYNUMBER) for a, b in mynumber_spans(norm)]
    hits += [(a, b, NAME) for a, b in matcher.spans(norm)]
    if not hits:
        return []
    hits.sort()
    safe_where = mask(where, matcher)
    return [Finding(kind, safe_where, _excerpt(norm, hits, a, b)) for a, b, kind in hits]


def mask(text: str, names: NameMatcher | Iterable[str] = ()) -> str:
    """The text with every 個人番号 and known name replaced by its tag (safe to print)."""
    matcher = names if isinstance(names, NameMatcher) else NameMatcher(names)
    norm = readable(text)
    hits = sorted(
        [(a, b, MYNUMBER) for a, b in mynumber_spans(norm)]
        + [(a, b, NAME) for a, b in matcher.spans(norm)]
    )
    if not hits:
        return text
    return _masked(norm, hits, 0, len(norm))


def _excerpt(norm: str, hits: list[tuple[int, int, str]], a: int, b: int) -> str:
    lo = max(0, a - EXCERPT_CHARS)
    hi = min(len(norm), b + EXCERPT_CHARS)
    # widen the window over hits cut by its edges, so no partial value shows
    for ha, hb, _ in hits:
        if ha < lo < hb:
            lo = ha
        if ha < hi < hb:
            hi = hb
    return _masked(norm, hits, lo, hi)


def _masked(norm: str, hits: list[tuple[int, int, str]], lo: int, hi: int) -> str:
    out = []
    pos = lo
    for ha, hb, kind in hits:
        if hb <= lo or ha >= hi:
            continue
        if ha >= pos:
            out.append(_hide_digits(norm[pos:ha]))
            out.append(f"［{kind}］")
        pos = max(pos, hb)
    out.append(_hide_digits(norm[pos:hi]))
    return _WHITESPACE.sub(" ", "".join(out)).strip()


def _hide_digits(text: str) -> str:
    return _LONG_DIGITS.sub(lambda m: "#" * len(m.group()), text)
