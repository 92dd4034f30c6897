"""Staff forms of the register: search (with its purpose), the purpose of a view, flags, the
個人番号 reveal."""

from __future__ import annotations

from django import forms

from kenshin.accounts.stepup import StepUpField
from kenshin.core.purposes import Purpose
from kenshin.residents.models import FlagKind

PURPOSE_REQUIRED = "利用目的を選んでください（目的のない検索・閲覧はできません）"


def purpose_field() -> forms.ChoiceField:
    """The 利用目的 select (ACL-04): required, and nothing chosen in advance.

    Why no default: a preselected purpose would be recorded for every access without anyone
    having thought about it, and the review would count nothing.
    """
    return forms.ChoiceField(
        label="利用目的",
        choices=[("", "選択してください"), *Purpose.choices],
        required=True,
        error_messages={"required": PURPOSE_REQUIRED, "invalid_choice": PURPOSE_REQUIRED},
    )


class ResidentSearchForm(forms.Form):
    """Search needs an exact number or a name together with the birth date (checked in services)."""

    purpose = purpose_field()
    kana = forms.CharField(label="氏名カナ（前方一致）", required=False, max_length=50)
    name = forms.CharField(label="氏名（漢字、前方一致）", required=False, max_length=50)
    birth_date = forms.CharField(
        label="生年月日",
        required=False,
        max_length=20,
        help_text="例: 1985-04-01、昭和60年4月1日、S60.4.1",
    )
    atena_no = forms.CharField(label="宛名番号", required=False, max_length=20)
    household_no = forms.CharField(label="世帯番号", required=False, max_length=20)

    def criteria(self) -> dict[str, str]:
        """The search terms without the purpose (what services.search_residents takes)."""
        return {k: v for k, v in self.cleaned_data.items() if k != "purpose"}


class PurposeForm(forms.Form):
    """Choose or change the purpose before (or while) viewing a person."""

    purpose = purpose_field()


class FlagForm(forms.Form):
    """閲覧注意の住民の設定 (課長)."""

    atena_no = forms.CharField(label="宛名番号", max_length=20)
    kind = forms.ChoiceField(label="種類", choices=FlagKind.choices)
    valid_from = forms.DateField(label="開始日", widget=forms.DateInput(attrs={"type": "date"}))
    valid_to = forms.DateField(
        label="終了日", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    note = forms.CharField(
        label="備考",
        required=False,
        max_length=200,
        help_text="根拠となる文書番号など。氏名や事情は書かないでください。",
    )


class RevealForm(forms.Form):
    """Reveal a resident's 個人番号 in full: a purpose and a fresh code (ACL-03, ACL-05)."""

    purpose = purpose_field()
    code = StepUpField()
