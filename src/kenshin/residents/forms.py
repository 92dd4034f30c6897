"""The staff search form."""

from __future__ import annotations

from django import forms


class ResidentSearchForm(forms.Form):
    """Search needs an exact number or a name together with the birth date (checked in services)."""

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
