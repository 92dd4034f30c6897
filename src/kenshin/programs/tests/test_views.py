"""Staff pages of the catalogue: who may see and change it, step-up, what a change stores,
the changes lists, the TOML download, and a fixed number of queries per page."""

from __future__ import annotations

import tomllib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kenshin.accounts.stepup import STEP_UP_ERROR
from kenshin.accounts.testing import code_for, wrong_code
from kenshin.audit.models import AuditEvent
from kenshin.programs import actions, services
from kenshin.programs.catalogue import parse
from kenshin.programs.models import CatalogueVersion
from kenshin.programs.tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

ADJUST = "/programs/2025/methods/cytology/adjust/"


@pytest.fixture
def kacho_user(make_user):
    return make_user("kacho1", roles=["kacho"])


@pytest.fixture
def kacho(kacho_user, signed_in):
    return signed_in(kacho_user)


@pytest.fixture
def etsuran(make_user, signed_in):
    return signed_in(make_user("etsuran1", roles=["etsuran"]))


def cytology_form(user, **changes):
    """The adjust form for 子宮頸部細胞診 FY2025 as it opens (version 1), with changes."""
    data = {
        "min_age": "20",
        "max_age": "29",
        "milestones": "",
        "cohort": "",
        "settings": ["individual", "group"],
        "copay_individual": "1000",
        "copay_group": "900",
        "unit_price_individual": "7700",
        "unit_price_group": "5500",
        "enabled": "on",
        "note": "テストの変更",
        "based_on": "1",
        "code": code_for(user),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _versions(fy=2025):
    return CatalogueVersion.objects.filter(fiscal_year=fy).count()


# ------------------------------------------------------------------------- reading


def test_index_lists_years_with_current_version_and_history(shipped, kacho_user, etsuran):
    document = services.document_of(2025)
    actions.adjust_method(SYSTEM, document, "cytology", {"max_age": 34}, note="試行", based_on=1)
    page = etsuran.get("/programs/").content.decode()
    assert "令和7年度（2025年度）" in page
    assert "第2版" in page and "試行" in page
    assert "画面で調整（cytology）" in page
    assert "ファイル kure-2024.toml" in page
    assert '<a href="/programs/">検診事業</a>' in page


def test_index_without_catalogues_says_how_to_load_them(db, etsuran):
    assert "kenshin programs load" in etsuran.get("/programs/").content.decode()


def test_year_page_shows_each_method_and_the_changes_from_the_previous_year(shipped, etsuran):
    response = etsuran.get("/programs/2025/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "令和6年度（2024年度）（第1版）からの変更" in page
    assert "<strong>子宮頸部細胞診</strong>: 上限年齢 — → 29歳" in page
    assert "<strong>HPV検査単独法</strong>: 実施 しない → する" in page
    cytology = page.split('<th scope="row">子宮頸部細胞診</th>')[1].split("</tr>")[0]
    assert '女性<br><span class="nowrap">20歳〜29歳</span>' in cytology
    assert '<td class="nowrap">個別<br>集団</td>' in cytology
    assert '<td class="num">1,000円<br>900円</td>' in cytology
    assert '<td class="num">7,700円<br>5,500円</td>' in cytology
    assert "前年度に20歳（C）" in cytology and "子宮頸がん検診無料クーポン" in cytology
    assert "30・35・40・45・50・55・60歳" in page
    assert "生活保護、無料クーポン、市民税非課税世帯" in page


def test_fy2024_page_marks_hpv_as_not_run_and_has_nothing_to_compare(shipped, etsuran):
    page = etsuran.get("/programs/2024/").content.decode()
    assert '<span class="badge badge--warn">実施しない</span>' in page
    assert "前年度の定義がないため、比較していません。" in page


def test_viewer_sees_no_edit_controls_and_is_refused_every_change(shipped, etsuran):
    page = etsuran.get("/programs/2026/").content.decode()
    assert "調整" not in page and "翌年度へ複写" not in page
    assert etsuran.get(ADJUST).status_code == 403
    assert etsuran.post(ADJUST, {"note": "x"}).status_code == 403
    assert etsuran.post("/programs/2026/copy/", {"code": "123456"}).status_code == 403
    assert CatalogueVersion.objects.count() == 3
    assert AuditEvent.objects.filter(event="access_denied", function="programs.edit").count() == 3


def test_editor_sees_adjust_links_and_copy_only_where_the_next_year_is_missing(shipped, kacho):
    latest = kacho.get("/programs/2026/").content.decode()
    assert 'href="/programs/2026/methods/cytology/adjust/"' in latest
    assert 'action="/programs/2026/copy/"' in latest
    earlier = kacho.get("/programs/2025/").content.decode()
    assert 'action="/programs/2025/copy/"' not in earlier
    assert "令和8年度（2026年度）の定義はすでにあります" in earlier


def test_an_earlier_version_is_shown_read_only_with_its_changes(shipped, kacho):
    actions.adjust_method(
        SYSTEM, services.document_of(2025), "cytology", {"max_age": 34}, note="試行", based_on=1
    )
    old = kacho.get("/programs/2025/versions/1/").content.decode()
    assert "これは過去の版（第1版）です。現在の定義は第2版です。" in old
    assert "/adjust/" not in old
    new = kacho.get("/programs/2025/").content.decode()
    assert "前の版（第1版）からの変更" in new
    assert "<strong>子宮頸部細胞診</strong>: 上限年齢 29歳 → 34歳" in new


@pytest.mark.parametrize(
    "url", ["/programs/2031/", "/programs/2025/versions/9/", "/programs/2031/export/"]
)
def test_missing_year_or_version_is_not_found(shipped, etsuran, url):
    assert etsuran.get(url).status_code == 404


def test_export_downloads_the_stored_version_as_toml_and_is_audited(shipped, etsuran):
    response = etsuran.get("/programs/2025/export/")
    assert response["Content-Disposition"] == 'attachment; filename="programs-2025-v1.toml"'
    document = tomllib.loads(response.content.decode())
    assert parse(document) == services.catalogue(2025)
    event = AuditEvent.objects.filter(event="export").latest("seq")
    assert (event.subject_ref, event.function) == ("2025:1", "programs.view")


# ------------------------------------------------------------------------- adjusting


def test_adjust_form_opens_with_the_methods_current_values(shipped, kacho):
    page = kacho.get(ADJUST).content.decode()
    assert 'name="max_age" value="29"' in page
    assert 'name="based_on" value="1"' in page
    assert "第2版として保存" in page


def test_unknown_method_is_not_found(shipped, kacho):
    assert kacho.get("/programs/2025/methods/nothing/adjust/").status_code == 404


def test_good_adjustment_creates_the_next_version_with_an_audit_event(shipped, kacho, kacho_user):
    response = kacho.post(ADJUST, cytology_form(kacho_user, max_age="34", note="要綱改正"))
    assert response.status_code == 302
    assert response["Location"] == "/programs/2025/"
    info = services.stored_version(2025).info
    assert (info.version, info.source, info.note, info.created_by) == (
        2, "edit:cytology", "要綱改正", "kacho1"
    )  # fmt: skip
    assert services.catalogue(2025).method("cytology").max_age == 34
    assert services.stored_version(2025, 1).catalogue.method("cytology").max_age == 29
    event = AuditEvent.objects.filter(event="create", function="programs.edit").latest("seq")
    assert (event.subject_ref, event.username) == ("2025:2", "kacho1")
    assert AuditEvent.objects.filter(event="step_up", function="programs.edit").count() == 1
    page = kacho.get("/programs/2025/").content.decode()
    assert "子宮頸部細胞診を調整し、2025年度の第2版として保存しました。" in page


def test_adjusting_settings_drops_the_prices_of_a_setting_no_longer_run(shipped, kacho, kacho_user):
    form = cytology_form(kacho_user, settings=["individual"], milestones="")
    assert kacho.post(ADJUST, form).status_code == 302
    m = services.catalogue(2025).method("cytology")
    assert (m.settings, dict(m.copay), dict(m.unit_price)) == (
        ("individual",), {"individual": 1000}, {"individual": 7700}
    )  # fmt: skip


def test_switching_a_method_off_is_stored_as_enabled_false(shipped, kacho, kacho_user):
    assert kacho.post(ADJUST, cytology_form(kacho_user, enabled=None)).status_code == 302
    assert services.catalogue(2025).method("cytology").enabled is False
    assert services.document_of(2025)["programmes"][4]["methods"][0]["enabled"] is False


def test_adjusting_needs_the_step_up_code(shipped, kacho, kacho_user):
    response = kacho.post(
        ADJUST, cytology_form(kacho_user, max_age="34", code=wrong_code(kacho_user))
    )
    assert response.status_code == 200
    assert STEP_UP_ERROR in response.content.decode()
    assert _versions() == 1
    assert AuditEvent.objects.filter(event="mfa_failed", function="programs.edit").count() == 1


def test_adjusting_without_a_code_or_a_reason_is_refused(shipped, kacho, kacho_user):
    page = kacho.post(ADJUST, cytology_form(kacho_user, code="", note="  ")).content.decode()
    assert "変更理由を書いてください" in page
    assert _versions() == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_age": "19"}, "min_age（20）より小さくできません"),
        ({"cohort": "even_age", "min_age": "20"}, None),
        ({"milestones": "20, 25"}, "毎年度・2年に1回の検診には節目年齢を書きません"),
        ({"copay_group": ""}, "実施する方式 集団 の金額がありません"),
        ({"milestones": "二十"}, "年齢を数字で、カンマ（,）区切りで書いてください"),
        ({"min_age": "abc"}, "年齢を数字で書いてください"),
        ({"max_age": "29"}, "変更がありません（前の版と同じ内容は保存しません）"),
    ],
    ids=["max_below_min", "cohort_ok", "milestones_on_biennial", "missing_copay", "bad_ages",
         "not_a_number", "no_change"],
)  # fmt: skip
def test_a_bad_adjustment_shows_the_error_and_stores_nothing(
    shipped, kacho, kacho_user, changes, message
):
    response = kacho.post(ADJUST, cytology_form(kacho_user, **changes))
    if message is None:  # the control case: a valid change goes through
        assert response.status_code == 302
        return
    assert response.status_code == 200
    assert message in response.content.decode()
    assert _versions() == 1
    # The rule was refused before the code was checked: the code is not used up.
    assert not AuditEvent.objects.filter(event="step_up").exists()


def test_a_catalogue_error_is_shown_beside_its_field(shipped, kacho, kacho_user):
    page = kacho.post(ADJUST, cytology_form(kacho_user, max_age="19")).content.decode()
    max_age_field = page.split('for="id_max_age"')[1].split('<div class="field')[0]
    assert "min_age（20）より小さくできません" in max_age_field


def test_an_adjustment_on_top_of_a_newer_version_is_refused(shipped, kacho, kacho_user):
    actions.adjust_method(
        SYSTEM, services.document_of(2025), "cytology", {"min_age": 21}, note="先に", based_on=1
    )
    page = kacho.post(ADJUST, cytology_form(kacho_user, max_age="34")).content.decode()
    assert "開いている間に別の変更（第2版）が保存されました" in page
    assert _versions() == 2
    assert services.catalogue(2025).method("cytology").max_age == 29


# ------------------------------------------------------------------------- copying forward


def test_copy_forward_with_a_code_creates_the_next_year(shipped, kacho, kacho_user):
    response = kacho.post(
        "/programs/2026/copy/", {"note": "令和9年度の準備", "code": code_for(kacho_user)}
    )
    assert response.status_code == 302 and response["Location"] == "/programs/2027/"
    info = services.stored_version(2027).info
    assert (info.version, info.source, info.created_by) == (1, "copy:2026", "kacho1")
    page = kacho.get("/programs/2027/").content.decode()
    assert "令和8年度（2026年度）（第1版）からの変更" in page
    assert "変更はありません。" in page


def test_copy_forward_needs_the_code(shipped, kacho, kacho_user):
    response = kacho.post("/programs/2026/copy/", {"code": wrong_code(kacho_user)})
    assert response.status_code == 200
    assert STEP_UP_ERROR in response.content.decode()
    assert services.fiscal_years() == [2026, 2025, 2024]


def test_copy_forward_refuses_when_the_next_year_exists(shipped, kacho, kacho_user):
    response = kacho.post("/programs/2025/copy/", {"code": code_for(kacho_user)})
    assert "2026年度の定義はすでにあります" in response.content.decode()
    assert _versions(2026) == 1


def test_copy_forward_is_post_only(shipped, kacho):
    assert kacho.get("/programs/2026/copy/").status_code == 405


# ------------------------------------------------------------------------- query counts


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _more_versions(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        doc = services.document_of(2025)
        version = services.stored_version(2025).info.version
        actions.adjust_method(
            SYSTEM, doc, "cytology", {"max_age": 30 + i}, note=f"{i}", based_on=version
        )


@pytest.mark.parametrize("url", ["/programs/", "/programs/2025/", "/programs/2025/versions/2/"])
def test_pages_take_the_same_queries_whatever_the_number_of_years_and_versions(shipped, kacho, url):
    _more_versions(1)
    kacho.get(url)  # warm the session and caches
    few = _queries(kacho, url)
    _more_versions(5, start=1)
    services.copy_forward(SYSTEM, 2026)
    assert _queries(kacho, url) == few
    # Session, user and role grants, then at most five reads of the catalogue itself.
    assert few <= {"/programs/": 6}.get(url, 10), few
