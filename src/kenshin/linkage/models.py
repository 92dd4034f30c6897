"""Tables of the 番号連携サーバ. They live only in the ``linkage`` database (core.dbrouter).

Why these shapes:
- ``Person`` is one 団体内統合宛名番号. Its primary key is the serial the number was made from,
  taken from ``NumberCounter`` (which only ever counts up), so a number is never issued twice
  even after a merge retires one.
- ``MyNumber`` holds at most one 個人番号 per person, keyed by the person's row id; that id is
  the AES-GCM associated data, so ciphertext copied to another person's row fails to decrypt.
  ``blind_index`` (HMAC-SHA256 under a separate key) is unique: one 個人番号, one person.
- ``Atena`` is one business system's 宛名 (宛名番号 + the five items used for 名寄せ).
- ``LinkageEvent`` is this server's own access log: every call, who, which system, which 事務,
  which 統合宛名番号, result — never the 個人番号. Append-only (schema.py triggers).
"""

from __future__ import annotations

from django.db import models

# The database alias every linkage table lives on (settings.DATABASES, core.dbrouter). The one
# definition: actions, gateway, rotation and provision import it.
DB = "linkage"


class NumberCounter(models.Model):
    """The last serial issued for a kind of number (one row: "unified_atena_no")."""

    name = models.CharField(max_length=32, primary_key=True)
    last = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "採番"

    def __str__(self) -> str:
        return f"{self.name}: {self.last}"


class Person(models.Model):
    """One 団体内統合宛名番号 (one person, resident or 住登外)."""

    id = models.BigIntegerField(primary_key=True)  # the serial from NumberCounter
    municipality_code = models.CharField("団体コード", max_length=6)
    unified_atena_no = models.CharField("団体内統合宛名番号", max_length=15, unique=True)
    # Set when a merge folded this number into another; cleared by an unmerge. The number
    # itself is never deleted or issued again.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="absorbed"
    )
    created_at = models.DateTimeField("採番日時")

    class Meta:
        verbose_name = "統合宛名"
        verbose_name_plural = "統合宛名"

    def __str__(self) -> str:
        return self.unified_atena_no


class MyNumber(models.Model):
    """A person's 個人番号, encrypted (crypto.py). Never a plaintext column, never logged."""

    person = models.OneToOneField(
        Person, primary_key=True, on_delete=models.PROTECT, related_name="my_number"
    )
    # The key that encrypted ``ciphertext`` (also its first byte); rotation selects on it.
    key_id = models.PositiveSmallIntegerField("鍵番号", db_index=True)
    ciphertext = models.BinaryField("暗号文")
    blind_index = models.BinaryField("検索索引", max_length=32, unique=True)
    updated_at = models.DateTimeField("更新日時")

    class Meta:
        verbose_name = "個人番号"
        verbose_name_plural = "個人番号"

    def __str__(self) -> str:
        return f"個人番号（統合宛名 {self.person_id}）"


class BusinessSystem(models.Model):
    """A system allowed to call the linkage server (健康管理, 住基, 税務 …)."""

    code = models.CharField("システムコード", max_length=32, unique=True)
    name = models.CharField("名称", max_length=100)
    # 事務 codes (rules.JIMU) this system may name in a call; anything else is refused.
    jimu_codes = models.JSONField("許可された事務", default=list)
    active = models.BooleanField("有効", default=True)
    created_at = models.DateTimeField("登録日時")

    class Meta:
        verbose_name = "連携システム"
        verbose_name_plural = "連携システム"

    def __str__(self) -> str:
        return self.code


class SystemCredential(models.Model):
    """One credential of a system: ``kl_<prefix>_<secret>``; only a hash of the secret is kept.

    Why SHA-256 and not Argon2: the secret is 256 random bits, not a password; a slow hash
    would add tens of milliseconds to every look-up and protect nothing more.
    """

    system = models.ForeignKey(BusinessSystem, on_delete=models.PROTECT, related_name="credentials")
    prefix = models.CharField("識別子", max_length=16, unique=True)
    secret_hash = models.CharField("ハッシュ", max_length=64)
    created_at = models.DateTimeField("発行日時")
    created_by = models.CharField("発行者", max_length=150)
    expires_at = models.DateTimeField("有効期限", null=True, blank=True)
    revoked_at = models.DateTimeField("失効日時", null=True, blank=True)

    class Meta:
        verbose_name = "連携認証情報"
        verbose_name_plural = "連携認証情報"

    def __str__(self) -> str:
        return f"{self.system.code}:{self.prefix}"


class Atena(models.Model):
    """One business system's 宛名 linked to a 統合宛名番号, with the five 名寄せ items."""

    municipality_code = models.CharField("団体コード", max_length=6)
    system = models.ForeignKey(BusinessSystem, on_delete=models.PROTECT, related_name="atenas")
    atena_no = models.CharField("宛名番号", max_length=15)
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="atenas")
    name = models.CharField("氏名", max_length=100)
    name_kana = models.CharField("氏名カナ", max_length=100)
    birth_date = models.DateField("生年月日")
    sex = models.PositiveSmallIntegerField("性別")
    address = models.CharField("住所", max_length=200)
    # SHA-256 of the five items after normalisation (rules.five_item_key): the 名寄せ match
    # is one indexed equality, and never on fewer than five items.
    match_key = models.CharField("名寄せキー", max_length=64, db_index=True)
    updated_at = models.DateTimeField("更新日時")

    class Meta:
        verbose_name = "業務宛名"
        verbose_name_plural = "業務宛名"
        constraints = [
            models.UniqueConstraint(fields=["system", "atena_no"], name="linkage_atena_once")
        ]

    def __str__(self) -> str:
        return f"{self.system_id}:{self.atena_no}"


class DuplicateBasis(models.TextChoices):
    FIVE_ITEMS = "five_items", "5項目一致"
    MY_NUMBER = "my_number", "個人番号"


class DuplicateCandidate(models.Model):
    """Two 統合宛名番号 that may be one person; staff decide (merge, or mark as different)."""

    person_a = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    person_b = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    basis = models.CharField("根拠", max_length=16, choices=DuplicateBasis.choices)
    found_at = models.DateTimeField("検出日時")
    resolved_at = models.DateTimeField("処理日時", null=True, blank=True)
    resolution = models.CharField("処理", max_length=32, blank=True)

    class Meta:
        verbose_name = "重複候補"
        verbose_name_plural = "重複候補"
        constraints = [
            models.UniqueConstraint(fields=["person_a", "person_b"], name="linkage_candidate_once")
        ]

    def __str__(self) -> str:
        return f"重複候補 {self.person_a_id} / {self.person_b_id}"


class MergeKind(models.TextChoices):
    MERGE = "merge", "統合"
    UNMERGE = "unmerge", "統合の取消"


class MergeStatus(models.TextChoices):
    PENDING = "pending", "承認待ち"
    APPLIED = "applied", "実施済み"
    REJECTED = "rejected", "却下"


class MergeRequest(models.Model):
    """A merge of two 統合宛名番号 (or the undoing of one): asked by one person, approved by
    another, and kept forever as the history of both numbers."""

    kind = models.CharField("種別", max_length=8, choices=MergeKind.choices)
    survivor = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    absorbed = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    # For an unmerge: the merge it undoes.
    undoes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="undone_by"
    )
    reason = models.CharField("理由", max_length=200)
    status = models.CharField(
        "状態", max_length=8, choices=MergeStatus.choices, default=MergeStatus.PENDING
    )
    requested_by = models.CharField("申請者", max_length=150)
    requested_at = models.DateTimeField("申請日時")
    decided_by = models.CharField("承認者", max_length=150, blank=True)
    decided_at = models.DateTimeField("承認日時", null=True, blank=True)
    # What the merge moved (Atena ids, whether the 個人番号 moved), so an unmerge restores it.
    moved = models.JSONField("移動した記録", default=dict)

    class Meta:
        verbose_name = "統合申請"
        verbose_name_plural = "統合申請"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.absorbed_id} → {self.survivor_id}"


class LinkageEvent(models.Model):
    """One call to the linkage server, as its own access log keeps it (append-only)."""

    at = models.DateTimeField("日時")
    system_code = models.CharField("システム", max_length=32)
    actor = models.CharField("操作者", max_length=150)
    jimu_code = models.CharField("事務", max_length=32)
    operation = models.CharField("操作", max_length=32)
    unified_atena_no = models.CharField("団体内統合宛名番号", max_length=15, blank=True)
    result = models.CharField("結果", max_length=16)
    detail = models.JSONField("詳細", default=dict)

    class Meta:
        verbose_name = "番号連携ログ"
        verbose_name_plural = "番号連携ログ"
        indexes = [models.Index(fields=["unified_atena_no", "at"], name="linkage_event_person")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.system_code} {self.operation} {self.result}"
