"""Background jobs with a progress record: one API for the screen, the CLI and the worker.

Why: long work (roster builds, letters, imports, reports) must show a progress bar on screen, a
progress line on the CLI and a report at the end, and must be safe to run again (DESIGN.md).
An app declares its job once, in its ``jobs.py``::

    from kenshin.core import jobs

    @jobs.job("screening.roster_build", label="対象者名簿の作成", function="screening.roster_build",
              unique=True, result_labels={"entries": "対象者", "excluded": "除外"})
    def build_roster(reporter: jobs.JobReporter, *, fiscal_year: int) -> dict[str, int]:
        reporter.stage("住民記録を読んでいます", total=count)
        ...
        reporter.advance(5_000)
        return {"entries": 1234, "excluded": 5}       # or reporter.finish(result, message)

and starts it from a view (queued for ``kenshin db_worker``) or runs it from a command
(inline, with a progress line on stderr)::

    run = jobs.start_job("screening.roster_build", "2025年度 対象者名簿の作成",
                         {"fiscal_year": 2025}, request)         # -> JobRun (queued)
    run = jobs.run_job("screening.roster_build", "…", {"fiscal_year": 2025}, "cli",
                       stream=sys.stderr)                        # -> JobRun (finished)

Where progress goes, and why it shows while the job's transaction is open
------------------------------------------------------------------------
The progress record (:class:`~kenshin.core.models.JobRun`) and the django-tasks queue live in
their own database alias ``jobs`` (settings.APP_DATABASES). The reporter writes there with
short autocommit UPDATEs (at most every ``interval`` seconds), on that alias's own
connection. A job may therefore do all its work in one ``transaction.atomic()`` on
``default`` — all or nothing, as DESIGN.md asks — and the screen still sees every step: the
progress writes are not part of that transaction. (Written through ``default`` they would be
invisible until the end; on SQLite a second connection to the same file could not even
write while the job holds its write lock.) If the job fails, its work rolls back and the
record keeps the stage it reached, with the failure message.

Failures: raise :class:`JobError` with a Japanese message people can act on (no personal
data); it becomes the run's message. Anything else becomes a fixed message naming the run,
and the log gets the exception's class and frames — never its text, which may quote data
(an IntegrityError shows key values). The same sanitised failure is all the task queue keeps.

Restart and idempotence: a run that failed is started again with the same kind and params;
the job's own work must make a second run harmless (the roster build replaces its rows). A
kind declared ``unique`` has at most one queued or running run per params: starting it again
meanwhile returns the run already there (a double click does not build twice). A run left
"running" by a killed worker is closed with ``kenshin jobs abandon ID``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.db import IntegrityError, transaction
from django.utils.module_loading import autodiscover_modules
from django_tasks import task
from django_tasks.backends.immediate import ImmediateBackend

from kenshin.core import audit, clock, mynumber
from kenshin.core.models import ID_LENGTH, JobRun
from kenshin.core.progress import ProgressLine

__all__ = [
    "JobError",
    "JobKind",
    "JobReporter",
    "JobRun",
    "abandon",
    "all_kinds",
    "can_view",
    "get_run",
    "job",
    "kind_of",
    "report_rows",
    "run_job",
    "start_job",
]

logger = logging.getLogger("kenshin.jobs")

#: The alias holding JobRun and the task queue (settings.APP_DATABASES routes core there).
DB = "jobs"
#: Shown when a job fails in a way its author did not foresee.
UNEXPECTED = (
    "処理の途中で予期しない誤りが起きたため、中止しました（変更は取り消されています）。"
    "もう一度実行しても同じ場合は、システム管理者にジョブ番号 {ref} をお伝えください。"
)
INTERRUPTED = "作業プロセスが停止したため、処理を中断しました。もう一度実行してください。"
ABANDONED = "作業プロセスからの応答がないため、中断として扱いました。もう一度実行してください。"
UNKNOWN_KIND = (
    "この種類の処理は、いまの版のシステムにはありません。システム管理者に連絡してください。"
)
MAX_MESSAGE = 2000
MAX_PARAM_TEXT = 100
_RUN_ID = re.compile(f"[a-z]{{{ID_LENGTH}}}")


class JobError(Exception):
    """A failure the job foresaw: ``message`` (Japanese, no personal data) is the run's report."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class JobFailed(Exception):
    """What the task queue records for a failed run: the run's id and kind, nothing else."""


WorkFunction = Callable[..., Mapping[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    """One kind of job, declared with :func:`job` in an app's ``jobs.py``."""

    kind: str  # "<app>.<what>", e.g. "screening.roster_build"
    label: str  # Japanese default label
    function: str  # the permission code whose holders may watch any run of this kind
    work: WorkFunction = field(compare=False)
    unique: bool = False
    result_labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    def start(
        self, actor: Any, params: Mapping[str, Any] | None = None, *, label: str = ""
    ) -> JobRun:
        return start_job(self.kind, label or self.label, params or {}, actor)

    def run(
        self,
        actor: Any,
        params: Mapping[str, Any] | None = None,
        *,
        label: str = "",
        stream: TextIO | None = None,
    ) -> JobRun:
        return run_job(self.kind, label or self.label, params or {}, actor, stream=stream)


_KINDS: dict[str, JobKind] = {}
_discovered = False


def job(
    kind: str,
    *,
    label: str,
    function: str,
    unique: bool = False,
    result_labels: Mapping[str, str] | None = None,
) -> Callable[[WorkFunction], JobKind]:
    """Declare a job kind; the decorated function is its work.

    The work is called as ``work(reporter, **params)`` and returns the result counts (a dict,
    shown with ``result_labels`` on screen), or calls ``reporter.finish`` / ``reporter.fail``
    itself. ``function`` is the permission code of the function that may watch any run of
    this kind (the user who started a run may always watch it).
    """
    if "." not in kind or len(kind) > 64:
        raise ValueError(f"job kind must be '<app>.<what>' (64 characters at most): {kind!r}")
    if "." not in function:
        raise ValueError(f"function code must be '<app>.<verb>': {function!r}")

    def declare(work: WorkFunction) -> JobKind:
        declared = JobKind(kind, label, function, work, unique, dict(result_labels or {}))
        existing = _KINDS.get(kind)
        if existing is not None and existing.work is not work and existing != declared:
            raise ValueError(f"job kind {kind!r} declared twice with different meanings")
        _KINDS[kind] = declared
        return declared

    return declare


def _discover() -> None:
    """Import every app's ``jobs.py`` once, so a worker or a view knows every kind."""
    global _discovered
    if not _discovered:
        autodiscover_modules("jobs")
        _discovered = True


def kind_of(kind: str) -> JobKind:
    """The declared kind, or LookupError."""
    if kind not in _KINDS:
        _discover()
    try:
        return _KINDS[kind]
    except KeyError:
        raise LookupError(f"unknown job kind {kind!r}") from None


def all_kinds() -> list[JobKind]:
    """Every declared kind, sorted (for checks and operators' listings)."""
    _discover()
    return [_KINDS[k] for k in sorted(_KINDS)]


# --- starting ---------------------------------------------------------------------------------


def _requested_by(actor: Any) -> str:
    if isinstance(actor, str):
        return audit.neutralise(actor)[:150] or "system"
    return audit.actor_of(actor).username[:150]


def _clean_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """JSON of ids and codes only: short scalars (or lists of them), nothing 個人番号-shaped."""
    if not isinstance(params, Mapping):
        raise TypeError("job params must be a mapping")

    def check(value: Any, where: str) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                check(item, where)
        elif isinstance(value, str):
            if len(value) > MAX_PARAM_TEXT or mynumber.find_all(value):
                raise ValueError(f"{kind}: parameter {where!r} is not an id or a code")
        elif not (value is None or isinstance(value, bool | int | float)):
            raise TypeError(f"{kind}: parameter {where!r} must be JSON (ids and codes only)")

    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{kind}: parameter names must be identifiers: {key!r}")
        check(value, key)
    return json.loads(json.dumps(dict(params), sort_keys=True))


def _dedupe_key(kind: str, params: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]
    return f"{kind}:{digest}"


def _create(kind: JobKind, label: str, params: Mapping[str, Any], actor: Any) -> JobRun | None:
    """Insert the queued run; None when a unique kind already has an active run (see caller)."""
    clean = _clean_params(kind.kind, params)
    now = clock.now()
    try:
        with transaction.atomic(using=DB):
            return JobRun.objects.create(
                kind=kind.kind,
                label=audit.neutralise(label or kind.label)[:200],
                params=clean,
                requested_by=_requested_by(actor),
                dedupe_key=_dedupe_key(kind.kind, clean) if kind.unique else None,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        if not kind.unique:
            raise
        return None


def _active_twin(kind: JobKind, params: Mapping[str, Any]) -> JobRun | None:
    key = _dedupe_key(kind.kind, _clean_params(kind.kind, params))
    return JobRun.objects.filter(dedupe_key=key, status__in=JobRun.ACTIVE).first()


def start_job(kind: str, label: str, params: Mapping[str, Any], actor: Any) -> JobRun:
    """Record a queued run and hand it to the task queue (``kenshin db_worker`` runs it).

    ``actor`` is the request, a user or a name; ``params`` are passed to the work as keyword
    arguments and must be ids and codes only (they are stored and shown to operators). For a
    ``unique`` kind, an active run with the same params is returned instead of a new one.
    Call it after your own transaction on ``default`` has committed: the worker may start at
    once and must see what you wrote. Under the immediate backend (tests) the run has finished
    when this returns.
    """
    declared = kind_of(kind)
    inline = isinstance(execute.get_backend(), ImmediateBackend)
    with transaction.atomic(using=DB):
        run = _create(declared, label, params, actor)
        if run is None:
            twin = _active_twin(declared, params)
            if twin is not None:
                return twin
            # The active run finished between our insert and this look-up: now we may.
            run = _create(declared, label, params, actor)
            if run is None:
                raise JobError("同じ処理の開始が重なりました。もう一度実行してください。")
        if not inline:
            # In the same transaction as the run: the worker never sees one without the other.
            result = execute.enqueue(str(run.pk))
            JobRun.objects.filter(pk=run.pk).update(task_id=str(result.id)[:64])
    if inline:
        result = execute.enqueue(str(run.pk))
        JobRun.objects.filter(pk=run.pk).update(task_id=str(result.id)[:64])
    logger.info("job %s %s queued", run.pk, run.kind)
    run.refresh_from_db()
    return run


def run_job(
    kind: str,
    label: str,
    params: Mapping[str, Any],
    actor: Any,
    *,
    stream: TextIO | None = None,
) -> JobRun:
    """Run a job here and now (the CLI path), recording it like a queued one.

    Progress goes to the record and, if ``stream`` is given (a command's stderr), as a
    progress line; the report is printed at the end. Returns the finished run: check
    ``run.status`` (a command exits non-zero when it is FAILED). For a ``unique`` kind with a
    run already active, raises :class:`JobError` rather than running twice.
    """
    declared = kind_of(kind)
    run = _create(declared, label, params, actor)
    if run is None:
        twin = _active_twin(declared, params)
        ref = f"（ジョブ番号 {twin.pk}）" if twin is not None else ""
        raise JobError(f"同じ処理がすでに実行中です{ref}。終わるまで待ってください。")
    _execute(run, declared, stream=stream)
    run.refresh_from_db()
    return run


@task()
def execute(run_id: str) -> dict[str, str]:
    """The one django-tasks task: run the recorded job ``run_id`` (random letters, nothing else)."""
    run = JobRun.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("job %s: no such run (removed?)", run_id)
        return {"status": "missing"}
    if not run.is_active:
        # Delivered twice (a re-queued task): the run already has its report.
        return {"status": run.status}
    try:
        kind = kind_of(run.kind)
    except LookupError:
        # Queued by a version that had this kind; this one has not (a rollback, a rename).
        JobReporter(run).fail(UNKNOWN_KIND)
        raise JobFailed(f"job {run.pk}: unknown kind {run.kind}") from None
    status = _execute(run, kind, stream=None)
    if status == JobRun.Status.FAILED:
        # No chaining: the queue stores this traceback, and the original's text could quote data.
        raise JobFailed(f"job {run.pk} ({run.kind}) failed; see its record") from None
    return {"status": status}


# --- running ----------------------------------------------------------------------------------


def _execute(run: JobRun, kind: JobKind, *, stream: TextIO | None) -> str:
    """Run ``kind.work`` for ``run``; returns the final status. Never raises for the work's own
    failures (they become the record's report); re-raises only interrupts after recording."""
    now = clock.now()
    claimed = JobRun.objects.filter(pk=run.pk, status__in=JobRun.ACTIVE).update(
        status=JobRun.Status.RUNNING,
        started_at=now,
        updated_at=now,
        finished_at=None,
        stage="",
        done=0,
        total=None,
        message="",
        result={},
    )
    if not claimed:
        return JobRun.objects.values_list("status", flat=True).get(pk=run.pk)
    logger.info("job %s %s started", run.pk, run.kind)
    reporter = JobReporter(run, stream=stream)
    try:
        returned = kind.work(reporter, **run.params)
        if not reporter.closed:
            if returned is not None and not isinstance(returned, Mapping):
                raise TypeError("the work must return a dict of counts or None")
            reporter.finish(returned or {})
    except JobError as exc:
        reporter.fail(exc.message)
    except Exception as exc:
        logger.error(
            "job %s %s failed: %s\n%s",
            run.pk,
            run.kind,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
        )
        reporter.fail(UNEXPECTED.format(ref=run.pk))
    except BaseException:
        # The worker is stopping (SIGTERM twice, Ctrl+C): say so before going.
        reporter.fail(INTERRUPTED)
        raise
    return reporter.status


class JobReporter:
    """What the work function is handed: progress in, report out.

    ``stage(text, total)`` starts a step (its count from 0); ``advance(n)`` / ``set(done)``
    move it; each write is a short autocommit UPDATE on the ``jobs`` alias, at most every
    ``interval`` seconds (a stage change and the end are always written). ``finish`` and
    ``fail`` close the run; the work may also just return its counts.
    """

    def __init__(self, run: JobRun, *, stream: TextIO | None = None, interval: float = 0.5):
        self.run = run
        self.stream = stream
        self.interval = interval
        self.stage_text = ""
        self.done = 0
        self.total: int | None = None
        self.status = JobRun.Status.RUNNING
        self._last_write = 0.0
        self._line: ProgressLine | None = None

    @property
    def requested_by(self) -> str:
        """Who started the run (a user name): the actor for the work's audit events."""
        return self.run.requested_by

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.run.params)

    @property
    def closed(self) -> bool:
        return self.status != JobRun.Status.RUNNING

    def stage(self, text: str, total: int | None = None) -> None:
        """Begin a step: ``text`` (Japanese, e.g. "住民記録を読んでいます"), ``total`` if known."""
        self._end_line()
        self.stage_text = audit.neutralise(text)[:200]
        self.total = None if total is None else max(int(total), 0)
        self.done = 0
        if self.stream is not None:
            self._line = ProgressLine(
                f"{self.run.label}: {self.stage_text}", self.total, self.stream, unit="件"
            )
        logger.info("job %s %s stage: %s", self.run.pk, self.run.kind, self.stage_text)
        self._write(force=True)

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current step are done."""
        self.set(self.done + n)

    def set(self, done: int) -> None:
        """The current step has ``done`` units done."""
        self.done = max(int(done), 0)
        if self._line is not None:
            self._line.update(self.done, self.done)
        self._write()

    def finish(self, result: Mapping[str, Any] | None = None, message: str = "") -> None:
        """Close the run as succeeded, with its counts and a Japanese summary."""
        if self.closed:
            return
        self._end_line()
        clean = json.loads(json.dumps(dict(result or {}), sort_keys=True))
        self.status = JobRun.Status.SUCCEEDED
        self._close(message or "完了しました。", result=clean)

    def fail(self, message: str) -> None:
        """Close the run as failed with ``message`` (Japanese, no personal data, no traceback)."""
        if self.status == JobRun.Status.FAILED:
            return
        self._end_line()
        self.status = JobRun.Status.FAILED
        self._close(message or "失敗しました。")

    # internals

    def _end_line(self) -> None:
        if self._line is not None:
            self._line.finish(self.done)
            self._line = None

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        JobRun.objects.filter(pk=self.run.pk).update(
            stage=self.stage_text, done=self.done, total=self.total, updated_at=clock.now()
        )

    def _close(self, message: str, *, result: dict[str, Any] | None = None) -> None:
        text = mynumber.mask_in_text(str(message))[:MAX_MESSAGE]
        now = clock.now()
        fields: dict[str, Any] = {
            "status": self.status,
            "stage": self.stage_text,
            "done": self.done,
            "total": self.total,
            "message": text,
            "finished_at": now,
            "updated_at": now,
        }
        if result is not None:
            fields["result"] = result
        JobRun.objects.filter(pk=self.run.pk).update(**fields)
        logger.info("job %s %s %s", self.run.pk, self.run.kind, self.status)
        if self.stream is not None:
            self.stream.write(f"{self.run.label}: {text}\n")
            self.stream.flush()


# --- reading ----------------------------------------------------------------------------------


def get_run(run_id: str) -> JobRun | None:
    """The run, or None (also for a malformed id)."""
    if not _RUN_ID.fullmatch(str(run_id)):
        return None
    return JobRun.objects.filter(pk=run_id).first()


def can_view(user: Any, run: JobRun) -> bool:
    """The user who started the run, or anyone holding the function its kind declares."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.get_username() == run.requested_by:
        return True
    try:
        function = kind_of(run.kind).function
    except LookupError:
        return False
    return bool(user.has_perm(function))


def report_rows(run: JobRun) -> list[tuple[str, Any]]:
    """(Japanese label, value) for the result counts the kind labels, in declared order."""
    try:
        labels = kind_of(run.kind).result_labels
    except LookupError:
        return []
    return [(label, run.result[key]) for key, label in labels.items() if key in run.result]


def abandon(run_id: str) -> JobRun | None:
    """Close a run left queued or running by a worker that died (SIGKILL, power loss)."""
    run = get_run(run_id)
    if run is None or not run.is_active:
        return run
    now = clock.now()
    JobRun.objects.filter(pk=run.pk, status__in=JobRun.ACTIVE).update(
        status=JobRun.Status.FAILED, message=ABANDONED, finished_at=now, updated_at=now
    )
    logger.warning("job %s %s abandoned", run.pk, run.kind)
    run.refresh_from_db()
    return run
