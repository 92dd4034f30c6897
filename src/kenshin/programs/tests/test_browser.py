"""The yearly flow in a real browser at 1366×768: open 検診事業 from the menu, read a year,
adjust one method by keyboard with a fresh code, and see the new version with its changes.
Runs Debian's chromium through Playwright, like tests/e2e (scripts/test installs it)."""

from __future__ import annotations

import os
import re
import time

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect, sync_playwright

from kenshin.accounts.testing import current_code, make_user
from kenshin.programs import services
from kenshin.programs.tests.conftest import SYSTEM

CHROMIUM = os.environ.get("KENSHIN_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
               "--disable-background-networking", "--disable-component-update"]  # fmt: skip
PASSWORD = "e2e-correct-horse-battery"  # a throwaway test account


@pytest.fixture(scope="session", autouse=True)
def _plain_http_live_server():
    """As in tests/e2e/conftest.py: the live server has no TLS, so no redirect to https —
    set before ``live_server`` builds its middleware (it reads the setting once)."""
    from django.conf import settings

    saved = settings.SECURE_SSL_REDIRECT
    settings.SECURE_SSL_REDIRECT = False
    yield
    settings.SECURE_SSL_REDIRECT = saved


def _next_code(device) -> str:
    """The code the app will show in the next 30 s step: the sign-in used this step's code,
    and a TOTP step is accepted once (django-otp accepts one step of drift)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + device.step
    return f"{totp.token():0{device.digits}d}"


def _fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.django_db(transaction=True)
def test_staff_adjust_a_method_by_keyboard_and_see_the_new_version(live_server, settings, tmp_path):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http here
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "kenshin_session", "kenshin_csrf"
    services.load_shipped(SYSTEM)
    device = make_user("kacho", roles=["kacho"], password=PASSWORD).totp
    # All ORM work before the browser starts (Playwright's loop runs in this thread).
    login_code = current_code(device)
    step_up_code = _next_code(device)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="ja-JP")
        page.goto(f"{live_server.url}/programs/")
        page.get_by_label("利用者ID").fill("kacho")
        page.get_by_label("パスワード").fill(PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        page.get_by_label("確認コード").fill(login_code)
        page.get_by_role("button", name="確認").click()

        page.get_by_role("navigation", name="メインメニュー").get_by_role(
            "link", name="検診事業"
        ).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("検診事業の定義")
        assert _fits_the_screen(page)
        page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
        page.get_by_role("link", name="令和7年度（2025年度）").first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("令和7年度（2025年度）")
        expect(page.get_by_text("上限年齢 — → 29歳")).to_be_visible()
        assert _fits_the_screen(page)
        page.screenshot(path=str(tmp_path / "year.png"), full_page=True)

        page.get_by_role("link", name="子宮頸部細胞診を調整").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("子宮頸部細胞診の調整")
        assert _fits_the_screen(page)
        # Keyboard only: the fields come in reading order and Enter submits.
        page.get_by_label("上限年齢").focus()
        page.keyboard.press("Control+A")
        page.keyboard.type("34")
        page.get_by_label("変更理由").focus()
        page.keyboard.type("要綱改正（30〜34歳は細胞診も選べる）")
        page.keyboard.press("Tab")
        page.keyboard.type(step_up_code)
        page.screenshot(path=str(tmp_path / "adjust.png"), full_page=True)
        page.keyboard.press("Enter")

        expect(page.get_by_text("2025年度の第2版として保存しました")).to_be_visible()
        expect(page.get_by_text("上限年齢 29歳 → 34歳")).to_be_visible()
        assert re.search(r"/programs/2025/$", page.url)
        page.screenshot(path=str(tmp_path / "saved.png"), full_page=True)
        browser.close()
    assert services.catalogue(2025).method("cytology").max_age == 34
