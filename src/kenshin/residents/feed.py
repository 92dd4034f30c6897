"""Reading feed files: which kind a header says the file is.

The bytes (hash, encoding, rows with their numbers) are read by ``core.files``, shared with
the result intake.
"""

from __future__ import annotations

from kenshin.core.files import FileFacts, RowStream, inspect_file
from kenshin.residents.rules import (
    CATEGORY_HEADER,
    RESIDENT_HEADER,
    RESIDENT_HEADER_WITH_MY_NUMBER,
)

__all__ = ["FileFacts", "RowStream", "feed_kind_of", "inspect_file"]


def feed_kind_of(header: list[str]) -> str | None:
    """'resident' or 'categories' from the header line (the closer match), or None if empty.

    A resident file may end with the optional 個人番号 column (rules.MY_NUMBER_COLUMN).
    """
    cleaned = [c.strip() for c in header]
    if not cleaned:
        return None

    def score(expected: tuple[str, ...]) -> int:
        return sum(a == b for a, b in zip(cleaned, expected, strict=False)) - abs(
            len(cleaned) - len(expected)
        )

    resident = max(score(RESIDENT_HEADER), score(RESIDENT_HEADER_WITH_MY_NUMBER))
    return "categories" if score(CATEGORY_HEADER) > resident else "resident"
