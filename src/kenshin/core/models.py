"""core's one table: the progress record of a background job (core.jobs).

Why in core: every app's long work (roster builds, letters, imports, reports) reports progress
the same way, and the screens and the CLI read it the same way; it is not business data. It
lives in the ``jobs`` database (settings.APP_DATABASES), next to the task queue, so a job can
commit progress while its own work runs in one long transaction on ``default``.

Nothing here is personal data: ``params`` hold ids and codes (a fiscal year, a programme code),
``result`` holds counts, ``message`` a Japanese summary written by the job.
"""

from __future__ import annotations

import secrets
import string

from django.db import models
from django.db.models import Q

ID_LENGTH = 20


def new_job_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(ID_LENGTH))


class JobRun(models.Model):
    """One run of one job kind, from the request to its report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "待機中"
        RUNNING = "running", "実行中"
        SUCCEEDED = "succeeded", "完了"
        FAILED = "failed", "失敗"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    # A random id of 20 lowercase letters (94 bits): it appears in URLs (/jobs/<id>/), logs and
    # messages, and must tell nothing, not even a count. Letters only, because a UUID's digit
    # groups (…-1234-5678-9012-…) sometimes form a valid-looking 個人番号, which the log masking
    # would hide and the leak guard would report.
    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=new_job_id, editable=False
    )
    kind = models.CharField(max_length=64)  # "screening.roster_build"
    label = models.CharField(max_length=200)  # Japanese, shown on screen and in the CLI
    params = models.JSONField(default=dict, blank=True)  # ids and codes, never personal data
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=200, blank=True)  # what is being done now (Japanese)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)  # None: not known (yet)
    message = models.TextField(blank=True)  # the report: a Japanese summary or error
    result = models.JSONField(default=dict, blank=True)  # counts, {"entries": 1234, ...}
    requested_by = models.CharField(max_length=150)  # user name, or "system"/"cli:<user>"
    task_id = models.CharField(max_length=64, blank=True)  # the django-tasks result id
    # Set only for kinds declared unique: at most one queued/running run per kind + params.
    dedupe_key = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 - NULL: no key
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()  # last progress write: a run that stops moving shows it

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["kind", "-created_at"], name="core_jobrun_kind_idx"),
            models.Index(fields=["requested_by", "-created_at"], name="core_jobrun_user_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(status__in=["queued", "running"]),
                name="core_jobrun_one_active_per_key",
            ),
            models.CheckConstraint(
                condition=Q(done__gte=0) & (Q(total__isnull=True) | Q(total__gte=0)),
                name="core_jobrun_counts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label}（{self.get_status_display()}）"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int | None:
        """0–100, or None while the total is unknown."""
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.total:
            return None
        return max(0, min(100, self.done * 100 // self.total))

    @property
    def report_rows(self) -> list[tuple[str, object]]:
        """(Japanese label, count) for the result keys its kind labels (for the screen)."""
        from kenshin.core import jobs

        return jobs.report_rows(self)
