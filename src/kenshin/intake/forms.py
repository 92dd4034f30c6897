"""Forms of the intake screens (labels and messages in Japanese)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from kenshin.core import clock
from kenshin.core.csvfile import ENCODINGS
from kenshin.core.fiscal import fiscal_year_of
from kenshin.intake.models import CommitMode


class UploadForm(forms.Form):
    file = forms.FileField(
        label="検診結果ファイル",
        help_text="CSV（UTF-8 か Shift_JIS）、Excel のブック（.xlsx）、FHIR（.json / .ndjson）",
    )
    fiscal_year = forms.IntegerField(label="契約年度（西暦）", min_value=2000, max_value=2100)
    sender_institution = forms.RegexField(
        label="送付元の医療機関コード", regex=r"^\d{10}$", required=False,
        help_text="一つの医療機関からのファイルのとき。医師会などのまとめたファイルは空欄",
        error_messages={"invalid": "医療機関コードは 10 桁の数字です"},
    )  # fmt: skip
    profile = forms.ChoiceField(label="列の対応表", required=False)

    def __init__(self, *args, profiles: list[str] = (), **kwargs):  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [("", "（Kenshin 標準の列）")] + [(p, p) for p in profiles]
        if not self.is_bound:
            self.initial.setdefault("fiscal_year", fiscal_year_of(clock.today()))

    def clean_file(self):
        f = self.cleaned_data["file"]
        if f.size > settings.INTAKE_MAX_BYTES:
            raise forms.ValidationError(
                f"ファイルが大きすぎます（上限 {settings.INTAKE_MAX_BYTES:,} バイト）"
            )
        return f


class CommitForm(forms.Form):
    mode = forms.ChoiceField(label="確定の方法", choices=CommitMode.choices,
                             widget=forms.RadioSelect, initial=CommitMode.ALL)  # fmt: skip


class ErrorFileForm(forms.Form):
    encoding = forms.ChoiceField(label="文字コード", choices=list(ENCODINGS.items()),
                                 initial="cp932")  # fmt: skip


class ResolveForm(forms.Form):
    choice = forms.CharField(widget=forms.HiddenInput, required=False)
    decision = forms.ChoiceField(
        label="判断", widget=forms.RadioSelect,
        choices=[("accept", "選んだ方の受診として取り込む"), ("reject", "取り込まない")],
    )  # fmt: skip
    atena_no = forms.ChoiceField(label="この方の受診", required=False, widget=forms.RadioSelect)
    reason = forms.CharField(label="判断の理由", max_length=200,
                             help_text="例: 医療機関に電話で確認（生年月日の誤記）")  # fmt: skip

    def __init__(self, *args, candidates: list[tuple[str, str]] = (), **kwargs):  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.fields["atena_no"].choices = candidates

    def clean(self):
        data = super().clean()
        if data.get("decision") == "accept" and not data.get("atena_no"):
            self.add_error("atena_no", "取り込む方を選んでください")
        return data


class ProfileForm(forms.Form):
    """A clinic's column profile as staff write it: one column per line, ``their header =
    our column`` (our Japanese header or its key), and value rewrites ``column: a=b, c=d``."""

    name = forms.CharField(label="名前", max_length=60, help_text="例: A医院（2025年版）")
    description = forms.CharField(label="説明", max_length=200, required=False)
    mapping = forms.CharField(
        label="列の対応", widget=forms.Textarea(attrs={"rows": 10}),
        help_text="1 行に 1 列。「ファイルの見出し = Kenshin の見出し」（例: 券番号 = 受診券番号）",
    )  # fmt: skip
    values = forms.CharField(
        label="値の読み替え", widget=forms.Textarea(attrs={"rows": 4}), required=False,
        help_text="1 行に 1 項目。「Kenshin の見出し: ファイルの値=値, …」（例: 性別: M=1, F=2）",
    )  # fmt: skip

    @staticmethod
    def _column(text: str, line_no: int) -> str:
        from kenshin.intake.layout import BY_HEADER, BY_KEY

        text = text.strip()
        if text in BY_HEADER:
            return BY_HEADER[text].key
        if text in BY_KEY:
            return text
        raise forms.ValidationError(f"{line_no} 行目: 「{text}」は Kenshin の列ではありません")

    def clean_mapping(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for n, line in enumerate(self.cleaned_data["mapping"].splitlines(), start=1):
            if not line.strip():
                continue
            theirs, sep, ours = line.partition("=")
            if not sep or not theirs.strip():
                raise forms.ValidationError(f"{n} 行目: 「見出し = 列」の形で書いてください")
            out[theirs.strip()] = self._column(ours, n)
        if not out:
            raise forms.ValidationError("列の対応を 1 行以上書いてください")
        return out

    def clean_values(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for n, line in enumerate(self.cleaned_data["values"].splitlines(), start=1):
            if not line.strip():
                continue
            column, sep, pairs = line.partition(":")
            if not sep:
                raise forms.ValidationError(f"{n} 行目: 「列: 値=値, …」の形で書いてください")
            rewrites: dict[str, str] = {}
            for pair in pairs.split(","):
                theirs, eq, ours = pair.partition("=")
                if not eq:
                    raise forms.ValidationError(f"{n} 行目: 「{pair.strip()}」に = がありません")
                rewrites[theirs.strip()] = ours.strip()
            out[self._column(column, n)] = rewrites
        return out
