"""個人番号 check digit, and finding valid-looking 個人番号 in text (masking, leak guard).

Why here and not only in ``linkage``: the leak guard and the audit writer must recognise a
個人番号 wherever it might slip out, long before (and outside) the vault. The formula is the
総務省令 one (reference/domain.md §6.1): weights 2..7,2..6 from the right over the first 11
digits; remainder r = Σ mod 11; check = 0 if r <= 1 else 11 - r.
"""

from __future__ import annotations

import re

# Between the 4-digit groups: the separators linkage.mynumber.normalize accepts (ASCII and
# full-width spaces, hyphens, dashes, the long-vowel mark staff type for a dash), up to two.
# Whatever the vault would accept as a 個人番号 must also be recognised here.
_SEP = "[ \t\u3000\\-‐‑‒–—―−ー－]{0,2}"
_SEP_CHARS = re.compile(_SEP)
_CANDIDATE = re.compile(
    rf"(?<![0-9０-９])([0-9０-９]{{4}}{_SEP}[0-9０-９]{{4}}{_SEP}[0-9０-９]{{4}})(?![0-9０-９])"
)
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")


def check_digit(first_eleven: str) -> int:
    """The 12th digit for the 11 digits given (most significant first)."""
    if len(first_eleven) != 11 or not first_eleven.isascii() or not first_eleven.isdigit():
        raise ValueError("11 digits expected")
    total = 0
    for n, ch in enumerate(reversed(first_eleven), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(ch) * weight
    r = total % 11
    return 0 if r <= 1 else 11 - r


def is_valid(number: str) -> bool:
    """True for exactly 12 ASCII digits whose last digit is the check digit."""
    if len(number) != 12 or not number.isascii() or not number.isdigit():
        return False
    return check_digit(number[:11]) == int(number[11])


def find_all(text: str) -> list[str]:
    """Every 12-digit run (ASCII or full-width, maybe grouped 4-4-4) with a valid check digit."""
    found = []
    for m in _CANDIDATE.finditer(text):
        digits = _SEP_CHARS.sub("", m.group(1)).translate(_FULLWIDTH)
        if is_valid(digits):
            found.append(m.group(1))
    return found


def mask_in_text(text: str) -> str:
    """Replace every valid-looking 個人番号 with a fixed mask; other digits stay as they are."""

    def repl(m: re.Match[str]) -> str:
        digits = _SEP_CHARS.sub("", m.group(1)).translate(_FULLWIDTH)
        return "************" if is_valid(digits) else m.group(1)

    return _CANDIDATE.sub(repl, text)
