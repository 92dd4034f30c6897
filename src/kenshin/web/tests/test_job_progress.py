"""/jobs/<id>/: the progress block htmx polls, who may see it, and what it shows."""

from __future__ import annotations

import re

import pytest

from kenshin.core import clock, jobs
from kenshin.core.models import JobRun

pytestmark = pytest.mark.django_db


@jobs.job(
    "webtest.letters",
    label="受診券の作成",
    function="audit.review",
    result_labels={"letters": "作成した受診券"},
)
def letters_work(reporter: jobs.JobReporter) -> dict[str, int]:
    return {"letters": 1200}


def _run(requested_by: str, **fields) -> JobRun:
    now = clock.now()
    values = {
        "kind": "webtest.letters",
        "label": "2025年度 受診券の作成",
        "requested_by": requested_by,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return JobRun.objects.create(**values)


def _htmx(client, run: JobRun):
    return client.get(f"/jobs/{run.pk}/", headers={"HX-Request": "true"})


def test_a_running_job_shows_its_bar_stage_and_counts_and_keeps_polling(make_user, signed_in):
    user = make_user("jobweb1", roles=["hokenshi"])
    run = _run(
        "jobweb1", status="running", stage="対象者を判定しています", done=4_200, total=10_000
    )
    response = _htmx(signed_in(user), run)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the block alone, for htmx to swap in
    progress = re.search(r"<progress[^>]*>", html).group(0)
    assert 'max="10000"' in progress and 'value="4200"' in progress
    assert "対象者を判定しています" in html
    assert "4,200 / 10,000 件（42%）" in html
    assert f'hx-get="/jobs/{run.pk}/"' in html and 'hx-trigger="every 1s"' in html


def test_a_finished_job_shows_its_report_and_stops_polling(make_user, signed_in):
    user = make_user("jobweb2", roles=["hokenshi"])
    run = _run(
        "jobweb2",
        status="succeeded",
        done=10_000,
        total=10_000,
        message="受診券 1,200 通を作りました。",
        result={"letters": 1200},
    )
    html = _htmx(signed_in(user), run).content.decode()
    assert 'value="10000"' in html
    assert "完了" in html and "受診券 1,200 通を作りました。" in html
    assert "作成した受診券" in html and "1,200" in html
    assert "hx-get" not in html and "hx-trigger" not in html


def test_a_failed_job_shows_its_message_without_polling(make_user, signed_in):
    user = make_user("jobweb3", roles=["hokenshi"])
    run = _run("jobweb3", status="failed", done=3, total=10, message="定義がありません。")
    html = _htmx(signed_in(user), run).content.decode()
    assert "失敗" in html and "定義がありません。" in html
    assert 'value="3"' in html and "hx-trigger" not in html


def test_a_queued_job_without_a_total_shows_an_indeterminate_bar(make_user, signed_in):
    user = make_user("jobweb4", roles=["hokenshi"])
    html = _htmx(signed_in(user), _run("jobweb4")).content.decode()
    assert re.search(r"<progress[^>]*>", html).group(0) == '<progress class="job-progress__bar">'
    assert "開始を待っています" in html and "hx-trigger" in html


def test_without_htmx_the_same_url_is_a_whole_page(make_user, signed_in):
    user = make_user("jobweb5", roles=["hokenshi"])
    run = _run("jobweb5", status="running", done=1, total=2)
    html = signed_in(user).get(f"/jobs/{run.pk}/").content.decode()
    assert "<html" in html and "htmx.min.js" in html
    assert "2025年度 受診券の作成" in html


def test_another_user_without_the_kinds_function_is_refused(make_user, signed_in):
    make_user("jobweb6", roles=["hokenshi"])
    other = make_user("jobweb7", roles=["hokenshi"])  # hokenshi lacks audit.review
    run = _run("jobweb6", status="running", done=1, total=2)
    response = _htmx(signed_in(other), run)
    assert response.status_code == 403
    assert "受診券" not in response.content.decode()


def test_a_holder_of_the_kinds_function_may_watch_anyones_run(make_user, signed_in):
    make_user("jobweb8", roles=["hokenshi"])
    kacho = make_user("jobweb9", roles=["kacho"])  # kacho holds audit.review
    run = _run("jobweb8", status="running", done=1, total=2)
    assert _htmx(signed_in(kacho), run).status_code == 200


def test_unknown_job_is_404_and_anonymous_is_sent_to_sign_in(make_user, signed_in, client):
    user = make_user("jobweb10", roles=["hokenshi"])
    assert _htmx(signed_in(user), type("R", (), {"pk": "nosuchjobnosuchjobab"})).status_code == 404
    assert _htmx(signed_in(user), type("R", (), {"pk": "x1"})).status_code == 404
    run = _run("jobweb10")
    response = client.get(f"/jobs/{run.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_htmx_is_served_from_our_own_origin_and_the_csp_stays_self_only(make_user, signed_in):
    from django.contrib.staticfiles import finders

    assert finders.find("web/vendor/htmx.min.js")
    user = make_user("jobweb11", roles=["hokenshi"])
    response = signed_in(user).get("/")
    assert (
        '<script src="/static/web/vendor/htmx.min.js" defer></script>' in response.content.decode()
    )
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp


def test_pages_before_full_sign_in_load_no_script(client):
    html = client.get("/accounts/login/").content.decode()
    assert "<script" not in html and "htmx" not in html
