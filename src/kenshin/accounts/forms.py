"""Forms of the sign-in pages and the own-password page."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordChangeForm as DjangoPasswordChangeForm

GENERIC_FAILURE = "利用者IDまたはパスワードが正しくありません"


class LoginForm(forms.Form):
    """User ID and password only; the outcome is checked in the view (one generic message)."""

    username = forms.CharField(label="利用者ID", max_length=150)
    password = forms.CharField(label="パスワード", max_length=512, strip=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(
            {"autocomplete": "username", "autofocus": True, "autocapitalize": "none"}
        )
        self.fields["password"].widget = forms.PasswordInput(
            attrs={"autocomplete": "current-password"}
        )


class CodeForm(forms.Form):
    """The code from the authenticator app (6 digits) or one recovery code."""

    otp_token = forms.CharField(label="確認コード", max_length=20)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["otp_token"].widget.attrs.update(
            {"autocomplete": "one-time-code", "autofocus": True, "autocapitalize": "none"}
        )


class EnrolForm(forms.Form):
    otp_token = forms.CharField(label="認証アプリに表示された6桁の確認コード", max_length=8)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["otp_token"].widget.attrs.update(
            {"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        )


class PasswordChangeForm(DjangoPasswordChangeForm):
    """Django's form (current password, new twice, the policy), Japanese labels, and no reuse."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["old_password"].label = "現在のパスワード（仮パスワードを含む）"
        self.fields["new_password1"].label = "新しいパスワード"
        self.fields["new_password1"].help_text = (
            "12文字以上。記号や大文字は不要です。覚えやすい長い文（パスフレーズ）を勧めます。"
            + password_validation.password_validators_help_text_html()
        )
        self.fields["new_password2"].label = "新しいパスワード（確認）"

    def clean_new_password1(self) -> str:
        new = self.cleaned_data.get("new_password1") or ""
        if new and self.user.check_password(new):
            raise forms.ValidationError("今までと同じパスワードは使えません。")
        return new
