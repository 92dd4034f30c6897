"""Forms of the 統合宛名 staff pages (duplicates and merges, linkage_views.py)."""

from __future__ import annotations

from django import forms

from kenshin.accounts.stepup import StepUpField

REASON_HELP = (
    "根拠（確認した書類など）を書いてください。氏名・住所などの個人情報は書かないでください。"
)


def reason_field(label: str = "理由") -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=200,
        help_text=REASON_HELP,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "理由を入力してください"},
    )


class MergeRequestForm(forms.Form):
    """Ask to fold one 統合宛名番号 into the other; another person approves."""

    survivor = forms.ChoiceField(
        label="残す統合宛名番号",
        choices=[
            ("a", "左（A）を残し、右（B）を統合する"),
            ("b", "右（B）を残し、左（A）を統合する"),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": "残す統合宛名番号を選んでください"},
    )
    reason = reason_field("統合の理由")


class DecideForm(forms.Form):
    """Approve (apply) or reject a pending request, with a fresh code (ACL-05)."""

    decision = forms.ChoiceField(
        label="判断",
        choices=[("approve", "承認して実行する"), ("reject", "却下する")],
        widget=forms.RadioSelect,
        error_messages={"required": "承認か却下かを選んでください"},
    )
    code = StepUpField()


class UnmergeForm(forms.Form):
    """Ask to undo an applied merge; another person approves."""

    reason = reason_field("取消の理由")
