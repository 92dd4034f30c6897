"""Roster entries (対象者) per person × method × fiscal year, and the facts they are built from.

Which rows exist: a roster entry is written for every person who, on the base date, is a
resident in the method's target population — the sex and the age band of the catalogue, the
節目 ages of a milestone programme, the 喫煙指数 of 喀痰細胞診 — whether or not the interval
rule then makes them eligible this year. So the roster holds the named population the
national checklist asks for, with eligible yes/no and the rule that decided; people outside
the population (a man for mammography) get no row, and `kenshin roster explain` says why.
A rebuild never deletes a row: a person who has since moved out or died keeps their entry,
now not eligible with that reason, so letters already sent remain explained.

Columns are narrow on purpose: at a million residents the roster has 4–5 million rows.
"""

from __future__ import annotations

from django.db import models

from kenshin.core.fields import code_field as _code


class RosterBuild(models.Model):
    """One run of the roster build (full build or top-up) and what it changed."""

    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    as_of = models.DateField("基準日")
    catalogue_version = models.PositiveIntegerField("事業定義の版")
    started_at = models.DateTimeField("開始")
    finished_at = models.DateTimeField("終了", null=True, blank=True)
    started_by = models.CharField("実行者", max_length=150)
    # {"inserted": n, "changed": n, "unchanged": n, "left": n, "per_method": {code: eligible}}
    counts = models.JSONField("件数", default=dict)

    class Meta:
        verbose_name = "対象者抽出"
        verbose_name_plural = "対象者抽出"

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 対象者抽出（基準日 {self.as_of}）"


class RosterEntry(models.Model):
    """One person in one method's roster for one fiscal year.

    Keyed by (団体コード, 年度, 検査方法, 宛名番号) itself, with no surrogate id: the rows are
    stored in key order (on SQLite a WITHOUT ROWID table, migration 0003), so a build writes
    each row once instead of a row plus an index entry — about 40% of the build's writes at a
    million residents. A test checks the table keeps that form after later migrations.
    """

    pk = models.CompositePrimaryKey("municipality_code", "fiscal_year", "method", "atena_no")
    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    programme = _code("検診事業", 20)
    method = _code("検査方法", 30)
    atena_no = _code("宛名番号", 15)
    sex = models.PositiveSmallIntegerField("性別")
    age = models.SmallIntegerField("年度末年齢")
    # The decision the rules made (recomputed by every build) …
    computed_eligible = models.BooleanField("判定（規則）")
    computed_reason = models.CharField("理由（規則）", max_length=20)
    # … and the one that counts: the computed one unless staff overrode it (kept by rebuilds).
    eligible = models.BooleanField("対象")
    reason = models.CharField("理由", max_length=20)
    override_eligible = models.BooleanField("職員の判断", null=True, blank=True)
    override_note = models.CharField("判断の理由", max_length=200, blank=True)
    override_by = models.CharField("判断した職員", max_length=150, blank=True)
    override_at = models.DateTimeField("判断日時", null=True, blank=True)
    # 受診不要 (Exclusion) copied from the declaration: off the invitation list, still counted.
    exclusion = models.CharField("受診不要", max_length=20, blank=True)
    # 自己負担 exemption for exams from July (this FY's 課税区分) and April–June (last FY's).
    exemption = models.CharField("免除", max_length=20, blank=True)
    exemption_early = models.CharField("免除（4〜6月）", max_length=20, blank=True)
    coupon_no = models.CharField("クーポン番号", max_length=16, blank=True)
    # The build that first wrote the row, and the last one that changed it (unchanged rows are
    # not rewritten, so a rebuild of an unchanged year writes nothing).
    build = models.ForeignKey(
        RosterBuild, on_delete=models.PROTECT, related_name="+", verbose_name="抽出",
        db_index=False, db_constraint=False,
    )  # fmt: skip
    changed_build = models.PositiveIntegerField("最終変更の抽出")

    class Meta:
        verbose_name = "対象者"
        verbose_name_plural = "対象者"
        # No second index: a person's rows are found through the key with method IN (the
        # year's methods); an index on 宛名番号 alone cost about a quarter of every build.

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 {self.method} {self.atena_no}"


class ExclusionReason(models.TextChoices):
    WORKPLACE = "workplace", "職場等で受診"
    TREATMENT = "treatment", "治療中・経過観察中"
    DECLINED = "declined", "受診を希望しない"
    OTHER = "other", "その他"


class Exclusion(models.Model):
    """受診不要: a person need not be invited for a programme this year (with the reason).

    They stay in the roster — the 事業報告 counts them in the target population — but leave the
    invitation list. The roster build copies the reason onto the programme's entries.
    """

    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    programme = _code("検診事業", 20)
    atena_no = _code("宛名番号", 15)
    reason = models.CharField("理由", max_length=20, choices=ExclusionReason.choices)
    note = models.CharField("備考", max_length=200, blank=True)
    recorded_by = models.CharField("登録者", max_length=150)
    recorded_at = models.DateTimeField("登録日時")

    class Meta:
        verbose_name = "受診不要"
        verbose_name_plural = "受診不要"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "fiscal_year", "programme", "atena_no"],
                name="screening_exclusion_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 {self.programme} {self.atena_no}"


class Setting(models.TextChoices):
    INDIVIDUAL = "individual", "個別"
    GROUP = "group", "集団"


class Exam(models.Model):
    """One primary exam (一次検診) of a person — the facts the roster's interval rules read.

    Issue 6 grows this into the full exam record (results, 精検, billing items); the roster
    needs only who, which programme and method, when, the 喫煙指数 asked at the 問診, and the
    HPV 追跡検査 due date that a negative triage sets.
    """

    municipality_code = _code("団体コード", 6)
    atena_no = _code("宛名番号", 15)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    programme = _code("検診事業", 20)
    method = _code("検査方法", 30)
    exam_date = models.DateField("受診日")
    setting = models.CharField("検診方式", max_length=10, choices=Setting.choices)
    institution_code = models.CharField("医療機関コード", max_length=10, blank=True)
    smoking_index = models.PositiveIntegerField("喫煙指数", null=True, blank=True)
    follow_up_due = models.DateField("追跡検査の時期", null=True, blank=True)

    class Meta:
        verbose_name = "受診"
        verbose_name_plural = "受診"
        indexes = [
            models.Index(fields=["municipality_code", "atena_no", "exam_date"], name="exam_person"),
            models.Index(
                fields=["municipality_code", "fiscal_year", "programme"], name="exam_year"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exam_date} {self.method} {self.atena_no}"


class RosterCount(models.Model):
    """The 対象者数 table kept beside the roster: FY × method × sex × 5-year band.

    Why stored: at a million residents the roster has 4–5 million rows and counting them
    takes seconds — too slow for a page staff open many times a day. The build writes the
    whole table in one GROUP BY; an override or a 受診不要 recounts only the cells it touches.
    """

    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    method = _code("検査方法", 30)
    sex = models.PositiveSmallIntegerField("性別")
    band = models.PositiveSmallIntegerField("年齢階級（始まりの年齢）")
    population = models.PositiveIntegerField("名簿の人数")
    eligible = models.PositiveIntegerField("対象者数")
    excluded = models.PositiveIntegerField("受診不要")

    class Meta:
        verbose_name = "対象者数"
        verbose_name_plural = "対象者数"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "fiscal_year", "method", "sex", "band"],
                name="screening_count_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 {self.method} {self.sex} {self.band}"
