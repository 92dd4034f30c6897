"""A clinic's result file taken in as staff do, in a real browser at 1366×768 (issue 7).

A 事務 user uploads a CP932 file of twenty 便潜血 results of which three are wrong (a date that
does not exist, a value outside the vocabulary, a row shifted by a comma in the kana name),
reads the preview and its エラー tab, downloads the error file, corrects those three rows as the
clinic would (keeping the added 取込エラー columns) and uploads them as a second file, then
commits the first with 「正しい行だけ」 and the second with 「すべての行」 — and the database holds
the twenty exams, once each. Runs Debian's chromium through Playwright (scripts/test).

The jobs take the production path: queued in the jobs database (not pytest's inline backend),
the page shows 待機中 and polls (htmx, every second), ``kenshin db_worker`` runs the queue, and
the polled block turns 完了 with the bar at 100% without a reload. The worker runs in batch mode
in a thread, started just after a poll has been answered: on the in-memory SQLite test database
(shared cache) a read by the live server while the job writes would fail at once with "table
locked" instead of waiting, and the next poll is a second away (the job takes a tenth of that).
"""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.db.models import Count
from django_tasks_db.management.commands.db_worker import Worker
from playwright.sync_api import expect, sync_playwright

from kenshin.accounts.testing import make_user
from kenshin.core import audit, clock
from kenshin.core.fiscal import fy_end_age
from kenshin.demo.city import generate_city
from kenshin.intake.error_file import EXTRA
from kenshin.intake.layout import COLUMNS, header_row
from kenshin.intake.tests.helpers import INSTITUTION, csv_bytes
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import vouchers
from kenshin.screening.models import Exam
from tests.e2e.browser import CHROMIUM, LAUNCH_ARGS, PASSWORD, sign_in

ATENA = re.compile(r"\d{10}")
PEOPLE = 20
TODAY = date(2026, 11, 26)
METHOD = "便潜血検査（免疫法・2日法）"
WIDTH = len(COLUMNS)  # 33 columns in the Kenshin layout
# The three wrong rows (index into the file's data rows; the header is row 1 for staff).
BAD_DATE, BAD_VALUE, SHIFTED = 4, 11, 17
FIRST_FILE, SECOND_FILE = "kekka_2026-11_clinic.csv", "kekka_2026-11_clinic_teisei.csv"


@pytest.fixture
def city(tmp_path: Path) -> list[dict]:
    """A small city; twenty people aged 40+ in FY2026, each with a FY2026 受診券."""
    paths = generate_city(tmp_path / "feed", residents=400, seed=7, base_date=date(2026, 4, 1),
                          end_date=date(2026, 4, 1))  # fmt: skip
    assert all(r.ok for r in residents.import_feed_files(paths, stdout=None, actor="e2e"))
    programs.load_shipped()
    people = [p for p in residents.register_as_of(date(2026, 4, 1))
              if fy_end_age(p["birth_date"], 2026) >= 40]  # fmt: skip
    chosen = people[:PEOPLE]
    # The shifted row splits the kana name at its space, as a clinic's export does with a comma.
    spaced = next(i for i, p in enumerate(chosen) if re.search(r"[ 　]", p["name_kana"]))
    chosen[SHIFTED], chosen[spaced] = chosen[spaced], chosen[SHIFTED]
    issued = vouchers.issue_vouchers(audit.Actor(None, "e2e"), 2026,
                                     [p["atena_no"] for p in chosen])  # fmt: skip
    for i, p in enumerate(chosen):
        p["voucher"] = issued[p["atena_no"]]
        p["exam_date"] = date(2026, 6, 1) + timedelta(days=7 * i)  # June–October 2026
    return chosen


def result_row(person: dict, index: int) -> dict[str, str]:
    """The row a clinic's system writes for one person (layout keys → text)."""
    return {
        "voucher_no": person["voucher"],
        "name_kana": person["name_kana"],
        "birth_date": person["birth_date"].isoformat(),
        "sex": str(person["sex"]),
        "exam_date": person["exam_date"].isoformat(),
        "institution_code": INSTITUTION,
        "setting": "1",
        "method": METHOD,
        "day1": "陰性",
        "day2": "陽性" if index % 6 == 0 else "陰性",
    }


def clinic_file(city: list[dict]) -> bytes:
    """Twenty rows in CP932, three of them wrong."""
    rows = [result_row(p, i) for i, p in enumerate(city)]
    rows[BAD_DATE]["exam_date"] = "2026-06-31"  # June has 30 days
    rows[BAD_VALUE]["day2"] = "(+)"  # the clinic's own sign, not the vocabulary's 陽性
    data = csv_bytes(rows, encoding="cp932").decode("cp932").split("\r\n")
    # A comma inside the kana name: the row has one cell more than the header.
    line = data[SHIFTED + 1].split(",")
    line[2:3] = re.split(r"[ 　]", line[2], maxsplit=1)
    data[SHIFTED + 1] = ",".join(line)
    return "\r\n".join(data).encode("cp932")


def corrected_file(error_csv: str) -> bytes:
    """What the clinic sends back: the error file's rows put right, extra columns left on."""
    lines = list(csv.reader(io.StringIO(error_csv)))
    header, rows = lines[0], lines[1:]
    at = {h: i for i, h in enumerate(header)}
    fixed = []
    for cells in rows:
        layout, extra = cells[:WIDTH], cells[WIDTH:]
        row_no = int(extra[0])
        if row_no == BAD_DATE + 2:
            layout[at["受診日"]] = "2026-06-30"
        elif row_no == BAD_VALUE + 2:
            layout[at["便潜血2日目"]] = "陽性"
        elif row_no == SHIFTED + 2:  # join the kana name again; the cut-off last cell was blank
            kana = at["氏名カナ"]
            layout = [*layout[:kana], layout[kana] + "　" + layout[kana + 1],
                      *layout[kana + 2:], ""]  # fmt: skip
        fixed.append(layout + extra)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *fixed])
    return out.getvalue().encode("cp932")


def job_title(page, step: str, file_name: str) -> str:
    """The job's title names the batch by its number (the file's name is shown on the page,
    not carried into the job records)."""
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text(file_name)
    number = re.search(r"取込 (\d+)", heading.inner_text()).group(1)
    return f"取込 {number} の{step}"


def expect_finished(page, title: str) -> None:
    """The job's block: its title, 完了, and the bar full (the count at 100% where shown)."""
    block = page.locator(".job-progress")
    expect(block).to_contain_text(title)
    expect(block.locator(".job-progress__status")).to_have_text("完了")
    bar = block.locator("progress.job-progress__bar")
    expect(bar).to_have_text("100%")
    assert bar.evaluate("el => el.value === el.max && el.position === 1")


failures: list[BaseException] = []


def run_worker() -> None:
    """What ``kenshin db_worker --batch`` runs: the queue's tasks, then stop. In a thread of
    its own (Playwright's event loop in the test's thread makes Django refuse the ORM there),
    so without the command's signal handlers, which only the main thread may install."""
    try:
        Worker(queue_names=["default"], interval=0.1, batch=True, backend_name="default",
               startup_delay=False, max_tasks=None, worker_id="e2e",
               excluded_queue_names=[]).run()  # fmt: skip
    except BaseException as exc:  # reported by the test's thread
        failures.append(exc)
    finally:
        connections.close_all()


def work_the_queue(page) -> None:
    """The job waits in the queue and the block polls; the worker runs it; the block, polled,
    shows it finished. Then 最新の状態を表示, as the page asks, for the rest of the page."""
    block = page.locator(".job-progress")
    expect(block.locator(".job-progress__status")).to_have_text("待機中")
    expect(block).to_contain_text("開始を待っています")
    expect(block).to_have_attribute("aria-busy", "true")
    with page.expect_response(lambda r: "/jobs/" in r.url and r.status == 200):
        pass  # a poll has been answered: the live server is idle for a second
    worker = threading.Thread(target=run_worker)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and not failures, failures
    expect(block.locator(".job-progress__status")).to_have_text("完了")
    expect(block.locator("progress.job-progress__bar")).to_have_text("100%")
    expect(block).to_have_attribute("aria-busy", "false")
    page.get_by_role("link", name="最新の状態を表示").click()


def open_batch(page, file_name: str) -> None:
    page.get_by_role("navigation", name="メインメニュー").get_by_role(
        "link", name="結果ファイル取込"
    ).click()
    page.get_by_role("row").filter(has_text=file_name).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(file_name)


def upload(page, path: Path) -> None:
    page.get_by_role("navigation", name="メインメニュー").get_by_role(
        "link", name="結果ファイル取込"
    ).click()
    expect(page.get_by_role("heading", name="検診結果ファイルの取込")).to_be_visible()
    page.get_by_label("検診結果ファイル").set_input_files(str(path))
    page.get_by_label("契約年度（西暦）").fill("2026")
    page.get_by_role("button", name="受け付けて確認する").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(path.name)


def tab(page, label: str):
    return page.get_by_role("navigation", name="行の種類").get_by_role("link", name=label)


@pytest.mark.django_db(transaction=True)
def test_staff_take_in_a_file_correct_its_errors_and_commit(live_server, settings, city,
                                                            tmp_path):  # fmt: skip
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http here
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "kenshin_session", "kenshin_csrf"
    settings.INTAKE_DIR = tmp_path / "intake"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}  # queued
    device = make_user("jimu", roles=["jimu"], password=PASSWORD).totp
    first = tmp_path / FIRST_FILE
    first.write_bytes(clinic_file(city))
    assert first.read_bytes().decode("cp932").count("\r\n") == 1 + PEOPLE  # header + 20 rows
    urls: list[str] = []

    with clock.frozen(TODAY), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP",
                                      accept_downloads=True)  # fmt: skip
        page = context.new_page()
        page.on("framenavigated", lambda frame: urls.append(frame.url))
        page.on("request", lambda request: urls.append(request.url))
        page.goto(f"{live_server.url}/")
        sign_in(page, "jimu", device)

        # 1. Upload: the 確認 job is queued, then run by the worker.
        upload(page, first)
        expect(page.locator("#batch-state")).to_have_text("受付")
        work_the_queue(page)
        expect(page.locator("#batch-state")).to_have_text("確認済み（確定待ち）")
        expect_finished(page, job_title(page, "確認", FIRST_FILE))
        expect(page.locator(".job-progress__message")).to_contain_text(
            "確認が終わりました。20 行のうち 新規 17、更新 0、変更なし 0、エラー 3、照合保留 0。"
        )
        page.screenshot(path=str(tmp_path / "preview.png"), full_page=True)

        # 2. The preview: counts per kind, the エラー tab first, each error where it is.
        expect(tab(page, "エラー")).to_have_text("エラー 3")
        expect(tab(page, "新規")).to_have_text("新規 17")
        expect(tab(page, "照合保留")).to_have_text("照合保留 0")
        expect(tab(page, "エラー")).to_have_attribute("aria-current", "page")
        rows = page.locator("#rows tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text(f"{BAD_DATE + 2}")
        expect(rows.nth(0).locator(".problem")).to_have_text(
            "受診日 「2026-06-31」は存在しない日付です"
        )
        expect(rows.nth(1).locator("td").first).to_have_text(f"{BAD_VALUE + 2}")
        expect(rows.nth(1)).to_contain_text("便潜血検査（免疫法・2日法）")
        expect(rows.nth(1).locator(".problem")).to_contain_text(
            "便潜血2日目「(+)」 便潜血2日目に使えない値です"
        )
        expect(rows.nth(2).locator("td").first).to_have_text(f"{SHIFTED + 2}")
        expect(rows.nth(2).locator(".problem")).to_contain_text(
            f"列の数が見出しと違います（見出し {WIDTH} 列、この行 {WIDTH + 1} 列）"
        )
        for i, row_no in enumerate((BAD_DATE + 2, BAD_VALUE + 2, SHIFTED + 2)):
            expect(rows.nth(i).locator("td").first).to_have_text(str(row_no))
            expect(rows.nth(i).locator("td").nth(2)).to_have_text("エラー")
        tab(page, "新規").click()
        expect(page.locator("#rows tbody tr")).to_have_count(17)
        tab(page, "エラー").click()

        # 3. The error file, in Shift_JIS for Excel.
        page.get_by_label("文字コード").select_option(label="Shift_JIS（CP932）")
        with page.expect_download() as info:
            page.get_by_role("button", name="エラーファイルをダウンロード").click()
        download = info.value
        assert download.suggested_filename.endswith("-errors.csv")
        error_csv = Path(download.path()).read_bytes().decode("cp932")
        lines = list(csv.reader(io.StringIO(error_csv)))
        assert lines[0] == [*header_row(), *EXTRA]
        assert [line[WIDTH] for line in lines[1:]] == [str(BAD_DATE + 2), str(BAD_VALUE + 2),
                                                        str(SHIFTED + 2)]  # fmt: skip
        by_row = {line[WIDTH]: dict(zip(lines[0], line, strict=True)) for line in lines[1:]}
        bad_date = by_row[str(BAD_DATE + 2)]
        assert bad_date["受診券番号"] == city[BAD_DATE]["voucher"]
        assert (bad_date["取込エラー 状態"], bad_date["取込エラー 列"]) == ("エラー", "受診日")
        assert bad_date["取込エラー 値"] == "2026-06-31"
        assert bad_date["取込エラー 内容"] == "「2026-06-31」は存在しない日付です"
        bad_value = by_row[str(BAD_VALUE + 2)]
        assert (bad_value["取込エラー 列"], bad_value["取込エラー 値"]) == ("便潜血2日目", "(+)")
        assert bad_value["取込エラー 内容"].startswith("便潜血2日目に使えない値です")
        shifted = by_row[str(SHIFTED + 2)]
        assert (
            shifted["取込エラー 列"] == ""
            and "列の数が見出しと違います" in shifted["取込エラー 内容"]
        )
        assert shifted["受診券番号"] == city[SHIFTED]["voucher"]

        # 4. The clinic's corrected file, uploaded as a new batch: three new rows, no errors.
        second = tmp_path / SECOND_FILE
        second.write_bytes(corrected_file(error_csv))
        upload(page, second)
        work_the_queue(page)
        expect(page.locator("#batch-state")).to_have_text("確認済み（確定待ち）")
        expect_finished(page, job_title(page, "確認", SECOND_FILE))
        expect(tab(page, "新規")).to_have_text("新規 3")
        expect(tab(page, "エラー")).to_have_text("エラー 0")
        expect(tab(page, "照合保留")).to_have_text("照合保留 0")
        expect(page.locator("#batch-message")).to_contain_text("読まなかった列: 取込エラー 行")
        expect(page.get_by_role("button", name="エラーファイルをダウンロード")).to_have_count(0)
        page.screenshot(path=str(tmp_path / "corrected.png"), full_page=True)

        # 5. Commit the first file with 「正しい行だけ」: 17 exams; the three stay out.
        open_batch(page, FIRST_FILE)
        page.get_by_role("radio", name=re.compile("正しい行だけ")).check()
        page.get_by_role("button", name="確定する").click()
        expect(page.get_by_role("button", name="確定する")).to_have_count(0)  # no second commit
        work_the_queue(page)
        expect(page.locator("#batch-state")).to_have_text("確定済み")
        expect_finished(page, job_title(page, "確定", FIRST_FILE))
        expect(page.locator(".job-progress__count")).to_contain_text("17 / 17 件（100%）")
        expect(page.locator(".job-progress__message")).to_contain_text(
            "確定しました。登録 17 件、訂正 0 件、取り込まなかった行 3 行。"
        )
        expect(page.get_by_role("button", name="確定する")).to_have_count(0)

        # 6. Commit the corrected file with 「すべての行」.
        open_batch(page, SECOND_FILE)
        page.get_by_role("radio", name=re.compile("すべての行")).check()
        page.get_by_role("button", name="確定する").click()
        work_the_queue(page)
        expect(page.locator("#batch-state")).to_have_text("確定済み")
        expect_finished(page, job_title(page, "確定", SECOND_FILE))
        expect(page.locator(".job-progress__count")).to_contain_text("3 / 3 件（100%）")
        expect(page.locator(".job-progress__message")).to_contain_text(
            "確定しました。登録 3 件、訂正 0 件、取り込まなかった行 0 行。"
        )
        page.screenshot(path=str(tmp_path / "committed.png"), full_page=True)

        # The list of batches: both committed.
        page.get_by_role("navigation", name="メインメニュー").get_by_role(
            "link", name="結果ファイル取込"
        ).click()
        for name in (FIRST_FILE, SECOND_FILE):
            expect(page.get_by_role("row").filter(has_text=name)).to_contain_text("確定済み")
        browser.close()

    assert urls and not [u for u in urls if ATENA.search(u)]
    atena_nos = {p["atena_no"] for p in city}
    exams = Exam.objects.filter(atena_no__in=atena_nos, method="fecal_occult_blood")
    assert exams.count() == PEOPLE
    assert set(exams.values_list("atena_no", flat=True)) == atena_nos
    assert not exams.values("atena_no", "exam_date").annotate(n=Count("pk")).filter(n__gt=1)
    on_record = {e.atena_no: e for e in exams}
    assert on_record[city[BAD_DATE]["atena_no"]].exam_date == date(2026, 6, 30)
    assert on_record[city[BAD_VALUE]["atena_no"]].voucher_no == city[BAD_VALUE]["voucher"]
    assert {e.exam_date for e in exams} <= {p["exam_date"] for p in city} | {date(2026, 6, 30)}
