"""Staff and clinic accounts, the institutions clinic users belong to, roles and their grants.

Why roles are rows, not Django groups or code: the city changes who may do what (a 保健師 covering
a colleague's programme, a new clinic) without a release, every grant has begin and end dates,
and a grant can be narrowed to one programme, department or clinic (ACL-01, ACL-02, ACL-06).
The functions a role grants are codes from the permission registry in ``core.permissions``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower


class Institution(models.Model):
    """A contracted clinic, hospital or screening organisation (医療機関), by its 10-digit code.

    Clinic users belong to one; a grant scoped to ``clinic`` reaches only that institution's
    records.
    """

    municipality_code = models.CharField("市区町村コード", max_length=6)
    code = models.CharField("医療機関コード", max_length=10)
    name = models.CharField("名称", max_length=100)
    contact_name = models.CharField("担当者", max_length=60, blank=True)
    phone = models.CharField("電話番号", max_length=20, blank=True)
    address = models.CharField("所在地", max_length=200, blank=True)
    is_active = models.BooleanField("有効", default=True)

    class Meta:
        verbose_name = "医療機関"
        verbose_name_plural = "医療機関"
        constraints = [
            models.UniqueConstraint(
                fields=["municipality_code", "code"], name="institution_code_uq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}（{self.code}）"

    def kenshin_scope(self) -> dict[str, str]:
        """What a scoped grant is compared with (core.permissions.check_object)."""
        return {"clinic": self.code}


class User(AbstractUser):
    """One named person (no shared accounts, AUTH-02).

    ``temp_password_expires_at`` is set while the password is an initial or reset one: it is
    random, delivered to the user (never shown to an administrator), good for one sign-in
    within 24 hours, and must be replaced at that sign-in (AUTH-07).
    """

    display_name = models.CharField("表示名", max_length=100, blank=True)
    department = models.CharField("所属", max_length=60, blank=True)
    institution = models.ForeignKey(
        Institution,
        verbose_name="医療機関",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
    )
    own_atena_no = models.CharField(
        "本人の宛名番号",
        max_length=20,
        blank=True,
        help_text="職員本人が市民でもある場合。本人・同一世帯の閲覧を点検で示すために使います。",
    )
    password_changed_at = models.DateTimeField("パスワード変更日時", null=True, blank=True)
    must_change_password = models.BooleanField("次回パスワード変更", default=False)
    temp_password_expires_at = models.DateTimeField("仮パスワード期限", null=True, blank=True)
    temp_password_used = models.BooleanField("仮パスワード使用済み", default=False)
    # Who created the account (None: the bootstrap command, the demo or a data load). Why:
    # an administrator must not make a second account for themself and use it as the "other"
    # administrator; actions and breakglass refuse grants and approvals along this link.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="作成者",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        verbose_name = "利用者"
        verbose_name_plural = "利用者"
        constraints = [
            # One address, one account: the temporary password goes to this address, so two
            # accounts sharing it are one person (AUTH-02). Empty addresses are not compared.
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="user_email_ci_uq",
                violation_error_message="このメールアドレスは別の利用者で使われています。",
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.username

    def has_perm(self, perm: str, obj=None) -> bool:
        """Only role grants decide; ``is_superuser`` grants nothing (see backends.RoleBackend)."""
        if not self.is_active:
            return False
        from django.contrib import auth

        return any(
            b.has_perm(self, perm, obj) for b in auth.get_backends() if hasattr(b, "has_perm")
        )

    def has_module_perms(self, app_label: str) -> bool:
        if not self.is_active:
            return False
        from django.contrib import auth

        return any(
            b.has_module_perms(self, app_label)
            for b in auth.get_backends()
            if hasattr(b, "has_module_perms")
        )

    # Duck-typed hooks used by core.audit.actor_of (core cannot import this app).
    def audit_roles(self) -> str:
        from kenshin.accounts import grants

        return grants.role_labels(self)

    def under_break_glass(self) -> bool:
        from kenshin.accounts import grants

        return grants.has_break_glass(self)


class Role(models.Model):
    """A named set of functions (codes declared in core.permissions)."""

    code = models.SlugField("コード", max_length=40, unique=True)
    name = models.CharField("名称", max_length=60)
    description = models.TextField("説明", blank=True)
    functions = models.JSONField("機能", default=list)
    is_emergency = models.BooleanField(
        "緊急用", default=False, help_text="緊急アクセス（ブレークグラス）でだけ付与されるロール"
    )
    builtin = models.BooleanField("標準", default=False)

    class Meta:
        verbose_name = "ロール"
        verbose_name_plural = "ロール"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ScopeKind(models.TextChoices):
    ALL = "", "全体"
    PROGRAMME = "programme", "事業"
    DEPARTMENT = "department", "所属"
    CLINIC = "clinic", "医療機関"


class RoleAssignment(models.Model):
    """One grant of one role to one user, optionally scoped, from one date to another."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="assignments")
    scope_kind = models.CharField(
        "範囲", max_length=20, choices=ScopeKind.choices, default=ScopeKind.ALL, blank=True
    )
    scope_value = models.CharField("範囲の値", max_length=40, blank=True)
    valid_from = models.DateField("開始日")
    valid_to = models.DateField("終了日", null=True, blank=True)
    # Break-glass grants end at a moment, not a date.
    expires_at = models.DateTimeField("失効日時", null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    granted_at = models.DateTimeField("付与日時", auto_now_add=True)
    revoked_at = models.DateTimeField("取消日時", null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        verbose_name = "ロール付与"
        verbose_name_plural = "ロール付与"
        indexes = [models.Index(fields=["user", "valid_from"], name="assign_user_from")]

    def __str__(self) -> str:
        return f"{self.user} — {self.role}"


class BreakGlassStatus(models.TextChoices):
    REQUESTED = "requested", "承認待ち"
    ACTIVE = "active", "有効"
    REJECTED = "rejected", "却下"
    ENDED = "ended", "終了"


class BreakGlass(models.Model):
    """A request for the time-boxed emergency role; a second administrator must approve (BG-01)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField("理由", max_length=200)
    minutes = models.PositiveIntegerField("時間（分）")
    requested_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=12, choices=BreakGlassStatus.choices, default=BreakGlassStatus.REQUESTED
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    assignment = models.OneToOneField(
        RoleAssignment, null=True, blank=True, on_delete=models.PROTECT, related_name="break_glass"
    )

    class Meta:
        verbose_name = "緊急アクセス"
        verbose_name_plural = "緊急アクセス"

    def __str__(self) -> str:
        return f"緊急アクセス {self.pk}（{self.get_status_display()}）"


class UserSession(models.Model):
    """The server-side sessions of each user, so that logout, disabling an account and an
    administrator's "end sessions" can destroy them all (SESS-03)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sessions"
    )
    session_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    address = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = "セッション"
        verbose_name_plural = "セッション"

    def __str__(self) -> str:
        return f"セッション {self.pk}（利用者 {self.user_id}）"
