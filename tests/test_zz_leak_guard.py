"""MN-03: no 個人番号 and no resident's name in any log line, URL, error page or page title.

Runs after every other test (tests/plugins/leakguard.py moves it to the end, whatever the file
order, -k or a randomiser) and scans what the plugin captured. Findings are printed masked:
the place and the surrounding text, never the value.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.plugins.leakguard import findings

pytestmark = pytest.mark.leak_guard

# What a whole-suite run must have captured at the least; far below the real counts, so only
# a guard that has stopped capturing (a patch no longer reached) trips them.
MIN_LOG_RECORDS = 5
MIN_URLS = 20
MIN_ERROR_PAGES = 1
MIN_TESTS_BEFORE = 100
SHOW = 50


def test_no_mynumber_or_resident_name_in_logs_urls_or_error_pages(leak_capture) -> None:
    hits = findings(leak_capture)
    if hits:
        listing = "\n".join(hits[:SHOW])
        more = f"\n…ほか {len(hits) - SHOW} 件" if len(hits) > SHOW else ""
        pytest.fail(
            f"個人番号または住民の氏名がログ・URL・エラーページに出ています（{len(hits)} 件）。"
            f"値は伏せて表示しています:\n{listing}{more}",
            pytrace=False,
        )


def test_the_capture_is_not_vacuous_when_the_whole_suite_ran(leak_capture) -> None:
    """A guard that silently captures nothing would pass for ever; on a whole-suite run it must
    have seen logs, URLs, error pages, page titles and names. Run alone (or on part of the
    suite) it checks nothing here: too few tests ran to expect anything."""
    cap = leak_capture
    if not cap.whole_suite or cap.deselected or cap.started < MIN_TESTS_BEFORE:
        pytest.skip("only part of the suite ran; nothing to expect from the capture")
    assert cap.count("log") >= MIN_LOG_RECORDS, cap
    assert cap.count("url") >= MIN_URLS, cap
    assert cap.count("error page") >= MIN_ERROR_PAGES, cap
    assert cap.count("page title") >= MIN_URLS, cap
    assert cap.names_from_run > 0, "no resident name recorded while the suite ran"


PLANTED = textwrap.dedent(
    """
    import logging

    import pytest


    @pytest.mark.django_db
    def test_plants_leaks(client):
        # a name from docs/formats/samples and a valid 個人番号, in a log line and a URL
        logging.getLogger("kenshin.planted").warning("検索 %s %s", "森本　茂", "9832-0567-3214")
        client.get("/residents/?kana=モリモト%E3%80%80シゲル")


    @pytest.mark.django_db
    @pytest.mark.leak_expected("exempted on purpose: must not be reported")
    def test_plants_an_exempted_leak(client):
        logging.getLogger("kenshin.planted").warning("exempt 983205673214")
    """
)


def test_the_guard_catches_a_planted_leak_and_prints_it_masked(tmp_path: Path) -> None:
    """The whole chain in a separate pytest run: capture → scan → a failing guard whose
    message names the place but shows neither the name nor the number."""
    root = Path(__file__).resolve().parent.parent
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED, encoding="utf-8")
    # its own in-memory SQLite database, never the outer run's (PostgreSQL or a file)
    skip = ("DATABASE_URL", "PYTEST_ADDOPTS", "KENSHIN_TEST_SQLITE_FILE")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    guard = (
        "tests/test_zz_leak_guard.py::test_no_mynumber_or_resident_name_in_logs_urls_or_error_pages"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(root),
         "-c", str(root / "pyproject.toml"), str(planted), guard],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    assert "2 passed" in out and "1 failed" in out, out[-3000:]
    verdict = out.split("個人番号または住民の氏名")[-1]  # the guard's message
    assert "個人番号 in log [kenshin.planted] @ ::test_plants_leaks" in verdict
    assert "氏名 in log [kenshin.planted] @ ::test_plants_leaks" in verdict
    assert "氏名 in url [GET] @ ::test_plants_leaks" in verdict
    assert "test_plants_an_exempted_leak" not in verdict
    for value in ("森本", "モリモト", "シゲル", "9832-0567-3214", "983205673214", "%E3%80%80"):
        assert value not in verdict, "the guard printed a planted value in clear"
