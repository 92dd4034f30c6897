"""Roster pages: functions per role, the build as a job, the 対象者数 table from one query, lists
by POST with a purpose and every person shown recorded, person references instead of 宛名番号 in
URLs, the explanation page with 受診不要 and overrides (step-up), and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kenshin.accounts import testing
from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.programs import services as programs
from kenshin.screening import lists, services
from kenshin.screening.models import Exclusion, RosterBuild, RosterEntry
from kenshin.screening.tests.town import FORMULA, HANAKO, KEN, TARO, import_town

pytestmark = pytest.mark.django_db
FY = 2025
INDEX = reverse("screening:index")
COUNTS = reverse("screening:counts", args=[FY])
ATENA = re.compile(r"1000000\d{3}")
HREF = re.compile(r'(?:href|action)="([^"]+)"')


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(date(2025, 4, 10)):
        yield


@pytest.fixture
def town(tmp_path):
    programs.load_shipped()
    import_town(tmp_path)


@pytest.fixture
def built(town):
    services.build_roster(FY)


@pytest.fixture
def staff(make_user, signed_in):
    """A signed-in client per standard role (client.user is the user, for step-up codes)."""

    def make(role: str):
        user = make_user(f"{role}1", roles=[role])
        client = signed_in(user)
        client.user = user
        return client

    return make


def list_url(method: str) -> str:
    return reverse("screening:list", args=[FY, method])


def show_list(client, method: str, purpose: str = "eligibility", **fields):
    data = {"purpose": purpose, "eligible": "yes", "exclusion": "any", **fields}
    return client.post(list_url(method), data)


def person_links(response) -> list[str]:
    return re.findall(r'href="(/roster/2025/person/[^"]+/)"', response.content.decode())


def urls_in(response) -> list[str]:
    return HREF.findall(response.content.decode())


def listings() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event="search", subject_kind="resident").order_by("seq"))


def audit_insert_cost() -> int:
    with CaptureQueriesContext(connection) as ctx:
        audit.record(audit.Event.VIEW, None, audit.Subject("test", "cost"), "audit")
    return len(ctx.captured_queries)


# ------------------------------------------------------------------------------ access


@pytest.mark.parametrize(
    ("role", "status"),
    [("kacho", 200), ("hokenshi", 200), ("jimu", 200), ("etsuran", 200), ("system_admin", 403)],
)
def test_pages_need_view_roster(built, staff, role, status):
    client = staff(role)
    assert client.get(INDEX).status_code == status
    assert client.get(COUNTS).status_code == status
    assert client.get(list_url("chest_xray")).status_code == status


def test_signed_out_users_are_sent_to_sign_in(client, built):
    assert client.get(COUNTS).status_code == 302


def test_build_button_only_for_build_roster(town, staff):
    assert "対象者抽出を実行" in staff("jimu").get(INDEX).content.decode()
    reader = staff("etsuran")
    assert "対象者抽出を実行" not in reader.get(INDEX).content.decode()
    assert reader.post(reverse("screening:build"), {"fiscal_year": FY}).status_code == 403
    assert not RosterBuild.objects.exists()


# ------------------------------------------------------------------------------ build


def test_build_runs_as_a_job_and_the_index_shows_its_progress_and_result(town, staff):
    client = staff("jimu")
    response = client.post(
        reverse("screening:build"), {"fiscal_year": FY, "as_of": "令和7年4月1日"}
    )
    assert response.status_code == 302
    target = response["Location"]
    assert re.fullmatch(r"/roster/\?fy=2025&job=[a-z0-9-]+", target)
    build = RosterBuild.objects.get()
    assert build.as_of == date(2025, 4, 1) and build.started_by == "jimu1"
    page = client.get(target).content.decode()
    assert "2025年度 対象者抽出（基準日 2025-04-01）" in page
    assert "2025年度の対象者抽出が終わりました" in page
    assert f"{RosterEntry.objects.count():,}" in page  # 名簿の人数（延べ）
    # Somebody else without the build function does not see the run.
    other = staff("etsuran").get(target).content.decode()
    assert "対象者抽出が終わりました" not in other


def test_build_refuses_a_base_date_outside_the_year(town, staff):
    response = staff("jimu").post(
        reverse("screening:build"), {"fiscal_year": FY, "as_of": "2026-04-01"}
    )
    assert response.status_code == 400
    assert "基準日 2026-04-01 は2025年度の対象者抽出に使えません" in response.content.decode()
    assert not RosterBuild.objects.exists()


# ------------------------------------------------------------------------------ the table


def test_table_counts_eligible_people_per_sex_and_band_from_one_query(built, staff):
    client = staff("etsuran")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(COUNTS)
    assert response.status_code == 200
    # The page reads the stored table (RosterCount, counted by the build), never the roster.
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert not [q for q in sqls if "screening_rosterentry" in q]
    assert len([q for q in sqls if "screening_rostercount" in q]) == 1
    table = services.count_table(FY)
    chest = {(r.sex, r.method): r for r in table.rows}
    # TARO (男 66) and KEN (男 50) in chest X-ray; HANAKO (女 45) and FORMULA (女 54/55).
    men = chest[(1, "chest_xray")]
    assert men.band(lists.Band(65, 69)).eligible == 1 and men.band(lists.Band(50, 54)).eligible == 1
    assert men.band(lists.Band(40, 69)).eligible == 2 and men.total.eligible == 2
    both = chest[(0, "chest_xray")]
    assert (
        both.total.eligible
        == RosterEntry.objects.filter(method="chest_xray", eligible=True).count()
    )
    page = response.content.decode()
    assert "マンモグラフィ" in page and "子宮体部細胞診は子宮頸がん検診に続けて" in page
    assert 'href="/roster/2025/chest_xray/list/?sex=1&amp;band=65-69"' in page
    assert not [u for u in urls_in(response) if ATENA.search(u)]


def test_table_query_count_does_not_grow_with_the_roster(town, staff):
    client = staff("etsuran")
    client.get(COUNTS)  # warm the session and catalogue caches
    with CaptureQueriesContext(connection) as empty:
        client.get(COUNTS)
    services.build_roster(FY)
    assert RosterEntry.objects.count() > 20
    with CaptureQueriesContext(connection) as full:
        client.get(COUNTS)
    assert len(full.captured_queries) == len(empty.captured_queries)


def test_excluded_people_stay_counted_and_show_in_their_own_column(built, staff):
    services.set_exclusion(None, FY, "lung", TARO.atena_no, "workplace")
    row = next(r for r in services.count_table(FY).rows if r.method == "chest_xray" and r.sex == 1)
    assert (row.total.eligible, row.total.excluded) == (2, 1)
    page = staff("etsuran").get(COUNTS).content.decode()
    assert (
        'href="/roster/2025/chest_xray/list/?sex=1&amp;eligible=all&amp;exclusion=excluded"' in page
    )


# ------------------------------------------------------------------------------ lists


def test_list_get_shows_nobody_and_asks_for_the_purpose(built, staff):
    response = staff("hokenshi").get(list_url("chest_xray") + "?sex=1&band=65-69")
    page = response.content.decode()
    assert response.status_code == 200
    assert "胸部エックス線検査　男　65〜69歳" in page and "利用目的" in page
    assert TARO.name not in page and TARO.atena_no not in page
    assert not listings()


def test_list_without_purpose_is_refused_and_shows_nobody(built, staff):
    response = show_list(staff("hokenshi"), "chest_xray", purpose="")
    assert response.status_code == 400
    assert "利用目的を選んでください" in response.content.decode()
    assert TARO.name not in response.content.decode()
    assert not listings()


def test_list_shows_the_cell_records_everyone_shown_and_links_by_reference(built, staff):
    client = staff("hokenshi")
    cost = audit_insert_cost()
    with CaptureQueriesContext(connection) as ctx:
        response = show_list(client, "chest_xray", sex="1")
    page = response.content.decode()
    assert response.status_code == 200
    assert "2人" in page and TARO.name in page and KEN.name in page and HANAKO.name not in page
    shown = [e.subject_ref for e in listings()]
    assert sorted(shown) == sorted([TARO.atena_no, KEN.atena_no])
    summary = AuditEvent.objects.get(event="search", subject_kind="")
    detail = json.loads(summary.detail)
    assert (summary.purpose, summary.function) == ("eligibility", "screening.view_roster")
    assert (detail["method"], detail["sex"], detail["hits"], detail["total"]) == (
        "chest_xray",
        1,
        2,
        2,
    )
    # No 宛名番号 in any link or form target; person links are per-session references.
    assert not [u for u in urls_in(response) if ATENA.search(u)]
    assert len(person_links(response)) == 2
    # Bounded: the list's reads plus one audit append per person and one for the summary.
    assert len(ctx.captured_queries) <= 16 + cost * 3


def test_list_query_count_does_not_depend_on_page_length(built, staff, monkeypatch):
    client = staff("hokenshi")
    cost = audit_insert_cost()
    counts = []
    for sex in ("1", "0"):
        with CaptureQueriesContext(connection) as ctx:
            response = show_list(client, "fecal_occult_blood", sex=sex, eligible="all")
        hits = len(person_links(response))
        counts.append(len(ctx.captured_queries) - cost * (hits + 1))
    assert counts[0] == counts[1]


def test_list_filters_and_pages_by_post(built, staff, monkeypatch):
    monkeypatch.setattr(services, "roster_page", lambda q, n=1: lists.roster_page(q, n, 2))
    client = staff("hokenshi")
    first = show_list(client, "fecal_occult_blood", eligible="all")  # 4 people aged 40+
    assert "1 / 2 ページ" in first.content.decode()
    second = show_list(client, "fecal_occult_blood", eligible="all", page="2")
    assert "2 / 2 ページ" in second.content.decode() and "3〜4人目" in second.content.decode()
    # Changing the filters starts again on page 1: the filter form does not carry the page.
    filter_form = re.search(
        r'<form[^>]*aria-label="表示の条件".*?</form>', second.content.decode(), re.S
    )
    assert 'name="page"' not in filter_form.group(0)
    only_no = show_list(client, "mammography", eligible="no", reason="screened_last_year")
    assert HANAKO.name in only_no.content.decode()
    assert "=HYPERLINK" not in only_no.content.decode()  # FORMULA (55) is eligible


def test_unknown_method_or_year_is_404(built, staff):
    client = staff("hokenshi")
    assert client.get(reverse("screening:list", args=[FY, "nope"])).status_code == 404
    assert (
        client.get(reverse("screening:list", args=[FY, "endometrial_cytology"])).status_code == 404
    )
    assert client.get(reverse("screening:counts", args=[2031])).status_code == 404


# ------------------------------------------------------------------------------ one person


def open_person(client, method="chest_xray", atena=TARO.atena_no, **fields) -> str:
    response = show_list(client, method, eligible="all", **fields)
    for link in person_links(response):
        ref = link.rstrip("/").rsplit("/", 1)[1]
        atena_no, _purpose = services_ref(client, ref)
        if atena_no == atena:
            return link
    raise AssertionError("person not listed")


def services_ref(client, ref):
    from kenshin.residents import services as residents

    return residents.person_of_ref(client.session, ref)


def test_person_page_explains_each_method_and_records_the_view(built, staff):
    client = staff("hokenshi")
    link = open_person(client, "mammography", HANAKO.atena_no, purpose="inquiry")
    before = AuditEvent.objects.count()
    page = client.get(link).content.decode()
    assert HANAKO.name in page and "45歳" in page
    assert "前年度に受診済み" in page and "[screened_last_year]" in page
    assert "節目年齢ではない" in page  # periodontal at 45
    assert "8,800円" in page  # not eligible: the unit price
    assert "4〜6月の受診:" not in page  # 生活保護 counts in April–June too (current status)
    views = AuditEvent.objects.filter(event="view").order_by("-seq")
    assert AuditEvent.objects.count() == before + 1
    assert (views[0].subject_ref, views[0].purpose, views[0].function) == (
        HANAKO.atena_no, "inquiry", "screening.view_roster"
    )  # fmt: skip
    assert not [u for u in HREF.findall(page) if ATENA.search(u)]


def test_unknown_reference_is_404_and_reference_without_purpose_asks_first(built, staff):
    from kenshin.residents import services as residents

    client = staff("hokenshi")
    assert client.get(reverse("screening:person", args=[FY, "nope"])).status_code == 404
    session = client.session
    ref = residents.person_ref(session, TARO.atena_no, "")
    session.save()
    page = client.get(reverse("screening:person", args=[FY, ref])).content.decode()
    assert "利用目的の選択" in page and TARO.name not in page
    response = client.post(reverse("screening:person", args=[FY, ref]), {"purpose": "inquiry"})
    assert response.status_code == 302
    assert TARO.name in client.get(response["Location"]).content.decode()


def test_resident_page_links_to_the_explanation_with_the_same_reference(built, staff):
    client = staff("hokenshi")
    link = open_person(client)
    ref = link.rstrip("/").rsplit("/", 1)[1]
    page = client.get(reverse("residents:person", args=[ref])).content.decode()
    target = reverse("screening:person_current", args=[ref])
    assert f'href="{target}"' in page
    assert client.get(target)["Location"] == link


def test_exclusion_from_the_person_page(built, staff):
    client = staff("hokenshi")
    link = open_person(client)
    url = link + "exclude/"
    response = client.post(url, {"programme": "lung", "reason": "treatment", "note": ""})
    assert response.status_code == 302
    assert Exclusion.objects.get().reason == "treatment"
    assert set(RosterEntry.objects.filter(atena_no=TARO.atena_no, programme="lung")
               .values_list("exclusion", flat=True)) == {"treatment"}  # fmt: skip
    page = client.get(link).content.decode()
    assert "受診不要（治療中・経過観察中）を登録しました。" in page
    refused = client.post(url, {"programme": "lung", "reason": "other", "note": ""})
    assert (
        refused.status_code == 200 and "理由（備考）を入力してください" in refused.content.decode()
    )
    removed = client.post(url, {"programme": "lung", "remove": "1"})
    assert removed.status_code == 302 and not Exclusion.objects.exists()


def test_exclusion_needs_the_function(built, staff):
    reader = staff("etsuran")
    link = open_person(reader)
    assert "受診不要（職場等で受診" not in reader.get(link).content.decode()
    response = reader.post(link + "exclude/", {"programme": "lung", "reason": "treatment"})
    assert response.status_code == 403 and not Exclusion.objects.exists()


def test_override_needs_a_fresh_code_and_is_kept(built, staff):
    client = staff("hokenshi")
    link = open_person(client)
    url = link + "override/"
    data = {"method": "gastric_xray", "decision": "no", "note": "胃全摘後"}
    wrong = client.post(url, {**data, "code": testing.wrong_code(client.user)})
    assert wrong.status_code == 200 and "確認コードが正しくありません" in wrong.content.decode()
    entry = RosterEntry.objects.get(atena_no=TARO.atena_no, method="gastric_xray")
    assert entry.override_eligible is None
    right = client.post(url, {**data, "code": testing.code_for(client.user)})
    assert right.status_code == 302
    entry.refresh_from_db()
    assert (entry.eligible, entry.reason, entry.override_note) == (False, "override", "胃全摘後")
    cleared = client.post(url, {"method": "gastric_xray", "decision": "clear", "note": "",
                                "code": testing.code_for(client.user)})  # fmt: skip
    assert cleared.status_code == 302
    entry.refresh_from_db()
    assert (entry.eligible, entry.reason) == (True, "annual")


def test_override_without_note_is_refused_on_the_page(built, staff):
    client = staff("kacho")
    link = open_person(client)
    response = client.post(link + "override/", {"method": "gastric_xray", "decision": "yes",
                                                "note": "", "code": testing.code_for(client.user)})  # fmt: skip
    assert response.status_code == 200
    assert "理由（備考）を入力してください" in response.content.decode()


def test_override_needs_the_function(built, staff):
    client = staff("jimu")
    link = open_person(client)
    response = client.post(link + "override/", {"method": "gastric_xray", "decision": "no",
                                                "note": "x", "code": testing.code_for(client.user)})  # fmt: skip
    assert response.status_code == 403
    assert not RosterEntry.objects.filter(override_eligible__isnull=False).exists()


# ------------------------------------------------------------------------------ export


def export(client, method="chest_xray", encoding="utf-8-sig", code=None, **fields):
    data = {"purpose": "voucher", "eligible": "yes", "exclusion": "any", "encoding": encoding,
            "code": code or testing.code_for(client.user), **fields}  # fmt: skip
    return client.post(reverse("screening:export", args=[FY, method]), data)


def csv_rows(response, encoding: str) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    return list(csv.reader(io.StringIO(body.decode(encoding), newline=""))), body


def test_export_utf8_with_bom_is_recorded_with_its_row_count(built, staff):
    client = staff("jimu")
    response = export(client, "chest_xray")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="roster_2025_chest_xray.csv"'
    rows, body = csv_rows(response, "utf-8-sig")
    assert body.startswith(b"\xef\xbb\xbf")
    assert rows[0][:4] == ["年度", "検査方法", "宛名番号", "氏名"]
    expected = RosterEntry.objects.filter(method="chest_xray", eligible=True).count()
    assert len(rows) - 1 == expected
    event = AuditEvent.objects.get(event="export")
    detail = json.loads(event.detail)
    assert (event.purpose, event.function, detail["rows"], detail["method"]) == (
        "voucher", "screening.export_roster", expected, "chest_xray"
    )  # fmt: skip


def test_export_cp932_and_formula_injection_safe(built, staff):
    client = staff("jimu")
    response = export(client, "mammography", encoding="cp932", sex="2", band="55-59")
    assert response["Content-Type"] == "text/csv; charset=shift_jis"
    rows, body = csv_rows(response, "cp932")
    assert not body.startswith(b"\xef\xbb\xbf")
    names = {r[2]: r[3] for r in rows[1:]}
    assert names[FORMULA.atena_no] == "'" + FORMULA.name
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)


def test_csv_cell_escapes_every_formula_start():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert lists.csv_cell(text) == "'" + text
    assert lists.csv_cell("山田") == "山田" and lists.csv_cell(None) == ""


def test_export_wrong_code_writes_nothing_and_shows_nobody(built, staff):
    client = staff("jimu")
    response = export(client, code=testing.wrong_code(client.user))
    assert response.status_code == 400
    page = response.content.decode()
    assert "確認コードが正しくありません" in page and TARO.name not in page
    assert not AuditEvent.objects.filter(event="export").exists()


def test_export_needs_the_function(built, staff):
    client = staff("hokenshi")
    assert export(client).status_code == 403
    assert not AuditEvent.objects.filter(event="export").exists()


def test_stored_table_follows_overrides_and_exclusions(built, staff):
    """An override or a 受診不要 recounts its cells in the same transaction."""
    from kenshin.screening import actions

    def cell(method: str):
        table = services.count_table(FY)
        row = next(r for r in table.rows if r.method == method and r.sex == 0)
        return row.total

    entry = RosterEntry.objects.filter(method="chest_xray", eligible=True).first()
    before = cell("chest_xray")
    actions.override("tester", FY, "chest_xray", entry.atena_no, False, "胸部の治療中")
    after = cell("chest_xray")
    assert (after.population, after.eligible) == (before.population, before.eligible - 1)
    actions.set_exclusion("tester", FY, "lung", entry.atena_no, "treatment")
    assert cell("chest_xray").excluded == before.excluded + 1
    # The adjusted table equals a fresh count of the whole roster, cell by cell.
    from kenshin.screening.models import RosterCount

    def stored():
        return {
            (c.method, c.sex, c.band): (c.population, c.eligible, c.excluded)
            for c in RosterCount.objects.filter(fiscal_year=FY)
        }

    adjusted = stored()
    lists.refresh_counts(FY)
    assert stored() == adjusted
    actions.clear_override("tester", FY, "chest_xray", entry.atena_no)
    actions.remove_exclusion("tester", FY, "lung", entry.atena_no)
    again = cell("chest_xray")
    assert (again.population, again.eligible, again.excluded) == (
        before.population, before.eligible, before.excluded,
    )  # fmt: skip
    # …and equals a fresh count of the roster.
    fresh = RosterEntry.objects.filter(fiscal_year=FY, method="chest_xray")
    assert again.eligible == fresh.filter(eligible=True).count()
