"""The national 自治体検診 FHIR documents (JAMI eMunicipalCheckupIG, FHIR R4 JSON) in and out.

Why here, and why by hand: clinics that already write the national electronic format should
not have to fill in our CSV as well, and the city may be asked to hand results on in the same
format. The Bundles are plain JSON; a FHIR library would validate nothing the IG requires
(there is no JP Core package) and would add a dependency, so the few resources we read are
read with the standard library.

In: :func:`bundle_rows` turns each Bundle into rows of the Kenshin result layout
(``layout.SourceRow``), one row per primary exam method found, so that validation, matching
and the error file treat a FHIR file like any other intake file. Result values become our
vocabulary codes only where ``programs/vocabularies.toml`` names the national code (``jami``)
and exactly one value carries it; anything else is kept as ``jami:<code>`` so that validation
refuses it visibly — a mapping is never guessed. A file that is not what it claims is refused
whole (:class:`FhirFormatError`), naming the Bundle.

Out: :func:`exam_bundle` writes one stored exam as a document Bundle in the national shape,
and refuses (:class:`FhirExportError`) a value the national code tables, as far as we know
them, cannot express. :func:`national_items` is what a round trip compares.

docs/formats/fhir.md lists every national item read, ignored or refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kenshin.core import clock
from kenshin.intake.layout import COLUMNS, SourceRow
from kenshin.intake.rules import NATIONAL_CODE
from kenshin.programs import vocabularies

# ------------------------------------------------------------------------------ national codes

ITEM_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/jlac10"
GROUP_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/observationGroup-codes"
CATEGORY_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/checkup-report-category"
CHECKUP_TYPE_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/checkup-type-code"
ENCOUNTER_TYPE_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/checkup-encounter-type"
SECTION_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/section-code"
SPECIMEN_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/jlac10-specimen-codes"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
NAME_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
INSTITUTION_SYSTEM = "urn:oid:1.2.392.200119.6.102"  # 保険医療機関番号 (10 digits)
BUNDLE_PROFILE = (
    "http://jpfhir.jp/fhir/eMunicipalCheckup/StructureDefinition/JP_Bundle_eMunicipalCheckup"
)
OID_PREFIX = "urn:oid:"

# 報告区分 (Composition.category) → our programme code (catalogues/*.toml), and its display.
CATEGORY_PROGRAMME: dict[str, str] = {
    "51": "lung",
    "52": "breast",
    "53": "gastric",
    "54": "cervical",
    "55": "colorectal",
    "56": "hepatitis",
    "57": "osteoporosis",
    "58": "periodontal",
}
PROGRAMME_CATEGORY: dict[str, str] = {p: c for c, p in CATEGORY_PROGRAMME.items()}
CATEGORY_NAME: dict[str, str] = {
    "51": "肺がん検診",
    "52": "乳がん検診",
    "53": "胃がん検診",
    "54": "子宮頸がん検診",
    "55": "大腸がん検診",
    "56": "肝炎ウイルス検診",
    "57": "骨粗鬆症検診",
    "58": "歯周疾患検診",
}
# 検診区分 (Composition.event.code): 1 一次検診, 2 精密検査, 3 一次検診と精密検査.
CHECKUP_TYPE_NAME = {"1": "一次検診", "2": "精密検査", "3": "一次検診と精密検査"}
# 受診方法 (Encounter.serviceType) ↔ the layout's 検診方式 and our stored setting.
SETTING_CODE = {"individual": "1", "group": "2"}
SETTING_NAME = {"1": "個別受診", "2": "集団受診"}
GENDER_SEX = {"male": "1", "female": "2"}
SEX_GENDER = {1: "male", 2: "female"}

# The national display of each code Kenshin reads or writes (not every code of each table),
# from the OID table (自治体検診の電子的標準様式に使用するOID表) as the JAMI IG's CodeSystems
# transcribe it (input/fsh/codesystems/JP-MCheckupCodeSystems.fsh; docs/formats/fhir.md).
_TARGET = {"1": "精密検査不要", "9": "判定不能"}
_OID = "1.2.392.100495.100."
NATIONAL_DISPLAY: dict[str, dict[str, str]] = {
    _OID + "2050": {"1": "所見なし", "2": "所見あり"},  # 検査所見
    _OID + "2100": {"1": "Ｂ（異常所見を認めない）",
                    "2": "Ｃ（異常所見を認めるが精査を必要としない）",
                    "3": "Ｄ（異常所見を認め、肺癌以外の疾患で治療を要する状態が考えられる）",
                    "4": "Ｅ（肺癌の疑い）", "9": "Ａ（読影不能）"},
    _OID + "2101": {"1": ("Ｂ（正常上皮細胞のみ、基底細胞増生、軽度異型扁平上皮化細胞、"
                          "線毛円柱上皮細胞）"),
                    "2": "Ｃ（中等度異型扁平上皮細胞、核の増大や濃染を伴う円柱上皮細胞）",
                    "3": "Ｄ（高度（境界）異型扁平上皮細胞または悪性腫瘍が疑われる細胞を認める）",
                    "4": "Ｅ（悪性腫瘍細胞を認める）", "9": "Ａ（喀痰中に組織球を認めない）"},
    _OID + "2150": {"1": "異常認めず", "4": "肺がんの疑いのある者又は未確定",
                    "5": "肺がん以外の疾患であった者（転移性の肺がんを含む）"},
    _OID + "2200": {"1": "カテゴリー１（異常なし）", "2": "カテゴリー２（良性）",
                    "3": "カテゴリー３（良性、しかし悪性を否定できず）",
                    "4": "カテゴリー４（悪性の疑い）", "5": "カテゴリー５（悪性）"},
    _OID + "2250": {"1": "異常認めず", "5": "乳がんの疑いのある者又は未確定",
                    "6": "乳がん以外の疾患であった者（転移性の乳がんを含む）"},
    _OID + "2340": {**_TARGET, "2": "要精密検査（胃がん疑い）"},
    _OID + "2350": {"1": "異常認めず", "5": "胃がんの疑いのある者又は未確定",
                    "6": "胃がん以外の疾患であった者（転移性の胃がんを含む）"},
    _OID + "2400": {"1": "NILM（陰性）", "2": "ASC-US（意義不明異型扁平上皮）",
                    "3": "ASC-H（高度病変を除外できない異型扁平上皮）",
                    "4": "LSIL（軽度扁平上皮内病変）", "5": "HSIL （高度扁平上皮内病変）",
                    "6": "SCC（扁平上皮癌）", "7": "AGC（異型腺細胞）",
                    "8": "AIS（上皮内腺癌）", "9": "Adenocarcinoma（腺癌）",
                    "10": "Other（その他の悪性腫瘍）"},
    _OID + "2450": {"1": "異常認めず", "9": "子宮頸がんの疑いのある者又は未確定"},
    _OID + "2500": {"1": "陰性", "2": "陽性", "9": "判定不能"},  # 便潜血検査判定
    _OID + "2540": {**_TARGET, "2": "要精密検査（大腸がん疑い）"},
    _OID + "2550": {"1": "異常認めず", "5": "大腸がんの疑いのある者又は未確定",
                    "9": "大腸がん及び腺腫以外の疾患であった者（転移性の大腸がんを含む）"},
    _OID + "2640": {"1": "陰性", "2": "陽性"},
    _OID + "2641": {"1": "現在、Ｃ型肝炎ウイルスに感染している可能性が低い",
                    "2": "現在、Ｃ型肝炎ウイルスに感染している可能性が高い"},
    _OID + "2740": {"1": "異常認めず", "2": "要指導", "3": "要精密検査"},
    _OID + "2840": {"1": "異常認めず", "2": "要指導", "3": "要精密検査"},
}  # fmt: skip


@dataclass(frozen=True)
class NationalItem:
    """One item of the national item table (jami-municipal-checkup-items-20220131.csv)."""

    code: str  # 17-digit item code (JLAC10 style)
    name: str  # データ項目名
    category: str  # Observation.category
    system: str = ""  # OID of the value's code table ('' for integer and date items)
    group: str = ""  # 一連検査グループコード (the hasMember parent), '' for none


_ITEMS = (
    # 肺 (51)
    NationalItem("9N737000000000012", "肺がん検診時の喫煙指数", "social-history"),
    NationalItem("9P502000000000011", "肺がん検診の胸部エックス線検査判定", "imaging",
                 "1.2.392.100495.100.2100", "9P500"),
    NationalItem("7A030161506144349", "肺がん検診の喀痰検査受診日", "laboratory", "", "7A030"),
    NationalItem("7A030000006144311", "肺がん検診の喀痰検査判定", "laboratory",
                 "1.2.392.100495.100.2101", "7A030"),
    NationalItem("9P504000000000011", "肺がん検診の精密検査対象有無", "exam",
                 "1.2.392.100495.100.2140"),
    NationalItem("9P506000000000011", "肺がん検診による偶発症の有無", "exam",
                 "1.2.392.100495.100.2010"),
    NationalItem("9P507000000000011", "肺がん検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2150"),
    # 乳 (52)
    NationalItem("9N281000000000011", "乳がん検診のマンモグラフィー検査判定", "imaging",
                 "1.2.392.100495.100.2200", "9N281"),
    NationalItem("9P522000000000011", "乳がん検診の精密検査対象有無", "exam",
                 "1.2.392.100495.100.2240"),
    NationalItem("9P524000000000011", "乳がん検診による偶発症の有無", "exam",
                 "1.2.392.100495.100.2010"),
    NationalItem("9P525000000000011", "乳がん検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2250"),
    # 胃 (53)
    NationalItem("9P542160700000011", "胃がん検診の胃部エックス線検査検査判定", "imaging",
                 "1.2.392.100495.100.2050", "9P542"),
    NationalItem("9P544160700000011", "胃がん検診の胃内視鏡検査検査判定", "procedure",
                 "1.2.392.100495.100.2050", "9P544"),
    NationalItem("9P546000000000011", "胃がん検診の精密検査の対象有無", "exam",
                 "1.2.392.100495.100.2340"),
    NationalItem("9P548000000000011", "胃がん検診による偶発症の有無", "exam",
                 "1.2.392.100495.100.2010"),
    NationalItem("9P549000000000011", "胃がん検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2350"),
    # 子宮頸 (54)
    NationalItem("7A021000008543311", "子宮頸がん検診の頸部細胞診検査判定", "laboratory",
                 "1.2.392.100495.100.2400", "7A021"),
    NationalItem("9P562000000000011", "子宮頸がん検診の精密検査の対象有無", "laboratory",
                 "1.2.392.100495.100.2440"),
    NationalItem("9P564000000000011", "子宮頚がん検診による偶発症の有無", "exam",
                 "1.2.392.100495.100.2010"),
    NationalItem("9P565000000000011", "子宮頸がん検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2450"),
    # 大腸 (55)
    NationalItem("1B040000001599811", "大腸がん検診の便潜血検査判定", "laboratory",
                 "1.2.392.100495.100.2500", "1B040"),
    NationalItem("9P582000000000011", "大腸がん検診の精密検査の対象有無", "exam",
                 "1.2.392.100495.100.2540"),
    NationalItem("9P584000000000011", "大腸がん検診による偶発症の有無", "exam",
                 "1.2.392.100495.100.2010"),
    NationalItem("9P585000000000011", "大腸がん検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2550"),
    # 肝炎 (56)
    NationalItem("9P615000000000011", "肝炎ウイルス検診のB型肝炎ウイルス検査判定", "laboratory",
                 "1.2.392.100495.100.2640"),
    NationalItem("9N401000000000011", "肝炎ウイルス検診のC型肝炎ウイルス検査判定", "laboratory",
                 "1.2.392.100495.100.2641"),
    NationalItem("9P616000000000011", "肝炎ウイルス検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2650"),
    # 骨粗鬆症 (57)
    NationalItem("9P637000000000011", "骨粗鬆症検診の判定", "exam", "1.2.392.100495.100.2740"),
    NationalItem("9P638000000000011", "骨粗鬆症検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2750"),
    # 歯周 (58)
    NationalItem("9P690000000000011", "歯周疾患検診の判定区分", "exam", "1.2.392.100495.100.2840"),
    NationalItem("9P691000000000011", "歯周疾患検診の精密検査結果", "exam",
                 "1.2.392.100495.100.2850"),
)  # fmt: skip
ITEMS: dict[str, NationalItem] = {i.code: i for i in _ITEMS}

# 一連検査グループ: the parent Observation (hasMember) and, for a specimen test, its specimen.
GROUPS: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    # code: (display, Observation.category, (specimen code, specimen name) or None)
    "9P500": ("胸部エックス線検査", "imaging", None),
    "7A030": ("喀痰検査", "laboratory", ("061", "喀痰")),
    "9N281": ("マンモグラフィー検査", "imaging", None),
    "9P542": ("胃エックス線検査", "imaging", None),
    "9P544": ("胃内視鏡検査", "procedure", None),
    "7A021": ("頸部細胞診検査", "laboratory", ("085", "擦過物")),
    "1B040": ("便潜血検査", "laboratory", ("015", "便")),
    "9Z507": ("DXA検査", "imaging", None),
    "9Z541": ("骨粗鬆症超音波検査", "imaging", None),
}

# Our method → its result items as national items: (our item code, national item code).
# cytology's 標本の適否 has no national item (see _ADEQUACY); 便潜血 has one 判定 for both
# days (see _read_fecal). The osteoporosis methods share the 検診判定 9P637 and are told
# apart by their measurement group (METHOD_GROUP).
METHOD_ITEMS: dict[str, tuple[tuple[str, str], ...]] = {
    "chest_xray": (("judgement", "9P502000000000011"),),
    "sputum_cytology": (("judgement", "7A030000006144311"),),
    "mammography": (("category", "9N281000000000011"),),
    "gastric_xray": (("judgement", "9P542160700000011"),),
    "gastric_endoscopy": (("judgement", "9P544160700000011"),),
    "cytology": (("bethesda", "7A021000008543311"),),
    "fecal_occult_blood": (("overall", "1B040000001599811"),),
    "hepatitis_test": (("hbs", "9P615000000000011"), ("hcv", "9N401000000000011")),
    "dxa": (("judgement", "9P637000000000011"),),
    "bone_ultrasound": (("judgement", "9P637000000000011"),),
    "periodontal_exam": (("judgement", "9P690000000000011"),),
}
METHOD_PROGRAMME: dict[str, str] = {
    "chest_xray": "lung",
    "sputum_cytology": "lung",
    "mammography": "breast",
    "gastric_xray": "gastric",
    "gastric_endoscopy": "gastric",
    "cytology": "cervical",
    "fecal_occult_blood": "colorectal",
    "hepatitis_test": "hepatitis",
    "dxa": "osteoporosis",
    "bone_ultrasound": "osteoporosis",
    "periodontal_exam": "periodontal",
}
# Osteoporosis: measurement group → our method. X線 (MD法) and CT are not in our catalogue:
# their rows carry ``jami:<group>`` as the method, which validation refuses.
METHOD_GROUP = {"dxa": "9Z507", "bone_ultrasound": "9Z541"}
_OSTEO_GROUPS = ("9Z507", "9Z541", "9Z531", "9Z536")
_GROUP_METHOD = {g: m for m, g in METHOD_GROUP.items()}

# The programme's 精密検査結果 item and the national codes (OID表 2150–2550) whose meaning is
# one of our ``[[seiken]]`` results: 異常認めず, がんの疑いのある者又は未確定, and がん以外の
# 疾患 (大腸: がん及び腺腫以外; 子宮頸: not mapped, its table counts AIS and CIN apart).
# Not mapped: がんであった者 and its sub-classes (早期がん, 粘膜内がん, 臨床病期0～Ⅰ期, 非浸潤
# がん — each its own code, which Kenshin's row cannot hold, so our 'cancer' has no one code),
# 腺腫 (by size), and 子宮頸's CIN/AIS. These read as ``jami:<code>``: the row's primary exam is
# taken in and the 精検 is flagged for staff (intake/rules.py).
SEIKEN_ITEMS: dict[str, str] = {
    "51": "9P507000000000011",
    "52": "9P525000000000011",
    "53": "9P549000000000011",
    "54": "9P565000000000011",
    "55": "9P585000000000011",
    "56": "9P616000000000011",
    "57": "9P638000000000011",
    "58": "9P691000000000011",
}
SEIKEN_RESULTS: dict[str, dict[str, str]] = {
    "51": {"1": "no_abnormality", "4": "suspected", "5": "other_disease"},
    "52": {"1": "no_abnormality", "5": "suspected", "6": "other_disease"},
    "53": {"1": "no_abnormality", "5": "suspected", "6": "other_disease"},
    "54": {"1": "no_abnormality", "9": "suspected"},
    "55": {"1": "no_abnormality", "5": "suspected", "9": "other_disease"},
}
# 精密検査対象有無 (read for national_items only: Kenshin decides 要精検 from the result).
SEIKEN_TARGET_ITEMS = {
    "51": "9P504000000000011",
    "52": "9P522000000000011",
    "53": "9P546000000000011",
    "54": "9P562000000000011",
    "55": "9P582000000000011",
}
# 偶発症の有無 (code table 2010; code 1 「なし」 in every sample).
COMPLICATION_ITEMS = {
    "51": "9P506000000000011",
    "52": "9P524000000000011",
    "53": "9P548000000000011",
    "54": "9P564000000000011",
    "55": "9P584000000000011",
}
COMPLICATION_NONE = "1"
SMOKING_ITEM = "9N737000000000012"
SPUTUM_DATE_ITEM = "7A030161506144349"
# A Bethesda category is reported only for a specimen that could be evaluated (ベセスダ
# システム2001: an unsatisfactory specimen gets no interpretation), so a 頸部細胞診判定 that
# maps to one of our Bethesda values implies 標本の適否 適正. The national format has no
# separate 適否 item; an unmapped 判定 leaves 適否 blank.
_ADEQUACY = "adequate"

# Items whose presence makes a Bundle's row, per 報告区分 (the methods to yield, in order).
_PRIMARY: dict[str, tuple[tuple[str, str], ...]] = {
    "51": (("9P502000000000011", "chest_xray"), ("7A030000006144311", "sputum_cytology")),
    "52": (("9N281000000000011", "mammography"),),
    "53": (("9P542160700000011", "gastric_xray"), ("9P544160700000011", "gastric_endoscopy")),
    "54": (("7A021000008543311", "cytology"),),
    "55": (("1B040000001599811", "fecal_occult_blood"),),
    "56": (("9P615000000000011", "hepatitis_test"), ("9N401000000000011", "hepatitis_test")),
    "57": (("9P637000000000011", ""),),  # method from the measurement group
    "58": (("9P690000000000011", "periodontal_exam"),),
}
_SKIPPED_STATUS = frozenset({"entered-in-error", "cancelled"})


class FhirFormatError(ValueError):
    """A Bundle cannot be read; the message (Japanese) names the Bundle and what is wrong.

    ``row_no`` is the Bundle's position in the file (1-based), the row number of the error
    list and of the error file.
    """

    def __init__(self, row_no: int, what: str) -> None:
        self.row_no = row_no
        self.what = what
        super().__init__(f"{row_no} 件目の Bundle: {what}")


class FhirExportError(ValueError):
    """An exam cannot be written in the national format without guessing a code (Japanese)."""


# ------------------------------------------------------------------------------ reading


def bundle_rows(text: str) -> Iterator[SourceRow]:
    """Rows of the Kenshin layout from one Bundle (JSON) or many (NDJSON, one per line).

    A Bundle yields one row per primary exam method it carries (a 肺がん Bundle with 胸部X線
    and 喀痰 gives two). Rows come lazily in file order; the first Bundle that cannot be read
    raises :class:`FhirFormatError` with its position, and the file is refused as a whole
    like any other intake file. Blank NDJSON lines are not counted.
    """
    text = text.lstrip("\ufeff")
    for row_no, bundle in _bundles(text):
        yield from _rows_of(bundle, row_no)


def _bundles(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        whole_error = exc
    else:
        yield 1, _as_bundle(whole, 1)
        return
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise FhirFormatError(1, "Bundle がありません（空のファイルです）")
    for row_no, line in enumerate(lines, start=1):
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            # A broken first line of a multi-line text is a broken pretty-printed Bundle:
            # the position in the whole text is the one that helps.
            raise _json_error(row_no, whole_error if row_no == 1 else exc) from None
        yield row_no, _as_bundle(parsed, row_no)


def _json_error(row_no: int, exc: json.JSONDecodeError) -> FhirFormatError:
    where = f"{exc.lineno} 行目 {exc.colno} 文字目" if exc.lineno > 1 else f"{exc.colno} 文字目"
    return FhirFormatError(
        row_no,
        f"JSON として読めません（{where}）。"
        "Bundle 1 つの JSON か、1 行に 1 つの Bundle（NDJSON）にしてください",
    )


def _as_bundle(value: Any, row_no: int) -> dict[str, Any]:
    if isinstance(value, list):
        raise FhirFormatError(
            row_no,
            "JSON の配列です。Bundle 1 つの JSON か、1 行に 1 つの Bundle（NDJSON）にしてください",
        )
    if not isinstance(value, dict):
        raise FhirFormatError(row_no, "Bundle ではありません（JSON のオブジェクトではありません）")
    if value.get("resourceType") != "Bundle":
        kind = value.get("resourceType") or "なし"
        raise FhirFormatError(row_no, f"Bundle ではありません（resourceType: {kind}）")
    return value


@dataclass
class _Document:
    """The parts of one Bundle we read, found through the Composition's references."""

    row_no: int
    bundle_id: str
    category: str
    checkup_type: str
    patient: dict[str, Any]
    encounter: dict[str, Any]
    composition: dict[str, Any]
    institution_code: str
    observations: list[dict[str, Any]]
    has_attachment: bool
    by_code: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def one(self, code: str) -> dict[str, Any] | None:
        """The single Observation with the item code (None if absent; refuses a repeat)."""
        found = self.by_code.get(code, [])
        if len(found) > 1:
            name = ITEMS[code].name if code in ITEMS else code
            raise FhirFormatError(
                self.row_no,
                f"{code}（{name}）が {len(found)} つあります。"
                "1 つの Bundle には 1 回の検診の結果だけを載せてください",
            )
        return found[0] if found else None


def _resources(bundle: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    entries = bundle.get("entry")
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            out.append((str(entry.get("fullUrl") or ""), entry["resource"]))
    return out


def _index(resources: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for full_url, resource in resources:
        if full_url:
            index[full_url] = resource
        if resource.get("id") and resource.get("resourceType"):
            index.setdefault(f"{resource['resourceType']}/{resource['id']}", resource)
    return index


def _resolve(
    index: Mapping[str, dict[str, Any]], ref: Any, kind: str | None = None
) -> dict[str, Any] | None:
    if not isinstance(ref, dict):
        return None
    resource = index.get(str(ref.get("reference") or ""))
    if resource is None or (kind and resource.get("resourceType") != kind):
        return None
    return resource


def _codings(concept: Any) -> list[dict[str, Any]]:
    if isinstance(concept, list):
        return [c for item in concept for c in _codings(item)]
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _code_in(concept: Any, system_suffix: str) -> str:
    """The code of the first coding whose system ends with the suffix ('' if none)."""
    for coding in _codings(concept):
        if str(coding.get("system", "")).endswith(system_suffix):
            return str(coding.get("code") or "")
    return ""


def _document(bundle: Mapping[str, Any], row_no: int) -> _Document:
    resources = _resources(bundle)
    index = _index(resources)
    composition = next((r for _, r in resources if r.get("resourceType") == "Composition"), None)
    if composition is None:
        raise FhirFormatError(
            row_no,
            "Composition がありません（自治体検診結果報告書の document Bundle ではありません）",
        )
    category = _code_in(composition.get("category"), "/checkup-report-category")
    if category not in CATEGORY_PROGRAMME:
        shown = category or "なし"
        raise FhirFormatError(
            row_no,
            f"報告区分（Composition.category）{shown} は読み込めません"
            "（51 肺・52 乳・53 胃・54 子宮頸・55 大腸・56 肝炎・57 骨粗鬆症・58 歯周疾患）",
        )
    patient = _resolve(index, composition.get("subject"), "Patient") or next(
        (r for _, r in resources if r.get("resourceType") == "Patient"), None
    )
    if patient is None:
        raise FhirFormatError(row_no, "Patient（受診者）がありません")
    encounter = _resolve(index, composition.get("encounter"), "Encounter") or next(
        (r for _, r in resources if r.get("resourceType") == "Encounter"), {}
    )
    events = composition.get("event") if isinstance(composition.get("event"), list) else []
    checkup_type = next(
        (c for e in events if (c := _code_in(e.get("code"), "/checkup-type-code"))), ""
    )
    observations = [
        r
        for _, r in resources
        if r.get("resourceType") == "Observation" and r.get("status") not in _SKIPPED_STATUS
    ]
    doc = _Document(
        row_no=row_no,
        bundle_id=str(bundle.get("id") or (bundle.get("identifier") or {}).get("value") or ""),
        category=category,
        checkup_type=checkup_type,
        patient=patient,
        encounter=encounter,
        composition=composition,
        institution_code=_institution(index, composition, encounter),
        observations=observations,
        has_attachment=any(r.get("resourceType") == "DocumentReference" for _, r in resources),
    )
    for obs in observations:
        for coding in _codings(obs.get("code")):
            code = str(coding.get("code") or "")
            if code:
                doc.by_code.setdefault(code, []).append(obs)
                break
    return doc


def _institution(
    index: Mapping[str, dict[str, Any]], composition: Mapping[str, Any], encounter: Mapping
) -> str:
    """The 医療機関コード of the performing (Encounter.serviceProvider) or author Organization.

    The author may be a PractitionerRole (as in the national samples): its organization.
    """
    candidates = [_resolve(index, encounter.get("serviceProvider"), "Organization")]
    for ref in composition.get("author") or []:
        author = _resolve(index, ref)
        if author and author.get("resourceType") == "PractitionerRole":
            author = _resolve(index, author.get("organization"), "Organization")
        candidates.append(
            author if author and author.get("resourceType") == "Organization" else None
        )
    candidates.append(_resolve(index, composition.get("custodian"), "Organization"))
    for org in candidates:
        for ident in (org or {}).get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") == INSTITUTION_SYSTEM:
                return str(ident.get("value") or "")
    return ""


def _name_kana(patient: Mapping[str, Any]) -> str:
    for name in patient.get("name") or []:
        if not isinstance(name, dict):
            continue
        reps = [
            e.get("valueCode")
            for e in name.get("extension") or []
            if isinstance(e, dict) and e.get("url") == NAME_REPRESENTATION
        ]
        if "SYL" not in reps:
            continue
        parts = [str(name.get("family") or ""), *(str(g) for g in name.get("given") or [])]
        parts = [p for p in parts if p]
        return "\u3000".join(parts) if parts else str(name.get("text") or "")
    return ""


def _date_of(value: Any) -> str:
    return str(value)[:10] if value else ""


def _exam_date(doc: _Document) -> str:
    start = (doc.encounter.get("period") or {}).get("start")
    if not start:
        events = doc.composition.get("event") or []
        start = next((e.get("period", {}).get("start") for e in events if e.get("period")), "")
    return _date_of(start)


def _end_date(doc: _Document) -> str:
    end = (doc.encounter.get("period") or {}).get("end")
    if not end:
        events = doc.composition.get("event") or []
        end = next((e.get("period", {}).get("end") for e in events if e.get("period")), "")
    return _date_of(end) or _exam_date(doc)


def _value_code(obs: Mapping[str, Any], system: str = "") -> tuple[str, str, str]:
    """(system, code, display) of a coded value; the coding with the expected system first."""
    codings = _codings(obs.get("valueCodeableConcept"))
    chosen = next((c for c in codings if c.get("system") == system), None) if system else None
    chosen = chosen or (codings[0] if codings else {})
    return (
        str(chosen.get("system") or ""),
        str(chosen.get("code") or ""),
        str(chosen.get("display") or ""),
    )


def _our_value(
    method: str, item: str, obs: Mapping[str, Any] | None, target: Mapping[str, Any] | None = None
) -> str:
    """Our vocabulary code for a national coded value, or ``jami:<code>`` when not exactly one.

    Only a value whose code-table OID is the vocabulary's ``jami_system`` and whose code is
    the ``jami`` of exactly one value read back (``jami_read``) maps; a code shared by two
    values (胸部X線 E1/E2 both 4) is ambiguous and kept as ``jami:<code>`` too. A vocabulary
    with a ``jami_target_system`` (胃: 所見あり/なし) is read as the pair of the 判定 and
    ``target``, the programme's 精密検査対象有無 (``jami:<code>/<target code>`` when none).
    """
    if obs is None:
        return ""
    spec = vocabularies.results_of(method)
    vocabulary = spec.item(item).vocabulary if spec and spec.item(item) else None
    expected = OID_PREFIX + vocabulary.jami_system if vocabulary and vocabulary.jami_system else ""
    system, code, _ = _value_code(obs, expected)
    if not code:
        return ""
    paired = bool(vocabulary and vocabulary.jami_target_system)
    wanted = ""
    if vocabulary and paired:
        target_system = OID_PREFIX + vocabulary.jami_target_system
        found_system, wanted, _ = _value_code(target, target_system) if target else ("", "", "")
        if found_system != target_system:
            wanted = ""
    if vocabulary and expected and system == expected and (wanted or not paired):
        matches = [
            v.code
            for v in vocabulary.values
            if v.jami == code and v.jami_read and (not paired or v.jami_target == wanted)
        ]
        if len(matches) == 1:
            return matches[0]
    return f"{NATIONAL_CODE}{code}/{wanted}" if paired else f"{NATIONAL_CODE}{code}"


def _integer(obs: Mapping[str, Any] | None) -> str:
    if obs is None:
        return ""
    if "valueInteger" in obs:
        return str(obs["valueInteger"])
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, dict) and "value" in quantity:
        value = quantity["value"]
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return str(obs.get("valueString") or "")


def _methods(doc: _Document) -> list[str]:
    """The primary exam methods the Bundle carries, in the national item order."""
    methods: list[str] = []
    for code, method in _PRIMARY[doc.category]:
        if code in doc.by_code and method and method not in methods:
            methods.append(method)
    if doc.category == "57":
        groups = [g for g in _OSTEO_GROUPS if any(c.startswith(g) for c in doc.by_code)]
        methods = [_GROUP_METHOD.get(g, f"{NATIONAL_CODE}{g}") for g in groups]
        if not methods and "9P637000000000011" in doc.by_code:
            methods = [""]  # a 判定 without its measurement: validation asks for the method
    return methods


def _refuse_empty(doc: _Document) -> None:
    if doc.has_attachment and not doc.observations:
        raise FhirFormatError(
            doc.row_no,
            "結果が CDA（XML の添付文書、DocumentReference）だけで、Observation がありません。"
            "CDA の様式は読み込みません。結果を Observation で載せた Bundle にしてください",
        )
    codes = "、".join(code for code, _ in _PRIMARY[doc.category])
    only_seiken = (
        "精密検査だけの文書（検診区分 2）は読み込みません。" if doc.checkup_type == "2" else ""
    )
    raise FhirFormatError(
        doc.row_no,
        f"{CATEGORY_NAME[doc.category]}の一次検診の判定（{codes}）がありません。{only_seiken}",
    )


def _rows_of(bundle: Mapping[str, Any], row_no: int) -> Iterator[SourceRow]:
    doc = _document(bundle, row_no)
    methods = _methods(doc)
    if not methods:
        _refuse_empty(doc)
    programme = CATEGORY_PROGRAMME[doc.category]
    gender = str(doc.patient.get("gender") or "")
    base = {c.key: "" for c in COLUMNS}
    base.update(
        birth_date=_date_of(doc.patient.get("birthDate")),
        sex=GENDER_SEX.get(gender, gender),
        name_kana=_name_kana(doc.patient),
        exam_date=_exam_date(doc),
        institution_code=doc.institution_code,
        setting=_code_in(doc.encounter.get("serviceType"), "/checkup-encounter-type"),
        programme=programme,
        complication=_complication(doc),
    )
    seiken = _seiken_cells(doc)
    for method in methods:
        cells = dict(base, method=method)
        cells.update(_results(doc, method))
        if doc.category == "51":
            cells["smoking_index"] = _integer(doc.one(SMOKING_ITEM))
        if method == "sputum_cytology":
            cells["exam_date"] = (
                _date_of(_value_of(doc.one(SPUTUM_DATE_ITEM))) or cells["exam_date"]
            )
        if seiken and _may_need_seiken(method, cells):
            cells.update(seiken)
        raw = [doc.bundle_id, doc.category, base["birth_date"], gender, cells["exam_date"], method]
        yield SourceRow(row_no=row_no, cells=cells, raw=raw)


def _value_of(obs: Mapping[str, Any] | None) -> Any:
    if obs is None:
        return None
    return obs.get("valueDateTime") or obs.get("valueString")


def _results(doc: _Document, method: str) -> dict[str, str]:
    if method == "fecal_occult_blood":
        return _read_fecal(doc)
    if method not in METHOD_ITEMS:
        # osteoporosis X線/CT (jami:9Z531…) or an unknown one: the 判定 still goes to 判定
        return {"judgement": _our_value("dxa", "judgement", doc.one("9P637000000000011"))}
    # The 精密検査対象有無 is the document's, for the programme as a whole: it is half of a 胃
    # 判定 only when the document has one 胃 判定 (X線 and 内視鏡 together: neither is paired,
    # so neither is read — which of the two needs the 精検 is not said).
    target_item = SEIKEN_TARGET_ITEMS.get(doc.category)
    judged = [code for code, _ in _PRIMARY[doc.category] if code in doc.by_code]
    target = doc.one(target_item) if target_item and len(judged) == 1 else None
    cells = {
        item: _our_value(method, item, doc.one(code), target) for item, code in METHOD_ITEMS[method]
    }
    if method == "cytology":
        bethesda = cells["bethesda"]
        cells["adequacy"] = _ADEQUACY if bethesda and not bethesda.startswith(NATIONAL_CODE) else ""
    return cells


def _read_fecal(doc: _Document) -> dict[str, str]:
    """The national format has one 便潜血判定, the 2日法 as a whole: it is the row's 便潜血判定
    (``overall``), and the days stay blank — a day's result is never invented. A second 判定
    in one Bundle is refused like any repeated item."""
    whole = _our_value("fecal_occult_blood", "overall", doc.one("1B040000001599811"))
    return {"day1": "", "day2": "", "overall": whole}


def _complication(doc: _Document) -> str:
    """偶発症 (free text in our layout): blank for 「なし」 (code 1), else the national wording."""
    code_item = COMPLICATION_ITEMS.get(doc.category)
    obs = doc.one(code_item) if code_item else None
    if obs is None:
        return ""
    _, code, display = _value_code(obs, OID_PREFIX + ITEMS[code_item].system)
    if not code or code == COMPLICATION_NONE:
        return ""
    return display or f"{NATIONAL_CODE}{code}"


def _seiken_cells(doc: _Document) -> dict[str, str]:
    """The 精検 columns from a 検診区分 2・3 document's 精密検査結果, for a tracked programme.

    精検受診日 is the end of the encounter's period (the document covers 一次検診 and 精検);
    the national format has no 精検方法 or separate 精検機関, so those stay blank.
    """
    if doc.checkup_type not in ("2", "3"):
        return {}
    if vocabularies.seiken_of(CATEGORY_PROGRAMME[doc.category]) is None:
        return {}  # Kenshin does not track the 精検 of this programme
    obs = doc.one(SEIKEN_ITEMS[doc.category])
    if obs is None:
        return {}
    expected = OID_PREFIX + ITEMS[SEIKEN_ITEMS[doc.category]].system
    system, code, _ = _value_code(obs, expected)
    ours = SEIKEN_RESULTS.get(doc.category, {}).get(code) if system == expected else None
    return {"seiken_date": _end_date(doc), "seiken_result": ours or f"{NATIONAL_CODE}{code}"}


def _may_need_seiken(method: str, cells: Mapping[str, str]) -> bool:
    """False only when the row's own results are all ours and say it is not 要精検."""
    spec = vocabularies.results_of(method) if method else None
    if spec is None:
        return True
    results = {i.code: cells.get(i.code, "") for i in spec.items if cells.get(i.code)}
    if any(v.startswith(NATIONAL_CODE) for v in results.values()):
        return True
    if vocabularies.check_result(method, results):
        return True
    return vocabularies.needs_seiken(method, results)


# ------------------------------------------------------------------------------ comparing


def national_items(bundle: dict) -> dict[str, object]:
    """The national content of a Bundle that a round trip compares.

    Keys are the 17-digit item codes of the judgement and result items we know (the primary
    判定, 喀痰受診日, 喫煙指数, 精密検査対象有無 and 精密検査結果) with their code (a tuple
    when an item repeats, e.g. two 便潜血判定) or integer, plus ``Patient.birthDate``,
    ``Patient.gender``, ``Encounter.period.start``/``.end``, ``Encounter.serviceType``,
    ``Composition.category``, ``Composition.event.code`` and ``Organization.identifier``.
    """
    doc = _document(_as_bundle(bundle, 1), 1)
    out: dict[str, object] = {
        "Composition.category": doc.category,
        "Composition.event.code": doc.checkup_type,
        "Patient.birthDate": _date_of(doc.patient.get("birthDate")),
        "Patient.gender": str(doc.patient.get("gender") or ""),
        "Encounter.period.start": _exam_date(doc),
        "Encounter.period.end": _end_date(doc),
        "Encounter.serviceType": _code_in(
            doc.encounter.get("serviceType"), "/checkup-encounter-type"
        ),
        "Organization.identifier": doc.institution_code,
    }
    for code, item in ITEMS.items():
        if item.code in COMPLICATION_ITEMS.values():
            continue
        values: list[object] = []
        for obs in doc.by_code.get(code, []):
            if item.system:
                values.append(_value_code(obs, OID_PREFIX + item.system)[1])
            elif code == SMOKING_ITEM:
                text = _integer(obs)
                values.append(int(text) if text.lstrip("-").isdigit() else text)
            else:
                values.append(_date_of(_value_of(obs)))
        if values:
            out[code] = values[0] if len(values) == 1 else tuple(values)
    return out


# ------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class ExportExam:
    """One exam as Kenshin stores it, for :func:`exam_bundle`.

    ``results``: our item code → our vocabulary code (``programs/vocabularies.toml``);
    ``setting``: 'individual' | 'group'; ``sex``: 1 男 / 2 女. The 精検 fields are set when
    the 精検 result is known (the Bundle is then 検診区分 3).
    """

    birth_date: date
    sex: int
    name_kana: str
    exam_date: date
    institution_code: str
    setting: str
    programme: str
    method: str
    results: dict[str, str]
    smoking_index: int | None = None
    seiken_date: date | None = None
    seiken_result: str = ""


def exam_bundle(exam: ExportExam, *, bundle_id: str) -> dict:
    """The exam as a national 自治体検診結果報告書 document Bundle (a JSON-ready dict).

    Carries the same national items :func:`bundle_rows` reads, with the item codes and code
    tables of the national item table and our vocabularies' ``jami`` codes. A value without a
    national code (胃の判定区分, 便潜血, an inadequate specimen, a 精検結果 not confirmed in a
    sample) raises :class:`FhirExportError` rather than be written as a guess. Resource ids
    are derived from ``bundle_id``, so the same exam and id give the same document.
    """
    category = PROGRAMME_CATEGORY.get(exam.programme)
    if category is None:
        raise FhirExportError(f"検診事業 {exam.programme} は全国様式の報告区分にありません")
    if METHOD_PROGRAMME.get(exam.method) != exam.programme:
        raise FhirExportError(
            f"検査方法 {exam.method} は全国様式（{CATEGORY_NAME[category]}）の項目にありません"
        )
    if exam.setting not in SETTING_CODE:
        raise FhirExportError(f"検診方式 {exam.setting!r} は individual か group です")
    if exam.sex not in SEX_GENDER:
        raise FhirExportError(f"性別 {exam.sex!r} は 1 か 2 です")
    ids = _Ids(bundle_id)
    observations = _result_observations(exam, ids)
    questionnaire: list[dict[str, Any]] = []
    if exam.smoking_index is not None and exam.programme == "lung":
        questionnaire.append(
            _observation(ids, ITEMS[SMOKING_ITEM], {"valueInteger": exam.smoking_index})
        )
    if exam.seiken_result or exam.seiken_date:
        observations.append(_seiken_observation(exam, category, ids))
    end = exam.seiken_date or exam.exam_date
    period = {"start": exam.exam_date.isoformat(), "end": end.isoformat()}
    checkup_type = "3" if exam.seiken_result else "1"
    sections = [_section("検査結果", "01910", "検査結果セクション", observations)]
    if questionnaire:
        sections.append(_section("問診結果", "01920", "問診結果セクション", questionnaire))
    setting = SETTING_CODE[exam.setting]
    composition = {
        "resourceType": "Composition",
        "id": ids.id("composition"),
        "language": "ja",
        "status": "final",
        "type": {"coding": [{
            "system": "http://jpfhir.jp/fhir/Common/CodeSystem/doc-typecodes",
            "code": "xx",  # as in every national sample (the IG leaves the code open)
            "display": "自治体検診結果報告書",
        }]},
        "category": [{"coding": [{
            "system": CATEGORY_SYSTEM, "code": category, "display": CATEGORY_NAME[category],
        }]}],
        "subject": {"reference": ids.url("patient")},
        "encounter": {"reference": ids.url("encounter")},
        "date": clock.now().isoformat(timespec="seconds"),
        "author": [{"reference": ids.url("organization")}],
        "title": f"{CATEGORY_NAME[category]}結果のお知らせ",
        "confidentiality": "N",
        "custodian": {"reference": ids.url("organization")},
        "event": [{
            "code": [{"coding": [{
                "system": CHECKUP_TYPE_SYSTEM, "code": checkup_type,
                "display": CHECKUP_TYPE_NAME[checkup_type],
            }]}],
            "period": period,
            "detail": [{"reference": ids.url("encounter")}],
        }],
        "section": sections,
    }  # fmt: skip
    family, _, given = exam.name_kana.replace(" ", "\u3000").partition("\u3000")
    name: dict[str, Any] = {
        "extension": [{"url": NAME_REPRESENTATION, "valueCode": "SYL"}],
        "use": "official",
        "text": exam.name_kana,
    }
    if family:
        name["family"] = family
    if given.strip("\u3000"):
        name["given"] = [given.strip("\u3000")]
    patient = {
        "resourceType": "Patient",
        "id": ids.id("patient"),
        "name": [name] if exam.name_kana else [],
        "gender": SEX_GENDER[exam.sex],
        "birthDate": exam.birth_date.isoformat(),
    }
    organization = {
        "resourceType": "Organization",
        "id": ids.id("organization"),
        "identifier": [{"system": INSTITUTION_SYSTEM, "value": exam.institution_code}],
        "type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov",
        }]}],
    }  # fmt: skip
    encounter = {
        "resourceType": "Encounter",
        "id": ids.id("encounter"),
        "status": "finished",
        "class": {
            "system": "http://jpfhir.jp/fhir/eCheckup/CodeSystem/encounter-category",
            "code": "checkup",
            "display": "健診",
        },
        "serviceType": {"coding": [{
            "system": ENCOUNTER_TYPE_SYSTEM, "code": setting, "display": SETTING_NAME[setting],
        }]},
        "period": period,
        "serviceProvider": {"reference": ids.url("organization")},
    }  # fmt: skip
    resources = [composition, patient, organization, encounter, *ids.extra, *observations]
    resources += questionnaire
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [BUNDLE_PROFILE]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": ids.url("bundle")},
        "type": "document",
        "timestamp": composition["date"],
        "entry": [{"fullUrl": ids.ref(r["id"]), "resource": r} for r in resources],
    }


class _Ids:
    """Stable urn:uuid ids for one Bundle's resources (uuid5 of the bundle id and a role)."""

    def __init__(self, bundle_id: str) -> None:
        self.bundle_id = bundle_id
        self.extra: list[dict[str, Any]] = []  # group Observations and Specimens, in order
        self._n = 0

    def id(self, role: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kenshin:fhir:{self.bundle_id}:{role}"))

    def url(self, role: str) -> str:
        return f"urn:uuid:{self.id(role)}"

    @staticmethod
    def ref(resource_id: str) -> str:
        return f"urn:uuid:{resource_id}"

    def next(self, kind: str) -> str:
        self._n += 1
        return self.id(f"{kind}-{self._n}")


def _observation(ids: _Ids, item: NationalItem, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": ids.next("observation"),
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": item.category}]}],
        "code": {"coding": [{"system": ITEM_SYSTEM, "code": item.code, "display": item.name}]},
        "subject": {"reference": ids.url("patient")},
        **value,
    }


def _coded(item: NationalItem, code: str, display: str) -> dict[str, Any]:
    display = NATIONAL_DISPLAY.get(item.system, {}).get(code, display)
    coding = {"system": OID_PREFIX + item.system, "code": code, "display": display}
    return {"valueCodeableConcept": {"coding": [coding]}}


def _result_observations(exam: ExportExam, ids: _Ids) -> list[dict[str, Any]]:
    """The 判定 Observations (with their group parent and specimen, as in the samples)."""
    spec = vocabularies.results_of(exam.method)
    pairs = dict(METHOD_ITEMS[exam.method])
    members: list[dict[str, Any]] = []
    results = _fecal_whole(exam.results) if exam.method == "fecal_occult_blood" else exam.results
    for item_code, value in results.items():
        if exam.method == "cytology" and item_code == "adequacy":
            if value == _ADEQUACY:
                continue  # implied by the Bethesda 判定
            raise FhirExportError("標本の適否 不適正 は全国様式の項目にないため出力できません")
        national = pairs.get(item_code)
        item = spec.item(item_code) if spec else None
        if national is None or item is None:
            raise FhirExportError(f"{exam.method} の項目 {item_code} は全国様式にありません")
        found = item.vocabulary.value(value)
        if found is None or not found.jami or not item.vocabulary.jami_system:
            raise FhirExportError(
                f"{item.name} {value!r} に当たる全国様式のコード（{ITEMS[national].system}）が"
                "1 つに決まらないため出力できません"
            )
        item_of = ITEMS[national]
        members.append(_observation(ids, item_of, _coded(item_of, found.jami, found.label)))
        if item.vocabulary.jami_target_system:
            target = ITEMS[SEIKEN_TARGET_ITEMS[PROGRAMME_CATEGORY[exam.programme]]]
            members.append(_observation(ids, target, _coded(target, found.jami_target, "")))
        if exam.method == "sputum_cytology":
            members.append(
                _observation(
                    ids, ITEMS[SPUTUM_DATE_ITEM], {"valueDateTime": exam.exam_date.isoformat()}
                )
            )
    group = METHOD_GROUP.get(exam.method) or (ITEMS[pairs[next(iter(pairs))]].group)
    if not group:
        return members
    display, category, specimen = GROUPS[group]
    parent: dict[str, Any] = {
        "resourceType": "Observation",
        "id": ids.next("group"),
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": category}]}],
        "code": {"coding": [{"system": GROUP_SYSTEM, "code": group, "display": display}]},
        "subject": {"reference": ids.url("patient")},
    }
    if specimen:
        sample = {
            "resourceType": "Specimen",
            "id": ids.next("specimen"),
            "type": {"coding": [{
                "system": SPECIMEN_SYSTEM, "code": specimen[0], "display": specimen[1],
            }]},
        }  # fmt: skip
        ids.extra.append(sample)
        parent["specimen"] = {"reference": ids.ref(sample["id"])}
    in_group = [m for m in members if ITEMS[m["code"]["coding"][0]["code"]].group == group]
    if in_group:
        parent["hasMember"] = [{"reference": ids.ref(m["id"])} for m in in_group]
    return [parent, *members]


def _fecal_whole(results: Mapping[str, str]) -> dict[str, str]:
    """A 便潜血 result as the national format has it: its one 2日分 judgement, given or made
    from the days (vocabularies.whole_of_days); a result that is not whole is refused."""
    if not results:
        return {}
    whole = vocabularies.whole_of_days("fecal_occult_blood", results)
    if not whole:
        raise FhirExportError(
            "便潜血の結果が 2 日分そろっていないため、"
            "全国様式の判定（2 日分で 1 つ）を出力できません"
        )
    return {"overall": whole}


def _seiken_observation(exam: ExportExam, category: str, ids: _Ids) -> dict[str, Any]:
    if vocabularies.seiken_of(exam.programme) is None:
        raise FhirExportError(f"{CATEGORY_NAME[category]}の精密検査は Kenshin で記録しません")
    if not exam.seiken_result:
        raise FhirExportError("精検受診日だけでは出力できません（精検結果が要ります）")
    codes = [
        c for c, ours in SEIKEN_RESULTS.get(category, {}).items() if ours == exam.seiken_result
    ]
    if len(codes) != 1:
        label = vocabularies.seiken_result_labels().get(exam.seiken_result, exam.seiken_result)
        raise FhirExportError(
            f"{CATEGORY_NAME[category]}の精検結果「{label}」に当たる全国様式のコード"
            f"（{ITEMS[SEIKEN_ITEMS[category]].system}）が 1 つに決まらないため出力できません"
        )
    label = vocabularies.seiken_result_labels().get(exam.seiken_result, "")
    item = ITEMS[SEIKEN_ITEMS[category]]
    return _observation(ids, item, _coded(item, codes[0], label))


def _section(title: str, code: str, display: str, entries: list[dict[str, Any]]) -> dict:
    return {
        "title": title,
        "code": {"coding": [{"system": SECTION_SYSTEM, "code": code, "display": display}]},
        "entry": [{"reference": f"urn:uuid:{e['id']}"} for e in entries],
    }
