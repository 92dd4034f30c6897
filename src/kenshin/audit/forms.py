"""Forms of the access review screens. Everything personal is POSTed, never put in a URL."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from kenshin.audit import review

MAX_PERIOD_DAYS = 366


class HistoryForm(forms.Form):
    """Per-resident access history: the 宛名番号 goes in the POST body only."""

    atena_no = forms.CharField(
        label="宛名番号",
        max_length=20,
        error_messages={"required": "宛名番号を入力してください"},
    )

    def clean_atena_no(self) -> str:
        from kenshin.core.text import normalize_digits

        value = normalize_digits(self.cleaned_data["atena_no"]).strip()
        if not value.isdigit():
            raise forms.ValidationError("宛名番号は数字で入力してください")
        return value


class AnomalyForm(forms.Form):
    """Period and threshold of the anomaly reports (dates are not personal data: GET is fine)."""

    start = forms.DateField(
        label="開始日", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="終了日", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    threshold = forms.IntegerField(
        label="1時間あたりの閲覧人数の基準",
        required=False,
        min_value=2,
        max_value=10_000,
        help_text=(
            "この人数以上の異なる住民を1時間に開いた利用者を示します"
            f"（既定 {review.DEFAULT_BURST_THRESHOLD} 人）。"
        ),
    )

    def clean(self):
        data = super().clean()
        default = review.default_period()
        end = data.get("end") or default.end
        start = data.get("start") or (end - timedelta(days=review.DEFAULT_DAYS - 1))
        if start > end:
            raise forms.ValidationError("開始日は終了日より前にしてください")
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise forms.ValidationError(f"期間は {MAX_PERIOD_DAYS} 日以内にしてください")
        data["period"] = review.Period(start, end)
        data["threshold"] = data.get("threshold") or review.DEFAULT_BURST_THRESHOLD
        return data


class CloseTaskForm(forms.Form):
    note = forms.CharField(
        label="確認結果",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="確認した内容と判断（例：業務上の必要を本人に確認）。記録の内容は書かないでください。",
        error_messages={"required": "確認結果を入力してください"},
    )
