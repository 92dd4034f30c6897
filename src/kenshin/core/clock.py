"""The one place the application asks "what day is it?".

Why this module exists
----------------------
* **The business date is the Japanese date.**  Fiscal years, ages and
  deadlines are all defined on the local calendar in Japan.  Servers run in
  UTC, so ``date.today()`` (or ``timezone.now().date()``) is *yesterday* in
  Tokyo between 00:00 and 09:00 JST.  Here :func:`today` is always the date
  in Asia/Tokyo, fixed in code rather than taken from ``settings.TIME_ZONE``
  or from a per-request activated time zone, because the legal calendar does
  not change with the user's browser.
* **The date must be movable.**  Demos, training environments and year-end
  rehearsals need to run "as if" it were another day (e.g. the first day of
  the next fiscal year).  Set ``KENSHIN_TODAY=YYYY-MM-DD`` to pin the date;
  :func:`now` then returns that date combined with the current local time of
  day, so ordering of events within the day is preserved.  The variable is
  read at every call (a dictionary lookup) so tests can ``monkeypatch`` it.
* **Tests must not depend on the real date.**  :class:`frozen` overrides both
  functions, as a context manager or as a decorator.  The override is
  process-wide (module level), which is what a test wants; it is guarded by
  a lock so that concurrent enter/exit cannot corrupt it.

Precedence: ``frozen(...)`` > ``KENSHIN_TODAY`` > the real clock.

All code should call ``clock.today()`` / ``clock.now()`` instead of
``date.today()``, ``datetime.now()`` or ``timezone.now()``.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import ContextDecorator
from datetime import date, datetime
from types import TracebackType
from zoneinfo import ZoneInfo

from django.utils import timezone

__all__ = ["ENV_VAR", "JST", "frozen", "now", "today"]

#: The legal calendar's time zone.  Japan has no daylight saving time.
JST = ZoneInfo("Asia/Tokyo")

#: Environment variable that pins :func:`today` (format ``YYYY-MM-DD``).
ENV_VAR = "KENSHIN_TODAY"

_ENV_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_lock = threading.Lock()
# Stack of (token, override); the last entry wins.  A datetime override is
# stored already converted to JST; a date override keeps the real time of day.
_overrides: list[tuple[object, date]] = []
# Cache of the last parsed KENSHIN_TODAY value: (raw string, parsed date).
_env_cache: tuple[str, date] | None = None


def _env_today() -> date | None:
    """Return the date pinned by ``KENSHIN_TODAY``, or ``None`` if unset/empty."""
    global _env_cache
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    cached = _env_cache
    if cached is not None and cached[0] == raw:
        return cached[1]
    value = raw.strip()
    try:
        if not _ENV_FORMAT.fullmatch(value):
            raise ValueError(value)
        pinned = date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"環境変数 {ENV_VAR} の値「{raw}」は YYYY-MM-DD 形式の正しい日付ではありません"
        ) from None
    _env_cache = (raw, pinned)
    return pinned


def _real_now() -> datetime:
    return timezone.localtime(timezone.now(), JST)


def now() -> datetime:
    """Return the current moment as an aware datetime in Asia/Tokyo.

    Under ``frozen(datetime)`` this is that instant; under ``frozen(date)`` or
    ``KENSHIN_TODAY`` it is the pinned date at the current local time of day.
    """
    if _overrides:
        pinned = _overrides[-1][1]
        if isinstance(pinned, datetime):
            return pinned
        return datetime.combine(pinned, _real_now().timetz())
    env = _env_today()
    real = _real_now()
    if env is not None:
        return datetime.combine(env, real.timetz())
    return real


def today() -> date:
    """Return the current *Japanese* calendar date (never the UTC date).

    Equivalent to ``timezone.localdate()`` in Asia/Tokyo unless pinned by
    :class:`frozen` or ``KENSHIN_TODAY``.
    """
    if _overrides:
        pinned = _overrides[-1][1]
        if isinstance(pinned, datetime):
            return pinned.date()
        return pinned
    env = _env_today()
    if env is not None:
        return env
    return timezone.localdate(timezone=JST)


class frozen(ContextDecorator):
    """Pin :func:`today` and :func:`now` for the duration of a block or test.

    ``frozen(date(2025, 4, 1))`` pins the date (``now()`` keeps the real time
    of day, as with ``KENSHIN_TODAY``); ``frozen(datetime(...))`` pins the
    exact instant — a naive datetime is taken as Tokyo local time, an aware
    one is converted to Tokyo, so ``frozen(datetime(2026, 11, 26, 16, tzinfo=UTC))``
    makes ``today()`` return 2026-11-27.

    Usable as ``with frozen(d):`` or as ``@frozen(d)`` on a test function.
    Nested uses stack; the innermost wins.  The override is visible to all
    threads (tests that start worker threads see the frozen date too).
    """

    def __init__(self, when: date | datetime) -> None:
        if isinstance(when, datetime):
            if timezone.is_naive(when):
                when = when.replace(tzinfo=JST)
            else:
                when = when.astimezone(JST)
        elif not isinstance(when, date):
            raise TypeError(f"frozen() には date か datetime を渡してください: {when!r}")
        self.when: date = when
        self._tokens: list[object] = []

    def __enter__(self) -> frozen:
        token = object()
        with _lock:
            _overrides.append((token, self.when))
            self._tokens.append(token)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _lock:
            token = self._tokens.pop()
            for i in range(len(_overrides) - 1, -1, -1):
                if _overrides[i][0] is token:
                    del _overrides[i]
                    break
