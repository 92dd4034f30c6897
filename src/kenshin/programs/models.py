"""Stored catalogue versions: one document per municipality × fiscal year × version.

Why a document and not a table per concept: a year's catalogue is reviewed, copied forward and
adjusted as a whole, and every roster build records which version it used. Each save is a new
version (never an update), so "which rules made this roster" always has an answer.
"""

from __future__ import annotations

from django.db import models


class CatalogueVersion(models.Model):
    municipality_code = models.CharField("団体コード", max_length=6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    version = models.PositiveIntegerField("版")
    document = models.JSONField("定義")
    source = models.CharField("出所", max_length=200)  # "file:kure-2025.toml", "copy:2025", "edit"
    note = models.CharField("変更理由", max_length=500, blank=True)
    created_by = models.CharField("作成者", max_length=150)
    created_at = models.DateTimeField("作成日時")

    class Meta:
        verbose_name = "検診事業の定義"
        verbose_name_plural = "検診事業の定義"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "fiscal_year", "version"],
                name="programs_catalogue_version_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 第{self.version}版"
