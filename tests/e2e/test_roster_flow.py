"""The roster as staff use it, in a real browser at 1366×768: the 対象者数 table, a cell's list
opened with a purpose, and one person's "why (not) eligible" page — with no 宛名番号 in any URL.
Runs Debian's chromium through Playwright (scripts/test installs it)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from kenshin.accounts.testing import make_user
from kenshin.core import clock
from kenshin.demo.city import generate_city
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import services as screening
from tests.e2e.browser import CHROMIUM, LAUNCH_ARGS, PASSWORD, sign_in

ATENA = re.compile(r"\d{10}")


@pytest.fixture
def built(tmp_path: Path) -> dict:
    """A small city with its FY2025 roster (all data before the browser starts: Django refuses
    ORM calls from the thread in which Playwright's sync API runs)."""
    with clock.frozen(date(2026, 11, 26)):
        paths = generate_city(
            tmp_path / "feed", residents=400, seed=5, base_date=date(2025, 4, 1),
            end_date=date(2025, 4, 1),
        )  # fmt: skip
        reports = residents.import_feed_files(paths, stdout=None, actor="e2e")
        assert all(r.ok for r in reports)
        programs.load_shipped()
        report = screening.build_roster(2025)
    assert report.per_method["chest_xray"]["eligible"] > 0
    return {"chest": report.per_method["chest_xray"]}


@pytest.mark.django_db(transaction=True)
def test_staff_open_the_table_a_list_and_one_persons_decisions(
    live_server, settings, built, tmp_path
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http here
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "kenshin_session", "kenshin_csrf"
    device = make_user("jimu", roles=["jimu"], password=PASSWORD).totp

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="ja-JP")
        page.goto(f"{live_server.url}/roster/")
        sign_in(page, "jimu", device)

        page.get_by_role("link", name="対象者名簿").first.click()
        page.goto(f"{live_server.url}/roster/2025/")
        expect(page.get_by_role("heading", level=1)).to_contain_text("対象者数")
        page.screenshot(path=str(tmp_path / "table.png"), full_page=True)
        # The 計 of 胸部エックス線検査 for men leads to that cell's list.
        page.locator('a[href*="/roster/2025/chest_xray/list/?sex=1"]').first.click()
        page.get_by_label("利用目的").select_option(label="対象者確認・抽出")
        page.get_by_role("button", name="一覧を表示").click()
        expect(page.get_by_role("heading", level=2, name=re.compile(r"\d+人"))).to_be_visible()
        links = page.get_by_role("region", name="対象者の一覧").get_by_role("link")
        expect(links.first).to_be_visible()
        links.first.click()
        expect(page.get_by_role("heading", name="検査方法ごとの判定と理由")).to_be_visible()
        expect(page.get_by_text("胸部エックス線検査").first).to_be_visible()
        expect(page.get_by_text("利用目的：対象者確認・抽出")).to_be_visible()
        page.screenshot(path=str(tmp_path / "person.png"), full_page=True)
        assert not ATENA.search(page.url)  # the person is reached by a per-session reference
        browser.close()
