"""個人番号 on entry: one normal form, and the check digit (reference/domain.md §6.1).

Why normalise before anything else: staff and other systems send 個人番号 full-width,
grouped 4-4-4 with hyphens or spaces, or with a stray space at the end; the blind index must
see one spelling, or a look-up misses the row. The check-digit formula itself lives in
core.mynumber, which the leak guard and the audit writer share.
"""

from __future__ import annotations

import re
import unicodedata

from kenshin.core import mynumber as _core

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―−ー－]")


class InvalidMyNumber(ValueError):
    """Not a 個人番号: the message says why, never the number itself."""


def normalize(value: str) -> str:
    """NFKC, drop spaces and hyphens, and require exactly 12 ASCII digits.

    Raises InvalidMyNumber (Japanese message, without the value) otherwise. The check digit
    is not checked here: see :func:`is_valid`.
    """
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value or ""))
    if not (len(text) == 12 and text.isascii() and text.isdigit()):
        raise InvalidMyNumber("個人番号は12桁の数字で入力してください")
    return text


def is_valid(value: str) -> bool:
    """True if ``value`` normalises to 12 digits whose last digit is the check digit."""
    try:
        return _core.is_valid(normalize(value))
    except InvalidMyNumber:
        return False
