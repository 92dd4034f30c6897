"""A progress line for long CLI work (imports, generation).

Why here: every long job shows progress (DESIGN.md, cross-cutting rules). The CLI prints one
self-overwriting line on a terminal and plain periodic lines otherwise, so logs stay readable.
"""

from __future__ import annotations

import time
from typing import TextIO


class ProgressLine:
    """Report `done` of `total` units (bytes, rows) with a rate, at most every `interval` s.

    ``total=None`` means not known: the line shows the count without a percentage. ``unit``
    names what `rows` counts (行 for files, 件 for a job's records).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None,
        interval: float = 0.5,
        unit: str = "行",
    ):
        self.label = label
        self.known_total = total is not None
        self.total = max(total or 0, 1)
        self.unit = unit
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self._last = 0.0
        self._printed = False
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        if not self._tty:
            self.interval = max(interval, 5.0)

    def update(self, done: int, rows: int) -> None:
        """Print the line if enough time has passed since the last one."""
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._last < self.interval or (not self._printed and now - self.started < 1.0):
            return
        self._last = now
        self._emit(done, rows, final=False)

    def finish(self, rows: int) -> None:
        """Print the final line (100 %) if any line was shown (quick work needs no bar)."""
        if self.stream is not None and self._printed:
            self._emit(self.total, rows, final=True)

    def _emit(self, done: int, rows: int, *, final: bool) -> None:
        self._printed = True
        elapsed = max(time.monotonic() - self.started, 1e-9)
        pct = f"{min(100, int(done * 100 / self.total)):3d}% " if self.known_total or final else ""
        unit = self.unit
        line = f"{self.label} {pct}{rows:,}{unit} ({rows / elapsed:,.0f}{unit}/秒, {elapsed:.1f}秒)"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
