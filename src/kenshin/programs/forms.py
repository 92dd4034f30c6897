"""Staff forms of the programme catalogue: copy a year forward, adjust one method.

Both change the rules every roster of the year is built from, so both carry a fresh TOTP code
(programs.edit is declared with step-up) and record who did it and why.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django import forms

from kenshin.accounts.stepup import StepUpField
from kenshin.programs.catalogue import COHORTS, SETTINGS, Method

NOTE_HELP = "何を・なぜ変えたか（要綱の改正、契約単価の改定など）。版の履歴に残ります。"


class CopyForwardForm(forms.Form):
    """翌年度へ複写: the year's latest version becomes the next year's first version."""

    note = forms.CharField(
        label="メモ（任意）",
        required=False,
        max_length=500,
        help_text="例: 令和9年度の準備のため複写。",
    )
    code = StepUpField()


_SPLIT = re.compile(r"[,、\s]+")


def parse_ages(text: str) -> list[int]:
    """「30, 35、40」 → [30, 35, 40]: commas (half- or full-width), 、 or spaces between ages.

    Full-width digits are folded (NFKC) because staff type them as often as ASCII.
    """
    text = unicodedata.normalize("NFKC", text or "").strip()
    if not text:
        return []
    ages = []
    for part in _SPLIT.split(text):
        if not part:
            continue
        part = part.removesuffix("歳")
        if not part.isdigit():
            raise forms.ValidationError(
                "年齢を数字で、カンマ（,）区切りで書いてください（例: 30, 35, 40）"
            )
        ages.append(int(part))
    return ages


def _age_field(label: str, required: bool = True, help_text: str = "") -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=required,
        min_value=0,
        max_value=130,
        help_text=help_text,
        error_messages={"invalid": "年齢を数字で書いてください"},
    )


def _yen_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=0,
        max_value=1_000_000,
        help_text="円。実施しない方式は空欄",
        error_messages={"invalid": "金額を数字（円）で書いてください"},
    )


class MethodAdjustForm(forms.Form):
    """調整: the items of one method that change from year to year, with the reason.

    ``values()`` gives them in the catalogue document's terms; the whole new document is then
    validated by catalogue.parse, whose message (with its place) is shown on this form.
    """

    min_age = _age_field("下限年齢（年度末年齢）")
    max_age = _age_field("上限年齢", required=False, help_text="上限がなければ空欄")
    milestones = forms.CharField(
        label="節目年齢",
        required=False,
        max_length=200,
        help_text="カンマ区切り（例: 30, 35, 40）。節目のない検診は空欄",
    )
    cohort = forms.ChoiceField(
        label="偶数・奇数年齢",
        required=False,
        choices=list(COHORTS.items()),
        help_text="2年に1回の検診で、市が対象とする年齢",
    )
    settings = forms.MultipleChoiceField(
        label="実施方式",
        choices=list(SETTINGS.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "個別・集団のどちらかを選んでください"},
    )
    copay_individual = _yen_field("自己負担（個別）")
    copay_group = _yen_field("自己負担（集団）")
    unit_price_individual = _yen_field("委託料単価（個別）")
    unit_price_group = _yen_field("委託料単価（集団）")
    enabled = forms.BooleanField(label="この年度に実施する", required=False)
    note = forms.CharField(
        label="変更理由",
        max_length=500,
        help_text=NOTE_HELP,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "変更理由を書いてください"},
    )
    based_on = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    code = StepUpField()

    # catalogue.parse's place (the last part of "programmes[4].methods[0].max_age") → field.
    PLACE_FIELDS = {
        "min_age": "min_age",
        "max_age": "max_age",
        "milestones": "milestones",
        "cohort": "cohort",
        "settings": "settings",
    }

    @classmethod
    def initial_for(cls, method: Method, version: int) -> dict[str, Any]:
        return {
            "min_age": method.min_age,
            "max_age": method.max_age,
            "milestones": ", ".join(str(a) for a in method.milestones),
            "cohort": method.cohort,
            "settings": list(method.settings),
            "copay_individual": method.copay.get("individual"),
            "copay_group": method.copay.get("group"),
            "unit_price_individual": method.unit_price.get("individual"),
            "unit_price_group": method.unit_price.get("group"),
            "enabled": method.enabled,
            "based_on": version,
        }

    def clean_milestones(self) -> list[int]:
        return parse_ages(self.cleaned_data.get("milestones", ""))

    def clean_note(self) -> str:
        note = (self.cleaned_data.get("note") or "").strip()
        if not note:
            raise forms.ValidationError("変更理由を書いてください")
        return note

    def values(self) -> dict[str, Any]:
        """The adjusted items as the catalogue document writes them (empty = key left out).

        Amounts are kept only for the settings chosen: a setting that is not run has no price.
        """
        data = self.cleaned_data
        chosen = [s for s in SETTINGS if s in data["settings"]]
        amounts = {
            kind: {s: data[f"{kind}_{s}"] for s in chosen if data.get(f"{kind}_{s}") is not None}
            for kind in ("copay", "unit_price")
        }
        return {
            "min_age": data["min_age"],
            "max_age": data.get("max_age"),
            "milestones": data.get("milestones") or [],
            "cohort": data.get("cohort") or "",
            "settings": chosen,
            "copay": amounts["copay"],
            "unit_price": amounts["unit_price"],
            # The document leaves out ``enabled = true`` (the default), as the shipped files do.
            "enabled": None if data.get("enabled") else False,
        }

    def add_catalogue_error(self, message: str) -> None:
        """Show a catalogue.parse refusal beside the field it is about, else above the form."""
        place, sep, text = message.partition(": ")
        key = place.rsplit(".", 1)[-1] if sep else ""
        field = self.PLACE_FIELDS.get(key)
        if field:
            self.add_error(field, text)
        elif key in ("copay", "unit_price"):
            missing = next((s for s, label in SETTINGS.items() if label in text), "individual")
            self.add_error(f"{key}_{missing}", text)
        else:
            self.add_error(None, message)
