"""Tables of the result intake: the import batch, its staged rows, saved column profiles.

Why staged rows (ScreenIT's staged result sets, reference/anchors.md): a clinic's file is
read, checked and matched once, into rows staff can preview, correct (quarantine) and commit
later — by another person when the file is large. Nothing reaches the exam table until the
commit, which reads the staged rows, not the file, in one transaction.
"""

from __future__ import annotations

from django.db import models

from kenshin.core.fields import code_field as _code


class BatchState(models.TextChoices):
    UPLOADED = "uploaded", "受付"
    STAGING = "staging", "確認中"
    STAGED = "staged", "確認済み（確定待ち）"
    REFUSED = "refused", "読めないファイル"
    DUPLICATE = "duplicate", "取込済みのファイル"
    COMMITTED = "committed", "確定済み"
    DISCARDED = "discarded", "取消"


class CommitMode(models.TextChoices):
    ALL = "all", "すべての行（エラーがあれば確定しない）"
    VALID_ONLY = "valid_only", "正しい行だけ（残りはエラーファイルへ）"


class RowStatus(models.TextChoices):
    NEW = "new", "新規"
    UPDATED = "updated", "更新"
    UNCHANGED = "unchanged", "変更なし"
    ERROR = "error", "エラー"
    QUARANTINED = "quarantined", "照合保留"
    REJECTED = "rejected", "取り込まない（職員の判断）"


class FileKind(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel ブック"
    FHIR = "fhir", "FHIR（自治体検診の電子的様式）"


class ImportBatch(models.Model):
    """One uploaded file and where it is in upload → stage (parse, validate, match) → commit."""

    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("契約年度")
    sender_institution = models.CharField(
        "送付元の医療機関コード",
        max_length=10,
        blank=True,
        help_text="医師会など複数機関の場合は空",
    )
    file_name = models.CharField("ファイル名", max_length=255)
    stored_name = models.CharField("保存名", max_length=64, unique=True)
    sha256 = models.CharField("内容のハッシュ", max_length=64, db_index=True)
    size = models.PositiveBigIntegerField("大きさ（バイト）")
    kind = models.CharField("形式", max_length=10, choices=FileKind.choices)
    encoding = models.CharField("文字コード", max_length=20, blank=True)
    profile = models.CharField("列の対応表", max_length=60, blank=True)
    header = models.JSONField("元の見出し", default=list)
    columns = models.JSONField("読んだ列（見出しの順）", default=list)
    state = models.CharField(
        "状態", max_length=12, choices=BatchState.choices, default=BatchState.UPLOADED
    )
    message = models.TextField("メッセージ", blank=True)
    counts = models.JSONField("件数", default=dict)
    uploaded_by = models.CharField("受付者", max_length=150)
    uploaded_at = models.DateTimeField("受付日時")
    staged_at = models.DateTimeField("確認日時", null=True, blank=True)
    approved_by = models.CharField("承認者", max_length=150, blank=True)
    approved_at = models.DateTimeField("承認日時", null=True, blank=True)
    commit_mode = models.CharField(
        "確定の方法", max_length=12, choices=CommitMode.choices, blank=True
    )
    committed_by = models.CharField("確定者", max_length=150, blank=True)
    committed_at = models.DateTimeField("確定日時", null=True, blank=True)
    job_id = models.CharField("処理の番号", max_length=40, blank=True)

    class Meta:
        verbose_name = "取込バッチ"
        verbose_name_plural = "取込バッチ"
        indexes = [models.Index(fields=["municipality_code", "-uploaded_at"], name="intake_recent")]

    def __str__(self) -> str:
        return f"取込 {self.pk} {self.file_name}"


class StagedRow(models.Model):
    """One row of a batch after checking and matching, waiting for the commit.

    New and updated rows carry the exam in the exam table's own columns (below), which the
    commit copies with one INSERT … SELECT. ``fact``: for an updated row, the values the
    correction writes (``diff`` says which, against what); for a quarantined row, the row's
    cells ({"cells": …}) to check again for the person staff choose. ``raw``: the row as the
    file had it — kept for rows that need a person (errors, quarantine, flags) and for the
    error file. ``problems``: [{column, value, message}] in Japanese. ``candidates``: 宛名番号
    staff may choose from in quarantine.
    """

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="rows")
    row_no = models.PositiveIntegerField("行")
    status = models.CharField("状態", max_length=12, choices=RowStatus.choices)
    atena_no = models.CharField("宛名番号", max_length=15, blank=True)
    method = models.CharField("検査方法", max_length=30, blank=True)
    exam_id = models.BigIntegerField("更新する受診", null=True, blank=True)
    fact = models.JSONField("取り込む値", null=True, blank=True)
    diff = models.JSONField("更新の差分", null=True, blank=True)
    raw = models.JSONField("元の行", null=True, blank=True)
    problems = models.JSONField("エラー・保留の理由", null=True, blank=True)
    flags = models.JSONField("注意（数式のような値など）", null=True, blank=True)
    candidates = models.JSONField("候補の宛名番号", null=True, blank=True)
    resolved_by = models.CharField("解決した職員", max_length=150, blank=True, db_default="")
    resolved_at = models.DateTimeField("解決日時", null=True, blank=True)
    # The exam as it will be written (new and updated rows), in the exam table's own terms:
    # the commit copies new rows with one INSERT … SELECT (screening.insert_exams_from).
    programme = models.CharField("検診事業", max_length=20, blank=True, db_default="")
    exam_date = models.DateField("受診日", null=True, blank=True)
    setting = models.CharField("検診方式", max_length=10, blank=True, db_default="")
    institution_code = models.CharField("医療機関コード", max_length=10, blank=True, db_default="")
    results = models.JSONField("結果", null=True, blank=True)
    smoking_index = models.PositiveIntegerField("喫煙指数", null=True, blank=True)
    follow_up_due = models.DateField("追跡検査の時期", null=True, blank=True)
    needs_seiken = models.BooleanField("要精検", default=False, db_default=False)
    hpv_follow_up = models.BooleanField("HPV 追跡検査", default=False, db_default=False)
    voucher_no = models.CharField("受診券番号", max_length=20, blank=True, db_default="")
    coupon_no = models.CharField("クーポン番号", max_length=16, blank=True, db_default="")
    place = models.CharField("検診場所", max_length=100, blank=True, db_default="")
    age_at_exam = models.PositiveSmallIntegerField("受診時年齢", null=True, blank=True)
    fy_end_age = models.PositiveSmallIntegerField("年度末年齢", null=True, blank=True)
    complication = models.CharField("偶発症", max_length=200, blank=True, db_default="")
    billing_category = models.CharField("請求区分", max_length=20, blank=True, db_default="")
    billing_month = models.DateField("請求月", null=True, blank=True)
    seiken = models.JSONField("精密検査の報告（ファイルにあれば）", null=True, blank=True)

    class Meta:
        verbose_name = "取込行"
        verbose_name_plural = "取込行"
        constraints = [
            models.UniqueConstraint(fields=["batch", "row_no", "method"], name="intake_row_once")
        ]
        indexes = [models.Index(fields=["batch", "status"], name="intake_row_status")]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.row_no}"


class StagedFrame(models.Model):
    """A batch's clean new rows, staged together as one Parquet table (intake/columnar.py).

    Why not one StagedRow each: a clinic's file is mostly rows with nothing to look at, and
    writing 300,000 staged rows cost as much as writing the exams themselves (WAL, three
    indexes; 1.5 s on PostgreSQL even with five columns). The rows here are in StagedRow's own
    columns (``pipeline._ALL_FIELDS``), status new; the commit copies them to the exam table
    with the batch's other new rows, and the preview pages read them like the rest. Written in
    the staging's transaction, with the batch's state, so a batch never has half of them.
    """

    batch = models.OneToOneField(ImportBatch, on_delete=models.CASCADE, related_name="frame")
    rows = models.PositiveIntegerField("行数")
    data = models.BinaryField("行（Parquet）")

    class Meta:
        verbose_name = "取込行（まとめて）"
        verbose_name_plural = "取込行（まとめて）"

    def __str__(self) -> str:
        return f"{self.batch_id}: {self.rows} 行"


class ColumnProfile(models.Model):
    """A clinic's own column layout, saved by name: their header → our column key."""

    municipality_code = _code("団体コード", 6)
    name = models.CharField("名前", max_length=60)
    description = models.CharField("説明", max_length=200, blank=True)
    mapping = models.JSONField("列の対応（ファイルの見出し → 項目）")
    values = models.JSONField("値の読み替え（項目 → {ファイルの値: 値}）", default=dict)
    updated_by = models.CharField("更新者", max_length=150)
    updated_at = models.DateTimeField("更新日時")

    class Meta:
        verbose_name = "列の対応表"
        verbose_name_plural = "列の対応表"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "name"], name="intake_profile_name"
            )
        ]

    def __str__(self) -> str:
        return self.name
