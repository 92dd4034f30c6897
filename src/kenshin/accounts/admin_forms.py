"""Forms of the administration screens. Every sensitive one carries a step-up code (ACL-05)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from kenshin.accounts.breakglass import MAX_MINUTES
from kenshin.accounts.models import Institution, Role, ScopeKind
from kenshin.accounts.stepup import StepUpField


class StepUpForm(forms.Form):
    """A POST that only needs the actor's fresh TOTP code (reset, disable, end sessions …)."""

    code = StepUpField()


class DateInput(forms.DateInput):
    input_type = "date"


class AssignRoleForm(StepUpForm):
    role = forms.ModelChoiceField(
        label="ロール",
        queryset=Role.objects.filter(is_emergency=False),
        empty_label="選択してください",
    )
    scope_kind = forms.ChoiceField(label="範囲", choices=ScopeKind.choices, required=False)
    scope_value = forms.CharField(
        label="範囲の値",
        max_length=40,
        required=False,
        help_text="医療機関の範囲なら10桁の医療機関コード。範囲が全体なら空欄。",
    )
    valid_from = forms.DateField(label="開始日", widget=DateInput)
    valid_to = forms.DateField(label="終了日", widget=DateInput, required=False)

    field_order = ["role", "scope_kind", "scope_value", "valid_from", "valid_to", "code"]


class CreateUserForm(StepUpForm):
    username = forms.CharField(label="ユーザー名", max_length=150)
    display_name = forms.CharField(label="表示名", max_length=100)
    email = forms.EmailField(
        label="メールアドレス", help_text="仮パスワードはこのアドレスに本人宛てで送られます。"
    )
    department = forms.CharField(label="所属", max_length=60, required=False)
    institution = forms.ModelChoiceField(
        label="医療機関（医療機関の利用者のみ）",
        queryset=Institution.objects.none(),
        required=False,
        empty_label="なし（市の職員）",
    )

    field_order = ["username", "display_name", "email", "department", "institution", "code"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = Institution.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, is_active=True
        ).order_by("code")


class BreakGlassRequestForm(StepUpForm):
    user = forms.ModelChoiceField(label="利用者", queryset=None, empty_label="選択してください")
    reason = forms.CharField(
        label="理由",
        max_length=200,
        help_text="災害名・業務名など。住民の氏名は書かないでください。",
    )
    minutes = forms.IntegerField(label="時間（分）", min_value=1, max_value=MAX_MINUTES, initial=60)

    field_order = ["user", "reason", "minutes", "code"]

    def __init__(self, *args, **kwargs):
        from django.contrib.auth import get_user_model

        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = (
            get_user_model().objects.filter(is_active=True).order_by("username")
        )
        self.fields["user"].label_from_instance = lambda u: f"{u.username}（{u}）"


class InstitutionForm(forms.ModelForm):
    class Meta:
        model = Institution
        fields = ["name", "contact_name", "phone", "address"]
