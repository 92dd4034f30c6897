"""core.jobs: a run's life (queued → running → succeeded/failed), its report, the queue and the
worker, progress that others see while the job's own transaction is open, and the CLI path."""

from __future__ import annotations

import io
import logging
import re
import threading

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import close_old_connections, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from kenshin.core import clock, jobs, permissions
from kenshin.core.jobs import JobRun

DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Text a careless exception might carry (a name, as an IntegrityError would quote a key value).
SECRET = "山田太郎"


@jobs.job(
    "coretest.count",
    label="数える処理",
    function="audit.review",
    result_labels={"rows": "件数", "skipped": "対象外"},
)
def count_work(reporter: jobs.JobReporter, *, n: int, skip: int = 0) -> dict[str, int]:
    reporter.stage("数えています", total=n)
    for _ in range(n):
        reporter.advance()
    reporter.stage("後片付け")
    return {"rows": n, "skipped": skip}


@jobs.job("coretest.refuse", label="断る処理", function="audit.review")
def refuse_work(reporter: jobs.JobReporter, *, fiscal_year: int) -> None:
    reporter.stage("確かめています", total=3)
    reporter.set(2)
    raise jobs.JobError(f"{fiscal_year}年度の事業の定義がありません。先に定義を保存してください。")


@jobs.job("coretest.crash", label="落ちる処理", function="audit.review")
def crash_work(reporter: jobs.JobReporter) -> None:
    reporter.stage("書いています", total=10)
    reporter.set(7)
    raise RuntimeError(f"duplicate key value: {SECRET}")


@jobs.job("coretest.explicit", label="自分で報告する処理", function="audit.review")
def explicit_work(reporter: jobs.JobReporter) -> None:
    reporter.stage("作っています", total=2)
    reporter.set(2)
    reporter.finish({"letters": 2}, "受診券 2 通を作りました。")


@jobs.job("coretest.unique", label="一度に一つの処理", function="audit.review", unique=True)
def unique_work(reporter: jobs.JobReporter, *, fiscal_year: int) -> dict[str, int]:
    return {"fiscal_year": fiscal_year}


@jobs.job("coretest.stopped", label="止められる処理", function="audit.review")
def stopped_work(reporter: jobs.JobReporter) -> None:
    reporter.stage("長い処理", total=100)
    raise SystemExit(1)  # what the worker's second SIGTERM raises inside the task


# Set by the test below, read inside the job (module level: the work runs by kind name).
_seen_by_others: dict[str, object] = {}


def _read_elsewhere(run_id: str) -> None:
    """Another thread = other connections: what a web request would see right now."""
    try:
        run = JobRun.objects.get(pk=run_id)
        _seen_by_others.update(stage=run.stage, done=run.done, total=run.total, status=run.status)
        if connections["default"].vendor == "postgresql":
            _seen_by_others["sessions"] = Session.objects.filter(session_key="job-test").count()
    finally:
        connections.close_all()


@jobs.job("coretest.long_transaction", label="長いトランザクション", function="audit.review")
def long_transaction_work(reporter: jobs.JobReporter) -> dict[str, int]:
    reporter.interval = 0
    with transaction.atomic():  # on "default": all or nothing, as a roster build does
        Session.objects.create(session_key="job-test", session_data="x", expire_date=clock.now())
        reporter.stage("名簿を作っています", total=10)
        reporter.set(4)
        assert connections["default"].in_atomic_block
        reader = threading.Thread(target=_read_elsewhere, args=(reporter.run.pk,))
        reader.start()
        reader.join(timeout=30)
    return {"rows": 10}


def test_every_declared_kind_names_a_declared_function():
    kinds = jobs.all_kinds()
    assert {"coretest.count", "coretest.refuse"} <= {k.kind for k in kinds}
    assert [k.kind for k in kinds if not permissions.is_declared(k.function)] == []


def test_a_kind_cannot_be_declared_twice_with_another_meaning():
    with pytest.raises(ValueError, match="declared twice"):
        jobs.job("coretest.count", label="別の処理", function="audit.export")(lambda r: None)
    with pytest.raises(ValueError):
        jobs.job("nodot", label="x", function="audit.review")


@pytest.mark.django_db
def test_started_job_runs_inline_in_tests_and_keeps_its_report(make_user):
    user = make_user("jobuser1")
    run = jobs.start_job("coretest.count", "2025年度 数える処理", {"n": 5, "skip": 1}, user)
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.label == "2025年度 数える処理"
    assert run.requested_by == "jobuser1"
    assert run.params == {"n": 5, "skip": 1}
    assert run.result == {"rows": 5, "skipped": 1}
    assert run.message == "完了しました。"
    assert run.stage == "後片付け"
    assert run.task_id  # the django-tasks result id
    assert run.created_at <= run.started_at <= run.finished_at
    assert run.percent == 100
    assert run.report_rows == [("件数", 5), ("対象外", 1)]
    assert re.fullmatch(r"[a-z]{20}", run.pk)  # no digits: never mistaken for a 個人番号
    assert jobs.get_run(run.pk) == run
    assert jobs.get_run("../" + run.pk) is None and jobs.get_run(run.pk.upper()) is None


@pytest.mark.django_db
def test_work_may_write_its_own_report():
    run = jobs.start_job("coretest.explicit", "受診券の作成", {}, "system")
    assert run.status == JobRun.Status.SUCCEEDED
    assert (run.result, run.message, run.done, run.total) == (
        {"letters": 2},
        "受診券 2 通を作りました。",
        2,
        2,
    )


@pytest.mark.django_db
def test_a_foreseen_failure_keeps_its_japanese_message_and_where_it_stopped():
    run = jobs.start_job("coretest.refuse", "名簿の作成", {"fiscal_year": 2031}, "system")
    assert run.status == JobRun.Status.FAILED
    assert run.message == "2031年度の事業の定義がありません。先に定義を保存してください。"
    assert (run.stage, run.done, run.total) == ("確かめています", 2, 3)
    assert run.finished_at is not None
    assert run.result == {}


@pytest.mark.django_db
def test_an_unexpected_failure_shows_a_fixed_message_and_logs_no_exception_text(caplog):
    with caplog.at_level(logging.INFO):
        run = jobs.start_job("coretest.crash", "書き込み", {}, "system")
    assert run.status == JobRun.Status.FAILED
    assert run.message == jobs.UNEXPECTED.format(ref=run.pk)
    assert SECRET not in run.message and "Traceback" not in run.message
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"job {run.pk} coretest.crash failed: RuntimeError" in logged
    assert "crash_work" in logged  # the frames are there for the developer …
    assert SECRET not in logged  # … the exception's text is not
    # Nor in what the task backend kept (the immediate backend records the task's error).
    for record in caplog.records:
        assert SECRET not in str(record.exc_text or "") + str(record.exc_info or "")


@pytest.mark.django_db
def test_params_are_ids_and_codes_only():
    from kenshin.core.mynumber import check_digit

    my_number = "12345678901" + str(check_digit("12345678901"))
    for bad in ({"who": my_number}, {"note": "あ" * 101}, {"when": clock.now()}, {"a-b": 1}):
        with pytest.raises((ValueError, TypeError)):
            jobs.start_job("coretest.count", "x", bad, "system")
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_unknown_kind_is_refused():
    with pytest.raises(LookupError):
        jobs.start_job("coretest.nothing", "x", {}, "system")


@pytest.mark.django_db
def test_progress_writes_are_throttled():
    run = JobRun.objects.create(
        kind="coretest.count",
        label="x",
        requested_by="system",
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    reporter = jobs.JobReporter(run, interval=60)
    with CaptureQueriesContext(connections[jobs.DB]) as queries:
        reporter.stage("数えています", total=10_000)
        for _ in range(10_000):
            reporter.advance()
    assert len(queries) == 1  # the stage change; the 10,000 steps wait for the interval
    run.refresh_from_db()
    assert (run.stage, run.done, run.total) == ("数えています", 0, 10_000)
    reporter.finish({"rows": 10_000})
    run.refresh_from_db()
    assert (run.status, run.done) == (JobRun.Status.SUCCEEDED, 10_000)


@pytest.mark.django_db
def test_a_unique_kind_returns_the_active_run_instead_of_queueing_a_second(settings):
    settings.TASKS = DATABASE_BACKEND
    first = jobs.start_job("coretest.unique", "一度だけ", {"fiscal_year": 2025}, "a")
    again = jobs.start_job("coretest.unique", "一度だけ", {"fiscal_year": 2025}, "b")
    other_year = jobs.start_job("coretest.unique", "一度だけ", {"fiscal_year": 2026}, "a")
    assert again.pk == first.pk and first.status == JobRun.Status.QUEUED
    assert other_year.pk != first.pk
    assert DBTaskResult.objects.count() == 2
    with pytest.raises(jobs.JobError, match="すでに実行中"):
        jobs.run_job("coretest.unique", "一度だけ", {"fiscal_year": 2025}, "cli")
    # Once it has finished (here: abandoned), the same params may run again.
    jobs.abandon(first.pk)
    assert jobs.start_job("coretest.unique", "一度だけ", {"fiscal_year": 2025}, "a").pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_queued_job_is_run_by_the_db_worker(settings):
    """The production path: enqueue into the jobs database, `kenshin db_worker` runs it."""
    settings.TASKS = DATABASE_BACKEND
    ok = jobs.start_job("coretest.count", "数える", {"n": 3}, "jobuser2")
    bad = jobs.start_job("coretest.crash", "落ちる", {}, "jobuser2")
    assert (ok.status, bad.status) == (JobRun.Status.QUEUED, JobRun.Status.QUEUED)
    task = DBTaskResult.objects.get(id=ok.task_id)
    assert task.args_kwargs == {"args": [str(ok.pk)], "kwargs": {}}  # an id, nothing else
    assert task.task_path == "kenshin.core.jobs.execute"

    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0)

    ok.refresh_from_db()
    bad.refresh_from_db()
    assert (ok.status, ok.result, ok.done) == (
        JobRun.Status.SUCCEEDED,
        {"rows": 3, "skipped": 0},
        0,
    )
    assert ok.stage == "後片付け"
    assert bad.status == JobRun.Status.FAILED
    assert bad.message == jobs.UNEXPECTED.format(ref=bad.pk)
    assert DBTaskResult.objects.get(id=ok.task_id).status == "SUCCESSFUL"
    failed = DBTaskResult.objects.get(id=bad.task_id)
    assert failed.status == "FAILED"
    assert failed.exception_class_path == "kenshin.core.jobs.JobFailed"
    assert SECRET not in failed.traceback and "RuntimeError" not in failed.traceback


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_others_while_the_job_holds_a_transaction_on_default():
    _seen_by_others.clear()
    run = jobs.start_job("coretest.long_transaction", "長い処理", {}, "system")
    assert _seen_by_others["stage"] == "名簿を作っています"
    assert (_seen_by_others["done"], _seen_by_others["total"]) == (4, 10)
    assert _seen_by_others["status"] == JobRun.Status.RUNNING
    if connections["default"].vendor == "postgresql":
        # The job's own writes on default were not visible yet: its transaction was open.
        assert _seen_by_others["sessions"] == 0
    assert run.status == JobRun.Status.SUCCEEDED
    assert Session.objects.filter(session_key="job-test").count() == 1
    close_old_connections()


@pytest.mark.django_db
def test_run_job_from_the_cli_prints_the_report_and_records_the_run():
    err = io.StringIO()
    run = jobs.run_job("coretest.count", "数える処理", {"n": 4}, "cli", stream=err)
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.requested_by == "cli"
    assert run.task_id == ""  # never went through the queue
    assert "数える処理: 完了しました。" in err.getvalue()
    failed = jobs.run_job("coretest.refuse", "名簿", {"fiscal_year": 2030}, "cli", stream=err)
    assert failed.status == JobRun.Status.FAILED
    assert "2030年度の事業の定義がありません" in err.getvalue()


@pytest.mark.django_db
def test_a_stopped_worker_leaves_a_failed_run_not_a_running_one():
    with pytest.raises(SystemExit):
        jobs.run_job("coretest.stopped", "止まる", {}, "cli")
    run = JobRun.objects.get(kind="coretest.stopped")
    assert (run.status, run.message) == (JobRun.Status.FAILED, jobs.INTERRUPTED)


@pytest.mark.django_db
def test_jobs_command_lists_and_abandons(settings):
    settings.TASKS = DATABASE_BACKEND
    run = jobs.start_job("coretest.count", "止まったままの処理", {"n": 1}, "system")
    out = io.StringIO()
    call_command("jobs", "list", "--active", stdout=out)
    assert str(run.pk) in out.getvalue() and "待機中" in out.getvalue()
    call_command("jobs", "abandon", str(run.pk), stdout=io.StringIO())
    run.refresh_from_db()
    assert (run.status, run.message) == (JobRun.Status.FAILED, jobs.ABANDONED)
    with pytest.raises(CommandError, match="すでに終わって"):
        call_command("jobs", "abandon", str(run.pk), stdout=io.StringIO())
    with pytest.raises(CommandError, match="ありません"):
        call_command("jobs", "abandon", "nosuchjobnosuchjobab", stdout=io.StringIO())


def test_progress_line_without_a_known_total_shows_no_percentage():
    from kenshin.core.progress import ProgressLine

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    line = ProgressLine("読み込み", None, out, unit="件")
    line.started -= 5  # as if it had run for 5 s
    line.update(1234, 1234)
    assert "1,234件" in out.getvalue() and "%" not in out.getvalue()
    line.finish(1234)
    assert "100%" in out.getvalue().rsplit("\r", 1)[-1]


@pytest.mark.django_db
def test_a_queued_run_of_a_kind_this_version_lacks_fails_with_a_message():
    now = clock.now()
    run = JobRun.objects.create(
        kind="coretest.gone",
        label="古い処理",
        requested_by="system",
        created_at=now,
        updated_at=now,
    )
    with pytest.raises(jobs.JobFailed):
        jobs.execute.call(run.pk)
    run.refresh_from_db()
    assert (run.status, run.message) == (JobRun.Status.FAILED, jobs.UNKNOWN_KIND)
    # Delivered again: the finished run is left as it is.
    assert jobs.execute.call(run.pk) == {"status": "failed"}
