"""The resident register mirror (住民記録), keyed by 宛名番号 — never by 個人番号.

Each row of ResidentVersion is the state of one person from one 異動 until the next
(valid_from ≤ D < valid_to; valid_to NULL = current). One table therefore serves three needs
with plain indexed queries: the current register (valid_to IS NULL), the register as of any
date D (one range predicate), and each person's 異動 history (their versions in order).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from kenshin.core.fields import BinaryCollationCharField
from kenshin.core.fields import code_field as _code

__all__ = ["BinaryCollationCharField"]


class ResidentStatus(models.TextChoices):
    RESIDENT = "resident", "住民"
    MOVED_OUT = "moved_out", "転出"
    DECEASED = "deceased", "死亡"
    NON_RESIDENT = "non_resident", "住登外"


class ChangeKind(models.TextChoices):
    FULL_LOAD = "full_load", "全件取込"
    MOVE_IN = "move_in", "転入"
    BIRTH = "birth", "出生"
    MOVE_OUT = "move_out", "転出"
    DEATH = "death", "死亡"
    NAME_CHANGE = "name_change", "氏名変更"
    ADDRESS_CHANGE = "address_change", "住所変更"
    HOUSEHOLD_CHANGE = "household_change", "世帯変更"
    OFFICIAL_CORRECTION = "official_correction", "職権修正"


class Sex(models.IntegerChoices):
    """住基 code: 1 男, 2 女."""

    MALE = 1, "男"
    FEMALE = 2, "女"


class InsuranceCategory(models.TextChoices):
    NATIONAL_HEALTH_INSURANCE = "national_health_insurance", "市国保"
    LATE_ELDERLY = "late_elderly", "後期高齢"
    OTHER = "other", "それ以外"


class TaxCategory(models.TextChoices):
    TAXED = "taxed", "課税"
    EXEMPT = "exempt", "非課税"
    PUBLIC_ASSISTANCE = "public_assistance", "生活保護"


class FeedKind(models.TextChoices):
    RESIDENT_FULL = "resident_full", "住民記録（全件）"
    RESIDENT_DIFF = "resident_diff", "住民記録（異動）"
    FISCAL_CATEGORIES = "fiscal_categories", "年度別区分"


class FeedImport(models.Model):
    """One committed feed file. Its content hash makes a second import of the same file a no-op."""

    municipality_code = models.CharField("団体コード", max_length=6)
    sha256 = models.CharField("内容ハッシュ", max_length=64)
    file_name = models.CharField("ファイル名", max_length=255)
    kind = models.CharField("種別", max_length=24, choices=FeedKind.choices)
    encoding = models.CharField("文字コード", max_length=16)
    row_count = models.PositiveIntegerField("行数")
    inserted = models.PositiveIntegerField("新規", default=0)
    changed = models.PositiveIntegerField("変更", default=0)
    unchanged = models.PositiveIntegerField("変更なし", default=0)
    # 住民状態 → number of current records after this import. Counting a million-row register
    # takes about a second; it changes only here, so the home page reads it from the last row.
    register_counts = models.JSONField("取込後の件数", default=dict)
    imported_by = models.CharField("取込者", max_length=150)
    started_at = models.DateTimeField("開始")
    finished_at = models.DateTimeField("終了")

    class Meta:
        verbose_name = "住民記録取込"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "sha256"], name="residents_feed_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_kind_display()})"


CURRENT = Q(valid_to__isnull=True)


class ResidentVersion(models.Model):
    """A person's register record from one 異動 (valid_from) until the next (valid_to)."""

    municipality_code = _code("団体コード", 6)
    atena_no = _code("宛名番号", 15)
    valid_from = models.DateField("異動日")
    valid_to = models.DateField("次の異動日", null=True, blank=True)
    change_kind = models.CharField("異動区分", max_length=24, choices=ChangeKind.choices)
    receipt_date = models.DateField("届出日")
    name = models.CharField("氏名", max_length=100)
    name_kana = models.CharField("氏名カナ", max_length=100)
    kana_key = BinaryCollationCharField("カナ検索キー", max_length=100)
    name_key = BinaryCollationCharField("氏名検索キー", max_length=100)
    sex = models.PositiveSmallIntegerField("性別", choices=Sex.choices)
    birth_date = models.DateField("生年月日")
    postal_code = models.CharField("郵便番号", max_length=7, blank=True)
    address = models.CharField("住所", max_length=200)
    address_annex = models.CharField("方書", max_length=100, blank=True)
    phone = models.CharField("電話番号", max_length=20, blank=True)
    household_no = _code("世帯番号", 15)
    relationship = models.CharField("続柄", max_length=20)
    household_head_name = models.CharField("世帯主氏名", max_length=100)
    status = models.CharField("住民状態", max_length=16, choices=ResidentStatus.choices)
    # Provenance only. No index (nothing looks versions up by file) and no database-level
    # constraint: a deferred foreign-key check per row costs ~4 s per million rows on
    # PostgreSQL, and the FeedImport row is created in the same transaction and is never
    # deleted (PROTECT in the ORM; test_feed_provenance_is_complete checks the invariant).
    feed = models.ForeignKey(
        FeedImport,
        on_delete=models.PROTECT,
        verbose_name="取込",
        db_index=False,
        db_constraint=False,
    )
    source_row = models.PositiveIntegerField("取込行")

    class Meta:
        verbose_name = "住民記録"
        verbose_name_plural = "住民記録"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "atena_no"],
                condition=CURRENT,
                name="residents_one_current_version",
            ),
        ]
        # Search indexes cover only current versions: staff search the register as it is.
        # Every name search carries the birth date (services.search_residents), so one
        # (birth_date, kana_key) index serves kana and kanji-name searches alike; a kana-only
        # or name-only index would cost seconds on every full load and serve no screen.
        indexes = [
            models.Index(
                fields=["municipality_code", "birth_date", "kana_key"],
                condition=CURRENT,
                name="res_cur_birth_kana",
            ),
            models.Index(
                fields=["municipality_code", "household_no"],
                condition=CURRENT,
                name="res_cur_household",
            ),
            models.Index(
                fields=["municipality_code", "atena_no", "valid_from"], name="res_history"
            ),
        ]

    def __str__(self) -> str:
        return f"宛名番号 {self.atena_no}（{self.valid_from}〜）"


class FiscalCategory(models.Model):
    """保険区分 and 課税区分 of a person for one fiscal year (they drive fees and exemptions)."""

    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    atena_no = _code("宛名番号", 15)
    insurance_category = models.CharField(
        "保険区分", max_length=32, choices=InsuranceCategory.choices
    )
    tax_category = models.CharField("課税区分", max_length=24, choices=TaxCategory.choices)
    feed = models.ForeignKey(  # as ResidentVersion.feed
        FeedImport,
        on_delete=models.PROTECT,
        verbose_name="取込",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        verbose_name = "年度別区分"
        verbose_name_plural = "年度別区分"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "fiscal_year", "atena_no"],
                name="residents_category_once_per_year",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 {self.atena_no}"


class FlagKind(models.TextChoices):
    """Why views of a person are reported to the access review (LOG-07)."""

    DV = "dv", "DV等支援措置"
    VIP = "vip", "要配慮（著名人等）"


class ResidentFlag(models.Model):
    """A person whose record staff should open only with good reason; every view is reviewed.

    DV等支援措置 comes from 住民記録 (the 支援措置 list); VIP is set by the 課長.
    """

    municipality_code = _code("団体コード", 6)
    atena_no = _code("宛名番号", 15)
    kind = models.CharField("種類", max_length=10, choices=FlagKind.choices)
    valid_from = models.DateField("開始日")
    valid_to = models.DateField("終了日", null=True, blank=True)
    note = models.CharField("備考", max_length=200, blank=True)

    class Meta:
        verbose_name = "閲覧注意の住民"
        verbose_name_plural = "閲覧注意の住民"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "atena_no", "kind", "valid_from"],
                name="residents_flag_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.atena_no}"


class ResidentLink(models.Model):
    """A resident's 団体内統合宛名番号, as the 番号連携サーバ issued it — never the 個人番号.

    Written in the same transaction as the import that registered the resident (set-based,
    per batch), so a resident in the register has a link unless the import predates linkage
    (`kenshin residents link` fills those in). The link is a copy for display and joins; the
    linkage server is the authority (after a merge the views refresh it from there).
    """

    municipality_code = _code("団体コード", 6)
    atena_no = _code("宛名番号", 15)
    unified_atena_no = _code("団体内統合宛名番号", 15)
    linked_at = models.DateTimeField("連携日時")

    class Meta:
        verbose_name = "統合宛名番号の連携"
        verbose_name_plural = "統合宛名番号の連携"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "atena_no"], name="residents_link_once"
            )
        ]

    def __str__(self) -> str:
        return f"宛名番号 {self.atena_no} → 統合宛名番号 {self.unified_atena_no}"
