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
        # The person's ledger reads a person's 受診不要 of every year and programme.
        indexes = [models.Index(fields=["municipality_code", "atena_no"], name="exclusion_person")]

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
    # The exam record proper (issue 6). Past history brought in bulk (raw rows) lacks them,
    # hence database defaults and NULL results ("no coded result known").
    results = models.JSONField("結果", null=True, blank=True)  # {item: value} (vocabularies)
    needs_seiken = models.BooleanField("要精検", default=False, db_default=False)
    hpv_follow_up = models.BooleanField("HPV 追跡検査", default=False, db_default=False)
    voucher_no = models.CharField("受診券番号", max_length=20, blank=True, db_default="")
    coupon_no = models.CharField("クーポン番号", max_length=16, blank=True, db_default="")
    place = models.CharField("検診場所", max_length=100, blank=True, db_default="")
    age_at_exam = models.PositiveSmallIntegerField("受診時年齢", null=True, blank=True)
    fy_end_age = models.PositiveSmallIntegerField("年度末年齢", null=True, blank=True)
    # 初回: no screening by the programme in the previous 3 fiscal years (derived when recorded).
    first_time = models.BooleanField("初回", null=True, blank=True)
    complication = models.CharField("偶発症（一次検診）", max_length=200, blank=True, db_default="")
    recorded_by = models.CharField("登録者", max_length=150, blank=True, db_default="")
    recorded_at = models.DateTimeField("登録日時", null=True, blank=True)
    # 請求区分・請求月 of the 健康管理ファイル: how and in which month the clinic bills the exam
    # (the payment of clinics reads them; a paper batch carries its month).
    billing_category = models.CharField("請求区分", max_length=20, blank=True, db_default="")
    billing_month = models.DateField("請求月（その月の1日）", null=True, blank=True)

    class Meta:
        verbose_name = "受診"
        verbose_name_plural = "受診"
        indexes = [
            models.Index(fields=["municipality_code", "atena_no", "exam_date"], name="exam_person"),
            models.Index(
                fields=["municipality_code", "fiscal_year", "programme"], name="exam_year"
            ),
            # Result intake: has this voucher been used already (by whom, at which clinic)?
            models.Index(
                fields=["municipality_code", "voucher_no"],
                condition=~models.Q(voucher_no=""),
                name="exam_voucher",
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


class SeikenStatusField(models.TextChoices):
    ATTENDED = "attended", "精検受診"
    NOT_ATTENDED = "not_attended", "精検未受診"
    UNKNOWN = "unknown", "精検未把握"


class FollowUpCase(models.Model):
    """The 精密検査 case every 要精検 exam opens, chased until its outcome is known.

    Its status is derived from the facts below by ``screening.rules.seiken_status`` (the
    作成要領's definition) and stored for the worklists; it is never typed. ``version`` is
    the optimistic lock: an edit made on an older version is refused, so two staff working on
    the same case cannot silently overwrite each other.
    """

    municipality_code = _code("団体コード", 6)
    atena_no = _code("宛名番号", 15)
    programme = _code("検診事業", 20)
    fiscal_year = models.PositiveSmallIntegerField("一次検診の年度")
    exam = models.OneToOneField(
        Exam, on_delete=models.PROTECT, related_name="follow_up_case", verbose_name="一次検診"
    )
    primary_result = models.CharField("一次検診の判定", max_length=30)
    referral_to = models.CharField("紹介先（2次・3次医療機関）", max_length=200, blank=True)
    form_issued_on = models.DateField("連絡票の発行日", null=True, blank=True)
    form_returned_on = models.DateField("連絡票の返却日", null=True, blank=True)
    known_not_attended = models.BooleanField("受診していないことを確認", default=False)
    survey_sent_on = models.DateField("未受診者状況調査の送付日", null=True, blank=True)
    survey_answered_on = models.DateField("未受診者状況調査の回答日", null=True, blank=True)
    survey_answer = models.CharField("未受診者状況調査の回答", max_length=200, blank=True)
    tracing_result = models.CharField("追跡調査結果", max_length=200, blank=True)
    status = models.CharField(
        "精検の受診状況", max_length=20, choices=SeikenStatusField.choices,
        default=SeikenStatusField.UNKNOWN,
    )  # fmt: skip
    status_since = models.DateField("状況の開始日")
    result = models.CharField("精検結果（計上する区分）", max_length=20, blank=True)
    version = models.PositiveIntegerField("版", default=1)
    updated_by = models.CharField("更新者", max_length=150)
    updated_at = models.DateTimeField("更新日時")

    class Meta:
        verbose_name = "精密検査"
        verbose_name_plural = "精密検査"
        indexes = [
            models.Index(fields=["municipality_code", "fiscal_year", "status"], name="case_status"),
            models.Index(fields=["municipality_code", "atena_no"], name="case_person"),
        ]

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 {self.programme} {self.atena_no}"


class SeikenReportRecord(models.Model):
    """One report of a 精検: the 精検機関's 連絡票, or what the person told us."""

    case = models.ForeignKey(FollowUpCase, on_delete=models.CASCADE, related_name="reports")
    from_institution = models.BooleanField("精検機関からの報告")
    exam_date = models.DateField("精検日", null=True, blank=True)
    institution = models.CharField("精検機関", max_length=100, blank=True)
    method = models.CharField("精検法", max_length=30, blank=True)
    result = models.CharField("精検結果", max_length=20, blank=True)
    pathology = models.CharField("病理診断", max_length=200, blank=True)
    stage = models.CharField("病期", max_length=30, blank=True)
    early_cancer = models.BooleanField("早期がん", null=True, blank=True)
    complication = models.CharField("偶発症（精検）", max_length=200, blank=True)
    recorded_by = models.CharField("登録者", max_length=150)
    recorded_at = models.DateTimeField("登録日時")

    class Meta:
        verbose_name = "精検の報告"
        verbose_name_plural = "精検の報告"

    def __str__(self) -> str:
        return f"{self.case_id} {self.exam_date} {self.method}"


class Voucher(models.Model):
    """受診券: the number printed on a person's voucher for a fiscal year (and a programme, or
    every programme when blank), by which a paper 受診票 or a clinic's file names the person.

    Why a table: the number is the hard key of result matching (the 受診票 carries it; names
    and birth dates are only a check), so the city must know to whom each number was issued.
    The number ends in a check digit (Luhn), so a mistyped number is refused, not matched.
    """

    municipality_code = _code("団体コード", 6)
    fiscal_year = models.PositiveSmallIntegerField("年度")
    voucher_no = _code("受診券番号", 20)
    atena_no = _code("宛名番号", 15)
    programme = models.CharField("検診事業（空欄はすべて）", max_length=20, blank=True)
    issued_on = models.DateField("発行日")
    issued_by = models.CharField("発行者", max_length=150)

    class Meta:
        verbose_name = "受診券"
        verbose_name_plural = "受診券"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "voucher_no"], name="screening_voucher_once"
            )
        ]
        indexes = [models.Index(fields=["municipality_code", "atena_no"], name="voucher_person")]

    def __str__(self) -> str:
        return f"{self.fiscal_year}年度 受診券 {self.voucher_no}"


class EntryBatch(models.Model):
    """A stack of paper 受診票 keyed together: one method, one institution, one 方式.

    Single entry records each form's exam as it is saved. Double entry (二重入力) keeps what
    two different staff keyed as two passes; nothing reaches the exam records until the passes
    agree on every form, and then all of them are recorded in one transaction.
    """

    class Status(models.TextChoices):
        OPEN = "open", "入力中"
        COMMITTED = "committed", "登録済み"

    municipality_code = _code("団体コード", 6)
    label = models.CharField("束の名前", max_length=100)
    method = _code("検査方法", 30)
    institution_code = models.CharField("医療機関コード", max_length=10)
    setting = models.CharField("検診方式", max_length=10, choices=Setting.choices)
    double_entry = models.BooleanField("二重入力", default=False)
    billing_month = models.DateField("請求月（その月の1日）", null=True, blank=True)
    status = models.CharField("状態", max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.CharField("作成者", max_length=150)
    created_at = models.DateTimeField("作成日時")
    committed_by = models.CharField("登録者", max_length=150, blank=True)
    committed_at = models.DateTimeField("登録日時", null=True, blank=True)

    class Meta:
        verbose_name = "受診票の束"
        verbose_name_plural = "受診票の束"

    def __str__(self) -> str:
        return f"{self.label}（{self.method}）"


class EntryItem(models.Model):
    """One 受診票 as one member of staff keyed it (pass 1, or pass 2 of a double entry)."""

    batch = models.ForeignKey(EntryBatch, on_delete=models.CASCADE, related_name="items")
    pass_no = models.PositiveSmallIntegerField("入力回")
    seq = models.PositiveIntegerField("通し番号")
    atena_no = _code("宛名番号", 15)
    exam_date = models.DateField("受診日")
    voucher_no = models.CharField("受診券番号", max_length=20, blank=True)
    coupon_no = models.CharField("クーポン番号", max_length=16, blank=True)
    place = models.CharField("検診場所", max_length=100, blank=True)
    results = models.JSONField("結果")
    smoking_index = models.PositiveIntegerField("喫煙指数", null=True, blank=True)
    hpv_follow_up = models.BooleanField("HPV 追跡検査", default=False)
    complication = models.CharField("偶発症（一次検診）", max_length=200, blank=True)
    keyed_by = models.CharField("入力者", max_length=150)
    keyed_at = models.DateTimeField("入力日時")
    # Both passes of a double entry point at the one exam they recorded.
    exam = models.ForeignKey(
        Exam, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name="登録した受診",
    )  # fmt: skip

    class Meta:
        verbose_name = "入力した受診票"
        verbose_name_plural = "入力した受診票"
        constraints = [
            models.UniqueConstraint(fields=["batch", "pass_no", "seq"], name="entry_item_once")
        ]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.pass_no} {self.seq}"
