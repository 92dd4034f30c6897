"""The daily flow in a real browser: log in with password and TOTP code, find a resident by kana
prefix + birth date with a purpose code, open the person page, log out, and press back. Runs Debian's chromium through Playwright
(scripts/test installs it)."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from kenshin.accounts.testing import current_code, make_user
from kenshin.core import clock
from kenshin.core.wareki import to_wareki
from kenshin.demo.city import generate_city
from kenshin.residents import services

# Playwright's sync API runs an event loop in this thread while the browser is open, and
# Django refuses ORM calls from such a thread: all data is set up before the browser starts.

CHROMIUM = os.environ.get("KENSHIN_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "e2e-correct-horse-battery"  # a throwaway test account


def _settled_html(page) -> str:
    """The page's HTML once redirects have finished (back may land on a redirect)."""
    for _ in range(40):
        try:
            page.wait_for_load_state("load")
            return page.content()
        except PlaywrightError:
            page.wait_for_timeout(250)
    raise AssertionError("the page never settled")


@pytest.fixture
def small_city(tmp_path: Path) -> dict:
    with clock.frozen(date(2026, 11, 26)):
        paths = generate_city(
            tmp_path / "feed", residents=300, seed=3, base_date=date(2023, 4, 1),
            end_date=date(2023, 7, 31),
        )  # fmt: skip
        reports = services.import_feed_files(paths, stdout=None, actor="e2e")
    assert all(r.ok for r in reports), [str(e) for r in reports for e in r.errors][:5]
    person = next(services.register_as_of(date(2023, 7, 31)))
    return person


@pytest.mark.django_db(transaction=True)
def test_staff_finds_a_resident_by_kana_prefix_and_birth_date(
    live_server, settings, small_city, tmp_path
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http here
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "kenshin_session", "kenshin_csrf"
    device = make_user("hokenshi", roles=["hokenshi"], password=PASSWORD).totp
    person = small_city
    kana_prefix = person["name_kana"][:2]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="ja-JP")
        page.goto(f"{live_server.url}/residents/")
        expect(page).to_have_url(re.compile(r"/login/"))
        page.get_by_label("利用者ID").fill("hokenshi")
        page.get_by_label("パスワード").fill(PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        expect(page.get_by_role("heading", name="確認コードの入力")).to_be_visible()
        page.get_by_label("確認コード").fill(current_code(device))  # computed, no ORM
        page.get_by_role("button", name="確認").click()

        page.get_by_role("link", name="住民検索").first.click()
        page.get_by_label("利用目的").select_option(label="問合せ対応")  # required (ACL-04)
        page.get_by_label("氏名カナ（前方一致）").fill(kana_prefix)
        page.get_by_label("生年月日").fill(to_wareki(person["birth_date"]))
        page.get_by_role("button", name="検索").click()
        expect(page.get_by_role("heading", name=re.compile("検索結果"))).to_be_visible()
        row = page.get_by_role("row").filter(has_text=person["name"])
        expect(row).to_have_count(1)

        row.get_by_role("link").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(person["name"])
        expect(page.get_by_role("heading", name="異動履歴")).to_be_visible()
        expect(page.get_by_text("利用目的：問合せ対応")).to_be_visible()
        assert person["atena_no"] not in page.url  # no personal data in URLs
        page.screenshot(path=str(tmp_path / "person.png"), full_page=True)

        # Log out; the back button must show nothing personal (no-store: the browser asks the
        # server again and is sent to the login page; SESS-03, DATA-02).
        page.get_by_role("button", name="ログアウト").click()
        expect(page).to_have_url(re.compile(r"/login/"))
        for _ in range(2):  # the person page, then the search results (a POST)
            try:
                page.go_back(wait_until="load")
            except PlaywrightError:  # chromium refuses to resubmit the POST: also nothing shown
                pass
            html = _settled_html(page)
            assert person["name"] not in html
            assert person["name_kana"] not in html
            assert "異動履歴" not in html
        page.goto(f"{live_server.url}/residents/")
        expect(page).to_have_url(re.compile(r"/login/"))
        browser.close()
