"""The audit log: append-only, hash-chained (LOG-01, LOG-02), and the review tasks it raises.

Why ``detail`` is text and not JSON: the hash covers the exact bytes stored; PostgreSQL's
jsonb would reorder keys and the chain could not be re-computed. Why no foreign keys: an
audit row must outlive the user or object it names, and must never block their deletion.
"""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    """One event. ``seq`` is the position in the chain (1, 2, 3 … without gaps)."""

    seq = models.BigIntegerField("番号", primary_key=True)
    at = models.DateTimeField("日時")
    municipality_code = models.CharField(max_length=6)
    event = models.CharField("操作", max_length=30)
    user_id = models.BigIntegerField("利用者ID", null=True, blank=True)
    username = models.CharField("利用者", max_length=150)
    roles = models.CharField("ロール", max_length=300, blank=True)
    address = models.CharField("端末アドレス", max_length=64, blank=True)
    break_glass = models.BooleanField("緊急アクセス中", default=False)
    function = models.CharField("機能", max_length=80, blank=True)
    subject_kind = models.CharField("対象の種類", max_length=30, blank=True)
    subject_ref = models.CharField("対象", max_length=100, blank=True)
    purpose = models.CharField("利用目的", max_length=40, blank=True)
    result = models.CharField("結果", max_length=10)
    detail = models.TextField("詳細", blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "監査ログ"
        verbose_name_plural = "監査ログ"
        indexes = [
            models.Index(fields=["subject_kind", "subject_ref", "at"], name="audit_subject"),
            models.Index(fields=["user_id", "at"], name="audit_user"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.seq} {self.event} {self.username}"


class ReviewStatus(models.TextChoices):
    OPEN = "open", "未確認"
    CLOSED = "closed", "確認済み"


class ReviewTask(models.Model):
    """Something a 課長 or auditor must look at and sign off (break-glass use, anomalies)."""

    kind = models.CharField("種類", max_length=30)
    subject_kind = models.CharField(max_length=30, blank=True)
    subject_ref = models.CharField(max_length=100, blank=True)
    reason = models.CharField("内容", max_length=300)
    created_at = models.DateTimeField("作成日時")
    created_by_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN
    )
    closed_by_id = models.BigIntegerField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField("確認結果", blank=True)

    class Meta:
        verbose_name = "点検タスク"
        verbose_name_plural = "点検タスク"
        indexes = [models.Index(fields=["status", "created_at"], name="review_open")]

    def __str__(self) -> str:
        return f"{self.kind} {self.reason}"


class ChainHead(models.Model):
    """The chain's newest row (seq and hash), kept in a single row with ``id`` 1.

    Why: ``append`` locks and reads the head in one statement (``UPDATE … RETURNING``), which
    serialises concurrent writers without a separate lock and saves round trips (measured in
    bench/audit_append.py). It is a cache, never a source of truth: ``verify`` walks the rows
    themselves and only compares the head with the last row it finds.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "監査ログの末尾"
        verbose_name_plural = "監査ログの末尾"

    def __str__(self) -> str:
        return f"{self.seq} {self.hash}"
