"""Keying a batch of 20 paper 受診票 as staff do, in a real browser at 1366×768: a new batch, each
form found by 受診券番号 or by kana + 生年月日, the person confirmed on screen, the result chosen
from the method's vocabulary, the next form — then the ledger of a 要精検 person shows the exam,
its result and the open 精密検査. Runs Debian's chromium through Playwright (scripts/test)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from kenshin.accounts.testing import make_user
from kenshin.core import audit, clock
from kenshin.core.fiscal import fy_end_age
from kenshin.demo.city import generate_city
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import vouchers
from kenshin.screening.models import Exam, FollowUpCase
from tests.e2e.browser import CHROMIUM, LAUNCH_ARGS, PASSWORD, sign_in

ATENA = re.compile(r"\d{10}")
FORMS = 20
EXAM_DAY = "令和8年11月2日"  # 2026-11-02, before the frozen today of the page


@pytest.fixture
def city(tmp_path: Path) -> list[dict]:
    """A small city; twenty people of 40+ with unique kana + birth date, half with a voucher."""
    paths = generate_city(tmp_path / "feed", residents=400, seed=7, base_date=date(2026, 4, 1),
                          end_date=date(2026, 4, 1))  # fmt: skip
    assert all(r.ok for r in residents.import_feed_files(paths, stdout=None, actor="e2e"))
    programs.load_shipped()
    people = [p for p in residents.register_as_of(date(2026, 4, 1))
              if fy_end_age(p["birth_date"], 2026) >= 40]  # fmt: skip
    seen: dict[tuple[str, date], int] = {}
    for p in people:
        seen[(p["name_kana"], p["birth_date"])] = seen.get((p["name_kana"], p["birth_date"]), 0) + 1
    chosen = [p for p in people if seen[(p["name_kana"], p["birth_date"])] == 1][:FORMS]
    assert len(chosen) == FORMS
    issued = vouchers.issue_vouchers(audit.Actor(None, "e2e"), 2026,
                                     [p["atena_no"] for p in chosen[::2]])  # fmt: skip
    for i, p in enumerate(chosen):
        p["voucher"] = issued.get(p["atena_no"], "")
        p["positive"] = i % 5 == 0  # every fifth form has a positive day
    return chosen


@pytest.mark.django_db(transaction=True)
def test_staff_key_twenty_paper_forms_and_read_the_ledger(live_server, settings, city, tmp_path):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http here
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "kenshin_session", "kenshin_csrf"
    device = make_user("jimu", roles=["jimu"], password=PASSWORD).totp

    with clock.frozen(date(2026, 11, 26)), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="ja-JP")
        page.goto(f"{live_server.url}/exams/")
        sign_in(page, "jimu", device)

        page.get_by_role("link", name="検診結果・精検").first.click()
        page.get_by_role("link", name="受診票の束を作って入力する").click()
        page.get_by_label("束の名前").fill("11月分 e2e クリニック 大腸")
        page.get_by_label("検査方法").select_option("fecal_occult_blood")
        page.get_by_label("医療機関コード（10桁）").fill("3410000001")
        page.get_by_label("個別").check()
        page.get_by_role("button", name="束を作って入力を始める").click()

        for n, person in enumerate(city, start=1):
            expect(page.get_by_role("heading", name=f"受診票 No.{n}：受診者を探す")).to_be_visible()
            if person["voucher"]:
                page.get_by_label("受診券・クーポン番号").fill(person["voucher"])
            else:
                page.get_by_label("氏名カナ（先頭から）").fill(person["name_kana"])
                page.get_by_label("生年月日").fill(person["birth_date"].isoformat())
            page.keyboard.press("Enter")  # the number field has the focus: Enter searches
            card = page.locator("#person-card")
            expect(card).to_contain_text(person["name"])  # identity shown before saving
            expect(card).to_contain_text(person["birth_date"].isoformat())
            if n == 1:
                page.screenshot(path=str(tmp_path / "confirm.png"), full_page=True)
            page.keyboard.type(EXAM_DAY)  # the 受診日 field has the focus after the search
            page.get_by_label("便潜血 1日目").select_option(label="陰性")
            day2 = "陽性" if person["positive"] else "陰性"
            page.get_by_label("便潜血 2日目").select_option(label=day2)
            page.get_by_role("button", name="登録して次へ").click()
            expect(page.locator(".messages")).to_contain_text(f"No.{n} を登録しました")
        expect(
            page.get_by_role("heading", name=f"受診票 No.{FORMS + 1}：受診者を探す")
        ).to_be_visible()
        page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)

        first = city[0]  # positive
        page.get_by_role("link", name=first["name"]).first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(first["name"])
        expect(page.get_by_text("利用目的：結果登録")).to_be_visible()
        exam = page.locator(".ledger-exam").first
        expect(exam).to_contain_text("2026-11-02")
        expect(exam).to_contain_text("便潜血 2日目：陽性")
        expect(exam).to_contain_text("要精検")
        expect(exam).to_contain_text("精密検査：精検未把握")
        page.screenshot(path=str(tmp_path / "ledger.png"), full_page=True)
        assert not ATENA.search(page.url)
        browser.close()

    recorded = Exam.objects.filter(recorded_at__isnull=False, method="fecal_occult_blood")
    assert recorded.count() == FORMS
    assert {e.atena_no for e in recorded} == {p["atena_no"] for p in city}
    assert set(recorded.filter(needs_seiken=True).values_list("atena_no", flat=True)) == {
        p["atena_no"] for p in city if p["positive"]
    }
    assert FollowUpCase.objects.count() == sum(p["positive"] for p in city)
    with_voucher = {e.atena_no: e.voucher_no for e in recorded if e.voucher_no}
    assert with_voucher == {p["atena_no"]: p["voucher"] for p in city if p["voucher"]}
