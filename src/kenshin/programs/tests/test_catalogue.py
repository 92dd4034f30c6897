"""The catalogue format: what parse refuses (with the exact Japanese message and its place),
the shipped files, the changes list, the TOML writer and one-method adjustments — all pure."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kenshin.programs import catalogue as cat
from kenshin.programs.actions import next_year_title
from kenshin.programs.tests.conftest import small


def _method(doc: dict[str, Any], p: int = 0, m: int = 0) -> dict[str, Any]:
    return doc["programmes"][p]["methods"][m]


def _set(path: str, value: Any):
    """A mutation that sets one key of the first programme's first method (or the top)."""

    def apply(doc: dict[str, Any]) -> None:
        target = doc if path.startswith("/") else _method(doc)
        target[path.lstrip("/")] = value

    return apply


def _del(key: str):
    def apply(doc: dict[str, Any]) -> None:
        del _method(doc)[key]

    return apply


def _milestone_outside(doc):
    m = _method(doc, 1)
    m["milestones"] = [20, 30, 75]


def _missing_group_copay(doc):
    del _method(doc)["copay"]["group"]


def _duplicate_method(doc):
    _method(doc, 1)["code"] = "mammography"


def _cohort_on_annual(doc):
    m = _method(doc)
    m["interval"] = "annual"
    m["cohort"] = "even_age"


def _unknown_programme_key(doc):
    doc["programmes"][1]["colour"] = "red"


def _duplicate_programme(doc):
    doc["programmes"][1]["code"] = "breast"


def _with_unknown(doc):
    _method(doc, 1)["with_programme"] = "cervical"


def _unknown_exemption(doc):
    doc["fees"]["exemptions"] = ["coupon", "pensioner"]


M = "programmes[0].methods[0]"
REFUSALS = [
    ("unknown_key", _set("colour", "red"), f"{M}.colour: この項目は定義されていません"),
    ("unknown_programme_key", _unknown_programme_key,
     "programmes[1].colour: この項目は定義されていません"),
    ("unknown_top_key", _set("/owner", "x"), "owner: この項目は定義されていません"),
    ("bad_sex", _set("sex", "woman"),
     f"{M}.sex: 'woman' は使えません（使える値: any、male、female）"),
    ("max_below_min", _set("max_age", 39), f"{M}.max_age: min_age（40）より小さくできません"),
    ("age_out_of_range", _set("min_age", 131), f"{M}.min_age: 年齢は 0〜130 で書いてください（131）"),
    ("age_as_text", _set("min_age", "40"), f"{M}.min_age: 形式が違います（'40'）"),
    ("age_as_bool", _set("min_age", True), f"{M}.min_age: 整数で書いてください（True）"),
    ("missing_required", _del("interval"), f"{M}.interval: 必須の項目がありません"),
    ("milestone_outside_band", _milestone_outside,
     "programmes[1].methods[0].milestones: 75歳が対象年齢の範囲外です"),
    ("milestones_on_biennial", _set("milestones", [40, 50]),
     f"{M}.milestones: 毎年度・2年に1回の検診には節目年齢を書きません"),
    ("missing_copay_for_a_setting", _missing_group_copay,
     f"{M}.copay: 実施する方式 集団 の金額がありません"),
    ("unknown_setting", _set("settings", ["mobile"]),
     f"{M}.settings: 方式は individual か group です（'mobile'）"),
    ("no_setting", _set("settings", []), f"{M}.settings: 個別・集団のどちらかが必要です"),
    ("duplicate_method", _duplicate_method, "programmes[1]: 検査方法 'mammography' が重複しています"),
    ("duplicate_programme", _duplicate_programme,
     "programmes[1].code: 検診事業 'breast' が重複しています"),
    ("cohort_on_annual", _cohort_on_annual,
     f"{M}.cohort: 偶数・奇数年齢は 2年に1回の検診だけに使えます"),
    ("bad_cohort", _set("cohort", "leap_age"),
     f"{M}.cohort: 'leap_age' は使えません（使える値: even_age、odd_age）"),
    ("bad_format_version", _set("/format", 2), "format: この版の Kenshin が読めるのは format = 1 です"),
    ("bad_municipality", _set("/municipality_code", "34202"),
     "municipality_code: 団体コード（6桁の数字）で書いてください"),
    ("fiscal_year_out_of_range", _set("/fiscal_year", 1999), "fiscal_year: 年度が範囲外です（1999）"),
    ("unknown_with_programme", _with_unknown,
     "periodontal_exam.with_programme: 同時に実施する検診事業 'cervical' がありません"),
    ("unknown_exemption", _unknown_exemption,
     "fees.exemptions: 'pensioner' は使えません"
     "（使える値: public_assistance、coupon、tax_exempt、age70、late_elderly）"),
    ("bad_coupon_prefix", lambda d: _method(d)["coupon"].update(prefix="BB"),
     f"{M}.coupon.prefix: 英字 1 文字で書いてください"),
    ("negative_price", lambda d: _method(d)["unit_price"].update(group=-1),
     f"{M}.unit_price.group: 金額が範囲外です（-1）"),
]  # fmt: skip


def test_the_small_document_is_valid():
    parsed = cat.parse(small())
    assert [m.code for m in parsed.methods] == ["mammography", "periodontal_exam"]


@pytest.mark.parametrize(
    ("mutate", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_parse_refuses_with_the_place_and_a_japanese_message(mutate, message):
    doc = small()
    mutate(doc)
    with pytest.raises(cat.CatalogueError) as caught:
        cat.parse(doc)
    assert str(caught.value) == message


def test_unreadable_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('format = 1\ntitle = "閉じていない\n', encoding="utf-8")
    with pytest.raises(cat.CatalogueError, match=r"^broken\.toml: TOML として読めません"):
        cat.load_file(path)


# ------------------------------------------------------------------------- shipped files


def _shipped() -> dict[int, cat.Catalogue]:
    return {c.fiscal_year: c for c in (cat.load_file(p)[1] for p in cat.shipped_files())}


def test_three_shipped_catalogues_parse_one_per_fiscal_year():
    assert sorted(_shipped()) == [2024, 2025, 2026]
    assert {c.municipality_code for c in _shipped().values()} == {"342025"}


def test_fy2024_has_no_hpv_primary_and_cytology_for_every_age():
    fy2024 = _shipped()[2024]
    assert fy2024.method("hpv_primary").enabled is False
    assert fy2024.method("hpv_primary").rostered is False
    assert fy2024.method("cytology").max_age is None


def test_from_fy2025_hpv_primary_from_30_and_cytology_up_to_29():
    for fy in (2025, 2026):
        c = _shipped()[fy]
        assert c.method("hpv_primary").enabled is True
        assert c.method("hpv_primary").min_age == 30
        assert c.method("cytology").max_age == 29


def test_changes_between_the_shipped_years_are_exactly_the_documented_ones():
    c = _shipped()
    assert [str(x) for x in cat.changes(c[2024], c[2025])] == [
        "子宮頸部細胞診: 上限年齢 — → 29歳",
        "HPV検査単独法: 実施 しない → する",
    ]
    assert [str(x) for x in cat.changes(c[2025], c[2026])] == [
        "胃内視鏡検査: 自己負担（個別） 3,400円 → 3,600円",
    ]


# ------------------------------------------------------------------------- changes


def test_changes_list_fees_added_and_removed_methods():
    old = small()
    new = small()
    new["fees"]["exemptions"] = ["coupon", "public_assistance"]
    new["fees"]["early_months"] = [4, 5]
    new["programmes"][1]["methods"][0]["milestones"] = [20, 30, 40, 50, 60]
    new["programmes"][1]["methods"][0]["max_age"] = 60
    new["programmes"][0]["methods"][0]["cohort"] = "even_age"
    removed = new["programmes"][0]["methods"].pop(0)
    removed["code"] = "breast_ultrasound"
    removed["name"] = "乳房超音波検査"
    new["programmes"][0]["methods"].append(removed)
    assert [str(x) for x in cat.changes(cat.parse(old), cat.parse(new))] == [
        "自己負担: 免除の種類（判定の順） 生活保護、無料クーポン → 無料クーポン、生活保護",
        "自己負担: 前年度の課税区分で判定する受診月 4月・5月・6月 → 4月・5月",
        "乳房超音波検査: 検査方法を追加",
        "歯周疾患検診: 上限年齢 70歳 → 60歳",
        "歯周疾患検診: 節目年齢 20・30・40・50・60・70歳 → 20・30・40・50・60歳",
        "マンモグラフィ: 検査方法を削除",
    ]


def test_no_changes_between_a_catalogue_and_itself():
    assert cat.changes(cat.parse(small()), cat.parse(small())) == []


# ------------------------------------------------------------------------- TOML writer


@pytest.mark.parametrize("path", cat.shipped_files(), ids=lambda p: p.name)
def test_written_toml_reads_back_as_the_same_document(path):
    document, parsed = cat.load_file(path)
    text = cat.to_toml(document, header=("見出し",))
    assert text.startswith("# 見出し\n")
    assert tomllib.loads(text) == document
    assert cat.parse(tomllib.loads(text)) == parsed


def test_written_toml_keeps_the_documented_key_order_whatever_the_stored_order():
    scrambled = small()
    scrambled["programmes"][0]["methods"][0] = dict(
        reversed(list(scrambled["programmes"][0]["methods"][0].items()))
    )
    scrambled = dict(reversed(list(scrambled.items())))
    text = cat.to_toml(scrambled)
    assert text.startswith('format = 1\nfiscal_year = 2025\nmunicipality_code = "342025"\n')
    method = text.split("[[programmes.methods]]\n")[1]
    assert method.splitlines()[:3] == ['code = "mammography"', 'name = "マンモグラフィ"',
                                      'sex = "female"']  # fmt: skip
    assert "copay = {individual = 1700, group = 1000}" in method


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=60, deadline=None)
@given(title=names, name=names)
def test_any_title_and_name_survive_the_round_trip(title, name):
    doc = small()
    doc["title"] = title
    doc["programmes"][0]["methods"][0]["name"] = name
    assert tomllib.loads(cat.to_toml(doc)) == doc


# ------------------------------------------------------------------------- adjustments


def test_adjusted_replaces_one_method_and_leaves_empty_values_out():
    doc = small()
    new, parsed = cat.adjusted(
        doc, "periodontal_exam", {"max_age": None, "milestones": [20, 30, 40, 50, 60, 70, 80]}
    )
    assert "max_age" not in new["programmes"][1]["methods"][0]
    assert parsed.method("periodontal_exam").milestones[-1] == 80
    assert doc == small(), "the stored document is not changed in place"


def test_adjusted_refuses_no_change_even_when_the_text_differs():
    doc = small()
    with pytest.raises(cat.CatalogueError, match="変更がありません"):
        cat.adjusted(doc, "mammography", {"enabled": True})


def test_adjusted_refuses_an_invalid_result_with_the_place():
    with pytest.raises(cat.CatalogueError) as caught:
        cat.adjusted(small(), "mammography", {"max_age": 30})
    assert (
        str(caught.value) == "programmes[0].methods[0].max_age: min_age（40）より小さくできません"
    )


def test_adjusting_an_unknown_method_or_item_is_a_programming_error():
    with pytest.raises(KeyError):
        cat.with_method_values(small(), "nothing", {"min_age": 1})
    with pytest.raises(ValueError):
        cat.with_method_values(small(), "mammography", {"name": "x"})


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("呉市 令和7年度 健康増進事業（既定）", "呉市 令和8年度 健康増進事業（既定）"),
        ("2025年度 検診", "2026年度 検診"),
        ("検診", "検診"),
    ],
)
def test_copied_title_moves_on_one_year_in_both_calendars(title, expected):
    assert next_year_title(title, 2025) == expected


def test_describe_words_a_method_for_staff():
    s = cat.describe(cat.parse(small()).method("mammography"))
    assert (s.sex, s.ages, s.settings) == ("女性", "40歳〜", "個別・集団")
    assert s.copay == "個別 1,700円、集団 1,000円"
    assert s.coupon == "乳がん検診無料クーポン（前年度に40歳、番号の頭 B）"


def test_a_file_saved_with_a_bom_reads_like_one_without(tmp_path):
    path = tmp_path / "notepad.toml"
    path.write_bytes("\ufeff".encode() + cat.to_toml(small()).encode())
    assert cat.load_file(path)[0] == small()


def test_a_shift_jis_file_is_refused_with_the_encoding_named(tmp_path):
    path = tmp_path / "sjis.toml"
    path.write_bytes(cat.to_toml(small()).encode("cp932"))
    with pytest.raises(cat.CatalogueError, match=r"^sjis\.toml: UTF-8 で保存してください"):
        cat.load_file(path)


def test_two_coupon_cohorts_may_not_share_a_prefix():
    """Coupon numbers are FY + prefix + serial: a shared prefix would print one number twice."""
    doc = tomllib.loads(cat.shipped_files()[1].read_text(encoding="utf-8"))
    breast = next(p for p in doc["programmes"] if p["code"] == "breast")
    breast["methods"][0]["coupon"]["prefix"] = "C"  # the cervical coupon's letter
    with pytest.raises(cat.CatalogueError, match=r"cytology\.coupon\.prefix: 'C' は mammography"):
        cat.parse(doc)


def test_a_city_add_on_does_not_count_for_its_programme():
    parsed = cat.parse(tomllib.loads(cat.shipped_files()[1].read_text(encoding="utf-8")))
    assert parsed.not_counting_methods == frozenset({"breast_ultrasound"})
