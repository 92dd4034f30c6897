"""The business clock: Japanese date, KENSHIN_TODAY and frozen()."""

import threading
from datetime import UTC, date, datetime, time

import pytest
from django.utils import timezone

from kenshin.core import clock

TOKYO_NEXT_DAY_INSTANT = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 2026-11-27 01:00 JST


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(clock.ENV_VAR, raising=False)


def test_today_is_the_tokyo_date_when_utc_is_still_the_previous_day(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: TOKYO_NEXT_DAY_INSTANT)
    assert clock.today() == date(2026, 11, 27)
    assert clock.now() == TOKYO_NEXT_DAY_INSTANT
    assert clock.now().utcoffset().total_seconds() == 9 * 3600


def test_frozen_aware_utc_instant_gives_tokyo_date():
    with clock.frozen(TOKYO_NEXT_DAY_INSTANT):
        assert clock.today() == date(2026, 11, 27)
        assert clock.now() == TOKYO_NEXT_DAY_INSTANT
        assert clock.now().tzinfo == clock.JST


def test_frozen_naive_datetime_is_tokyo_local_time():
    with clock.frozen(datetime(2025, 3, 31, 23, 59)):
        assert clock.now() == datetime(2025, 3, 31, 23, 59, tzinfo=clock.JST)
        assert clock.today() == date(2025, 3, 31)


def test_frozen_date_pins_today_and_keeps_time_of_day(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: TOKYO_NEXT_DAY_INSTANT)
    with clock.frozen(date(2025, 4, 1)):
        assert clock.today() == date(2025, 4, 1)
        assert clock.now() == datetime(2025, 4, 1, 1, 0, tzinfo=clock.JST)


def test_frozen_restores_previous_value_and_nests():
    outer, inner = date(2025, 4, 1), date(2030, 1, 1)
    with clock.frozen(outer):
        with clock.frozen(inner):
            assert clock.today() == inner
        assert clock.today() == outer
    with clock.frozen(outer):
        pass
    assert clock._overrides == []


def test_frozen_restores_after_exception():
    with pytest.raises(RuntimeError), clock.frozen(date(2025, 4, 1)):
        raise RuntimeError
    assert clock._overrides == []


@clock.frozen(date(2024, 2, 29))
def test_frozen_works_as_decorator():
    assert clock.today() == date(2024, 2, 29)


def test_frozen_is_visible_from_other_threads():
    seen = []
    with clock.frozen(date(2025, 4, 1)):
        worker = threading.Thread(target=lambda: seen.append(clock.today()))
        worker.start()
        worker.join()
    assert seen == [date(2025, 4, 1)]


def test_frozen_rejects_non_dates():
    with pytest.raises(TypeError, match="date か datetime"):
        clock.frozen("2025-04-01")


def test_env_var_pins_today_and_now_keeps_time_of_day(monkeypatch):
    monkeypatch.setenv(clock.ENV_VAR, "2025-04-01")
    monkeypatch.setattr(timezone, "now", lambda: TOKYO_NEXT_DAY_INSTANT)
    assert clock.today() == date(2025, 4, 1)
    assert clock.now() == datetime.combine(date(2025, 4, 1), time(1, 0), tzinfo=clock.JST)


def test_env_var_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv(clock.ENV_VAR, "2025-04-01")
    assert clock.today() == date(2025, 4, 1)
    monkeypatch.setenv(clock.ENV_VAR, "2026-03-31")
    assert clock.today() == date(2026, 3, 31)


def test_frozen_takes_precedence_over_env_var(monkeypatch):
    monkeypatch.setenv(clock.ENV_VAR, "2025-04-01")
    with clock.frozen(date(2030, 1, 1)):
        assert clock.today() == date(2030, 1, 1)


def test_empty_env_var_means_real_clock(monkeypatch):
    monkeypatch.setenv(clock.ENV_VAR, "")
    monkeypatch.setattr(timezone, "now", lambda: TOKYO_NEXT_DAY_INSTANT)
    assert clock.today() == date(2026, 11, 27)


@pytest.mark.parametrize("value", ["2025-02-30", "20250401", "2025/04/01", "tomorrow"])
def test_invalid_env_var_raises_japanese_error(monkeypatch, value):
    monkeypatch.setenv(clock.ENV_VAR, value)
    with pytest.raises(ValueError, match=f"環境変数 KENSHIN_TODAY の値「{value}」は"):
        clock.today()
