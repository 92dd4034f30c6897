"""Staff forms of the roster: build, the list's filters and purpose, export, 受診不要, override."""

from __future__ import annotations

from datetime import date

from django import forms

from kenshin.accounts.stepup import StepUpField
from kenshin.core.purposes import Purpose
from kenshin.core.wareki import parse_date
from kenshin.programs.rules import REASONS
from kenshin.screening import services
from kenshin.screening.build import RosterBuildError, check_base_date

PURPOSE_REQUIRED = "利用目的を選んでください（目的のない一覧表示・閲覧・出力はできません）"


def purpose_field() -> forms.ChoiceField:
    """The 利用目的 select (ACL-04): required, nothing chosen in advance (as residents' search:
    a preselected purpose would be recorded for every list without anyone thinking about it)."""
    return forms.ChoiceField(
        label="利用目的",
        choices=[("", "選択してください"), *Purpose.choices],
        required=True,
        error_messages={"required": PURPOSE_REQUIRED, "invalid_choice": PURPOSE_REQUIRED},
    )


def _date_or_none(text: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None


class BuildForm(forms.Form):
    """対象者抽出の実行: the fiscal year and, for a top-up, a later base date."""

    fiscal_year = forms.TypedChoiceField(label="年度", coerce=int, choices=())
    as_of = forms.CharField(
        label="基準日（省略すると前回の基準日、初回は4月1日）",
        required=False,
        max_length=20,
        help_text="転入者などの追加抽出は、その日を入れます。例: 2025-06-01、令和7年6月1日",
    )

    def __init__(self, *args, years: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["fiscal_year"].choices = [(y, f"{y}年度") for y in years]

    def clean_as_of(self) -> date | None:
        return _date_or_none(self.cleaned_data.get("as_of", ""))

    def clean(self):
        data = super().clean()
        fy, as_of = data.get("fiscal_year"), data.get("as_of")
        if fy and as_of:
            try:  # the build's own rule (the year or the one before it)
                check_base_date(int(fy), as_of)
            except RosterBuildError as exc:
                self.add_error("as_of", str(exc))
        return data


ELIGIBLE_CHOICES = [("yes", "対象者"), ("no", "対象外"), ("all", "すべて")]
EXCLUSION_CHOICES = [
    ("any", "問わない"),
    ("none", "受診不要を除く"),
    ("excluded", "受診不要のみ"),
    *[(code, f"受診不要: {label}") for code, label in services.EXCLUSION_REASONS.items()],
]
SEX_CHOICES = [(0, "男女"), (1, "男"), (2, "女")]


class ListForm(forms.Form):
    """Which entries of a method's roster to show (a table cell and filters), and why."""

    purpose = purpose_field()
    sex = forms.TypedChoiceField(label="性別", choices=SEX_CHOICES, coerce=int, required=False,
                                 empty_value=0)  # fmt: skip
    band = forms.CharField(label="年齢", required=False, max_length=9, widget=forms.HiddenInput)
    eligible = forms.ChoiceField(label="判定", choices=ELIGIBLE_CHOICES, initial="yes")
    reason = forms.ChoiceField(
        label="理由", required=False, choices=[("", "問わない"), *REASONS.items()]
    )
    exclusion = forms.ChoiceField(label="受診不要", choices=EXCLUSION_CHOICES, initial="any")
    page = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)

    def clean_band(self) -> services.Band | None:
        code = self.cleaned_data.get("band") or ""
        if not code:
            return None
        band = services.Band.parse(code)
        if band is None:
            raise forms.ValidationError("年齢の範囲が正しくありません")
        return band

    def query(self, fiscal_year: int, method: str) -> services.RosterQuery:
        d = self.cleaned_data
        return services.RosterQuery(
            fiscal_year=fiscal_year,
            method=method,
            sex=d.get("sex") or 0,
            band=d.get("band"),
            eligible=d.get("eligible") or "yes",
            reason=d.get("reason") or "",
            exclusion=d.get("exclusion") or "any",
        )


class ExportForm(ListForm):
    """The same list as CSV: the character set and a fresh code (ACL-05)."""

    encoding = forms.ChoiceField(
        label="文字コード",
        choices=list(services.ENCODINGS.items()),
        initial="utf-8-sig",
        widget=forms.RadioSelect,
        help_text="Shift_JIS で表せない文字（一部の人名漢字など）は「〓」になります。",
    )
    code = StepUpField()


class PurposeForm(forms.Form):
    purpose = purpose_field()


class ExclusionForm(forms.Form):
    """受診不要の登録・変更・取消 for one programme."""

    programme = forms.CharField(widget=forms.HiddenInput, max_length=20)
    reason = forms.ChoiceField(
        label="理由",
        required=False,
        choices=[("", "選択してください"), *services.EXCLUSION_REASONS.items()],
    )
    note = forms.CharField(
        label="備考",
        required=False,
        max_length=200,
        help_text="「その他」のときは必須。病名などの詳しい事情は書かないでください。",
    )
    remove = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if not data.get("remove") and not data.get("reason"):
            self.add_error("reason", "受診不要の理由を選んでください")
        return data


OVERRIDE_CHOICES = [
    ("yes", "対象とする"),
    ("no", "対象外とする"),
    ("clear", "職員の判断を取り消す"),
]


class OverrideForm(forms.Form):
    """職員の判断: set eligibility by hand (with the reason and a fresh code), or withdraw it."""

    method = forms.CharField(widget=forms.HiddenInput, max_length=30)
    decision = forms.ChoiceField(label="判断", choices=OVERRIDE_CHOICES, widget=forms.RadioSelect)
    note = forms.CharField(
        label="判断の理由",
        required=False,
        max_length=200,
        help_text="対象・対象外とするときは必須。記録に残り、名簿を作り直しても保たれます。",
    )
    code = StepUpField()
