"""Staff forms of exam records: a batch of 受診票, one keyed form, a 精検 case and its report.

The result fields are built from the method's vocabulary (programs/vocabularies.toml), so a
form offers exactly the values the method allows, in the file's order, and nothing else.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django import forms

from kenshin.core import clock
from kenshin.core.text import normalize_digits
from kenshin.core.wareki import parse_date
from kenshin.programs import services as programs
from kenshin.screening.exam_actions import CASE_FIELDS
from kenshin.screening.models import FollowUpCase, Setting
from kenshin.screening.rules import HPV_METHOD

SMOKING_METHODS = frozenset({"chest_xray", "sputum_cytology"})  # 問診 asks the 喫煙指数


def _date(text: str, *, required: bool = True, label: str = "日付") -> date | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise forms.ValidationError(f"{label}を入れてください")
        return None
    try:
        value = parse_date(text)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None
    if value > clock.today():
        raise forms.ValidationError(f"{label}が未来の日付です")
    return value


_MONTH = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")


def _month(text: str) -> date | None:
    """A month as its first day, from 2026-11, 2026/11, 2026年11月 or 令和8年11月."""
    text = normalize_digits((text or "").strip())
    if not text:
        return None
    found = _MONTH.match(text)
    if found is None:
        try:
            return parse_date(text + "1日").replace(day=1)
        except ValueError:
            raise forms.ValidationError(
                "請求月は 2026-11 や 令和8年11月 のように入れてください"
            ) from None
    year, month = int(found[1]), int(found[2])
    if not 1900 <= year <= 2100:
        raise forms.ValidationError("請求月の年を見直してください（例: 2026-11）")
    if not 1 <= month <= 12:
        raise forms.ValidationError("請求月の月は 1〜12 です")
    return date(year, month, 1)


DATE_HELP = "例: 2026-10-05、令和8年10月5日、R8.10.5"


class BatchForm(forms.Form):
    """A new stack of 受診票."""

    label = forms.CharField(label="束の名前", max_length=100,
                            help_text="例: 11月分 ○○クリニック 大腸")  # fmt: skip
    method = forms.ChoiceField(label="検査方法", choices=())
    institution_code = forms.RegexField(
        label="医療機関コード（10桁）", regex=r"^\d{10}$", max_length=10,
        error_messages={"invalid": "医療機関コードは 10 桁の数字です"},
    )  # fmt: skip
    setting = forms.ChoiceField(label="検診方式", choices=Setting.choices, widget=forms.RadioSelect)
    double_entry = forms.BooleanField(
        label="二重入力（2 人が同じ束を入力し、違いを照合してから登録）", required=False
    )
    billing_month = forms.CharField(
        label="請求月（任意）", max_length=20, required=False,
        help_text="医療機関の請求の月。例: 2026-11、令和8年11月",
    )  # fmt: skip

    def clean_billing_month(self) -> date | None:
        return _month(self.cleaned_data.get("billing_month", ""))

    def __init__(self, *args: Any, methods: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = methods


class FindForm(forms.Form):
    """Step 1 of a form: who is this 受診票 about?"""

    seq = forms.IntegerField(label="通し番号", min_value=1, max_value=99999)
    number = forms.CharField(label="受診券・クーポン番号", max_length=24, required=False)
    kana = forms.CharField(label="氏名カナ（先頭から）", max_length=40, required=False)
    birth = forms.CharField(label="生年月日", max_length=20, required=False, help_text=DATE_HELP)

    def clean_birth(self) -> date | None:
        return _date(self.cleaned_data.get("birth", ""), required=False, label="生年月日")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("number") and not (data.get("kana") and data.get("birth")):
            raise forms.ValidationError(
                "受診券・クーポン番号、またはカナと生年月日を入れてください"
            )
        return data


class ResultForm(forms.Form):
    """Step 2: the date and the result of the exam, in the method's vocabulary only."""

    seq = forms.IntegerField(label="通し番号", min_value=1, max_value=99999)
    ref = forms.CharField(widget=forms.HiddenInput, max_length=40)
    voucher_no = forms.CharField(widget=forms.HiddenInput, required=False, max_length=20)
    coupon_no = forms.CharField(widget=forms.HiddenInput, required=False, max_length=16)
    exam_date = forms.CharField(label="受診日", max_length=20, help_text=DATE_HELP)

    def __init__(self, *args: Any, method: str, setting: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = programs.results_of(method)
        self.method = method
        self.result_items = []
        for item in spec.items if spec else ():
            name = f"r_{item.code}"
            self.fields[name] = forms.ChoiceField(
                label=item.name,
                required=item.required,
                choices=[("", "―")] + [(v.code, v.label) for v in item.vocabulary.values],
            )
            self.result_items.append((name, item.code))
        if spec is not None and spec.rule == "days":
            # 便潜血: the days, or (a national-format report) the 2日分 judgement alone.
            self.fields[
                self.result_items[-1][0]
            ].help_text = "日ごとの結果がないときだけ（全国様式の報告など）"
        if setting == Setting.GROUP:
            self.fields["place"] = forms.CharField(label="検診場所", max_length=100, required=False)
        if method in SMOKING_METHODS:
            self.fields["smoking_index"] = forms.IntegerField(
                label="喫煙指数（1日の本数×年数）", min_value=0, max_value=9999, required=False
            )
        if method == HPV_METHOD:
            self.fields["hpv_follow_up"] = forms.BooleanField(
                label="追跡検査（トリアージ陰性から 1 年後の検査）", required=False
            )
        self.fields["complication"] = forms.CharField(
            label="偶発症（あれば）", max_length=200, required=False
        )

    def clean_exam_date(self) -> date | None:
        return _date(self.cleaned_data.get("exam_date", ""), label="受診日")

    def clean(self) -> dict[str, Any]:
        """A 便潜血 result missing a day, or whose judgement contradicts its days, is said
        beside the field (programs.days_problems), not after the whole form."""
        data = super().clean()
        for problem in programs.days_problems(self.method, self.results()):
            self.add_error(f"r_{problem.item}", problem.message)
        return data

    def results(self) -> dict[str, str]:
        return {code: self.cleaned_data[name] for name, code in self.result_items
                if self.cleaned_data.get(name)}  # fmt: skip


class CaseForm(forms.ModelForm):
    """What staff learn about a 精検 case; ``version`` is the version the page showed."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    case_id = forms.IntegerField(widget=forms.HiddenInput)

    class Meta:
        model = FollowUpCase
        fields = sorted(CASE_FIELDS)
        widgets = {
            name: forms.DateInput(attrs={"type": "date"})
            for name in ("form_issued_on", "form_returned_on", "survey_sent_on",
                         "survey_answered_on")
        }  # fmt: skip

    def changes(self, case: FollowUpCase) -> dict[str, Any]:
        """Only the fields whose value differs from the case's (what the audit names)."""
        return {
            name: self.cleaned_data[name]
            for name in CASE_FIELDS
            if self.cleaned_data.get(name) != getattr(case, name)
        }


class ReportForm(forms.Form):
    """A 精検 report: the 精検機関's 連絡票, or the person's own account."""

    case_id = forms.IntegerField(widget=forms.HiddenInput)
    version = forms.IntegerField(widget=forms.HiddenInput)
    from_institution = forms.TypedChoiceField(
        label="報告の出どころ", coerce=lambda v: v == "1",
        choices=[("1", "精検機関（連絡票）"), ("0", "本人の申告")], widget=forms.RadioSelect,
    )  # fmt: skip
    exam_date = forms.CharField(label="精検日", max_length=20, required=False)
    institution = forms.CharField(label="精検機関", max_length=100, required=False)
    method = forms.ChoiceField(label="精検法", required=False, choices=())
    result = forms.ChoiceField(label="精検結果", required=False, choices=())
    pathology = forms.CharField(label="病理診断", max_length=200, required=False)
    stage = forms.CharField(label="病期", max_length=30, required=False)
    early_cancer = forms.NullBooleanField(label="早期がん", required=False,
                                          widget=forms.NullBooleanSelect)  # fmt: skip
    complication = forms.CharField(label="偶発症（精検）", max_length=200, required=False)

    def __init__(self, *args: Any, methods: list[tuple[str, str]],
                 results: list[tuple[str, str]], **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = [("", "―"), *methods]
        self.fields["result"].choices = [("", "―"), *results]

    def clean_exam_date(self) -> date | None:
        return _date(self.cleaned_data.get("exam_date", ""), required=False, label="精検日")
