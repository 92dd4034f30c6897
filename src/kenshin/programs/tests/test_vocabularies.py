"""Result vocabularies: each method's values, and which of them mean 要精検 (domain.md §5)."""

from __future__ import annotations

import tomllib

import pytest

from kenshin.programs import catalogue as catalogue_module
from kenshin.programs import vocabularies as v

# (method, result, 要精検 for the 事業報告) — every category of every vocabulary appears once.
CASES = [
    # 胃X線 (消化器がん検診学会 2016): 3a and over.
    ("gastric_xray", {"judgement": "1"}, False),
    ("gastric_xray", {"judgement": "2"}, False),
    ("gastric_xray", {"judgement": "3a"}, True),
    ("gastric_xray", {"judgement": "3b"}, True),
    ("gastric_xray", {"judgement": "4"}, True),
    ("gastric_xray", {"judgement": "5"}, True),
    # …and the national format's 所見あり/なし with 精密検査の要否, no 区分.
    ("gastric_xray", {"judgement": "no_findings"}, False),
    ("gastric_xray", {"judgement": "findings"}, False),
    ("gastric_xray", {"judgement": "findings_seiken"}, True),
    ("gastric_endoscopy", {"judgement": "no_findings"}, False),
    ("gastric_endoscopy", {"judgement": "benign"}, False),
    ("gastric_endoscopy", {"judgement": "suspected_cancer"}, True),
    ("gastric_endoscopy", {"judgement": "other_disease"}, False),
    # 胸部X線: only E; D (肺癌以外の疾患) is notified but not counted as 要精検.
    ("chest_xray", {"judgement": "A"}, False),
    ("chest_xray", {"judgement": "B"}, False),
    ("chest_xray", {"judgement": "C"}, False),
    ("chest_xray", {"judgement": "D1"}, False),
    ("chest_xray", {"judgement": "D2"}, False),
    ("chest_xray", {"judgement": "D3"}, False),
    ("chest_xray", {"judgement": "D4"}, False),
    ("chest_xray", {"judgement": "E1"}, True),
    ("chest_xray", {"judgement": "E2"}, True),
    # 喀痰: D and E.
    ("sputum_cytology", {"judgement": "A"}, False),
    ("sputum_cytology", {"judgement": "B"}, False),
    ("sputum_cytology", {"judgement": "C"}, False),
    ("sputum_cytology", {"judgement": "D"}, True),
    ("sputum_cytology", {"judgement": "E"}, True),
    # 便潜血 2日法: either day positive.
    ("fecal_occult_blood", {"day1": "negative", "day2": "negative"}, False),
    ("fecal_occult_blood", {"day1": "positive", "day2": "negative"}, True),
    ("fecal_occult_blood", {"day1": "negative", "day2": "positive"}, True),
    ("fecal_occult_blood", {"day1": "positive", "day2": "positive"}, True),
    # …or the national format's one judgement of the two days, alone or agreeing with them.
    ("fecal_occult_blood", {"overall": "negative"}, False),
    ("fecal_occult_blood", {"overall": "positive"}, True),
    ("fecal_occult_blood", {"day1": "negative", "day2": "positive", "overall": "positive"}, True),
    # マンモグラフィ: 3 and over; N (判定不能) counted as 要精検.
    ("mammography", {"category": "1"}, False),
    ("mammography", {"category": "2"}, False),
    ("mammography", {"category": "3"}, True),
    ("mammography", {"category": "4"}, True),
    ("mammography", {"category": "5"}, True),
    ("mammography", {"category": "N"}, True),
    ("breast_ultrasound", {"category": "1"}, False),
    ("breast_ultrasound", {"category": "2"}, False),
    ("breast_ultrasound", {"category": "3"}, True),
    ("breast_ultrasound", {"category": "4"}, True),
    ("breast_ultrasound", {"category": "5"}, True),
    # 子宮頸部細胞診: any non-NILM, and an inadequate specimen.
    ("cytology", {"adequacy": "adequate", "bethesda": "NILM"}, False),
    ("cytology", {"adequacy": "inadequate", "bethesda": "NILM"}, True),
    *[
        ("cytology", {"adequacy": "adequate", "bethesda": b}, True)
        for b in ("ASC-US", "ASC-H", "LSIL", "HSIL", "SCC", "AGC", "AIS", "Adenocarcinoma", "Other")
    ],
    # HPV検査単独法: HPV − → no; HPV + → the triage cytology decides.
    ("hpv_primary", {"hpv": "negative"}, False),
    ("hpv_primary", {"hpv": "positive", "triage_adequacy": "adequate", "triage": "NILM"}, False),
    ("hpv_primary", {"hpv": "positive", "triage_adequacy": "adequate", "triage": "ASC-US"}, True),
    ("hpv_primary", {"hpv": "positive", "triage_adequacy": "inadequate", "triage": "NILM"}, True),
    # 子宮内膜細胞診: anything but negative.
    ("endometrial_cytology", {"adequacy": "adequate", "result": "negative"}, False),
    ("endometrial_cytology", {"adequacy": "adequate", "result": "ATEC-US"}, True),
    ("endometrial_cytology", {"adequacy": "adequate", "result": "ATEC-A"}, True),
    ("endometrial_cytology", {"adequacy": "adequate", "result": "hyperplasia"}, True),
    ("endometrial_cytology", {"adequacy": "adequate", "result": "atypical_hyperplasia"}, True),
    ("endometrial_cytology", {"adequacy": "adequate", "result": "malignant"}, True),
    ("endometrial_cytology", {"adequacy": "inadequate", "result": "negative"}, True),
    ("periodontal_exam", {"judgement": "normal"}, False),
    ("periodontal_exam", {"judgement": "guidance"}, False),
    ("periodontal_exam", {"judgement": "seiken"}, True),
    ("dxa", {"judgement": "normal"}, False),
    ("dxa", {"judgement": "guidance"}, False),
    ("dxa", {"judgement": "seiken"}, True),
    ("bone_ultrasound", {"judgement": "seiken"}, True),
    # 肝炎: HBs antigen positive, or HCV infection likely.
    ("hepatitis_test", {"hbs": "negative", "hcv": "unlikely"}, False),
    ("hepatitis_test", {"hbs": "positive", "hcv": "unlikely"}, True),
    ("hepatitis_test", {"hbs": "negative", "hcv": "likely"}, True),
]


@pytest.mark.parametrize(("method", "results", "expected"), CASES)
def test_needs_seiken_follows_the_jigyo_houkoku_definition(method, results, expected):
    assert v.check_result(method, results) == []
    assert v.needs_seiken(method, results) is expected


def test_every_value_of_every_shipped_vocabulary_is_decided_by_a_case():
    """No category is left without a test stating whether it is 要精検."""
    covered = {
        (item.vocabulary.code, value)
        for method, results, _ in CASES
        for code, value in results.items()
        if (item := v.results_of(method).item(code)) is not None
    }
    every = {
        (item.vocabulary.code, value.code)
        for spec in v.shipped().methods.values()
        for item in spec.items
        for value in item.vocabulary.values
    }
    assert every - covered == set()


def test_every_method_of_the_shipped_catalogues_has_its_result_items():
    for path in catalogue_module.shipped_files():
        _, catalogue = catalogue_module.load_file(path)
        missing = [m.code for m in catalogue.methods if v.results_of(m.code) is None]
        assert missing == [], path.name


def test_a_value_outside_the_vocabulary_is_refused_with_the_allowed_values():
    problems = v.check_result("mammography", {"category": "6"})
    assert [p.item for p in problems] == ["category"]
    assert "マンモグラフィ カテゴリーに '6' はありません" in problems[0].message
    assert "1、2、3、4、5、N" in problems[0].message


def test_a_missing_required_item_and_a_foreign_item_are_named():
    problems = v.check_result("fecal_occult_blood", {"day1": "positive", "bethesda": "NILM"})
    assert {p.item: p.message for p in problems} == {
        "bethesda": "この検査の項目ではありません（項目: 便潜血 1日目、便潜血 2日目、便潜血 判定（2日分））",
        "day2": "便潜血 2日目が入っていません（2日分の判定だけなら便潜血 判定（2日分）に）",
    }


def test_a_positive_hpv_test_without_its_triage_cytology_is_incomplete():
    problems = v.check_result("hpv_primary", {"hpv": "positive"})
    assert {p.item for p in problems} == {"triage_adequacy", "triage"}
    assert all("HPV 陽性のときは" in p.message for p in problems)
    assert v.check_result("hpv_primary", {"hpv": "negative"}) == []
    # The 追跡検査 a year later is the HPV test alone.
    assert v.check_result("hpv_primary", {"hpv": "positive"}, follow_up=True) == []


def test_an_unknown_method_has_no_result_items():
    assert v.results_of("x_ray_of_the_soul") is None
    assert v.check_result("x_ray_of_the_soul", {})[0].item == ""
    with pytest.raises(KeyError):
        v.needs_seiken("x_ray_of_the_soul", {})


def test_national_codes_are_kept_where_the_format_has_them():
    chest = v.results_of("chest_xray").item("judgement").vocabulary
    assert chest.jami_system == "1.2.392.100495.100.2100"
    assert (chest.value("E1").jami, chest.value("B").jami, chest.value("A").jami) == ("4", "1", "9")
    mammography = v.results_of("mammography").item("category").vocabulary
    assert mammography.value("N").jami == ""  # N-1 (9) or N-2 (99): Kenshin does not say which
    bethesda = v.results_of("cytology").item("bethesda").vocabulary
    assert (bethesda.jami_system, bethesda.value("NILM").jami) == ("1.2.392.100495.100.2400", "1")
    gastric = v.results_of("gastric_xray").item("judgement").vocabulary
    assert (gastric.jami_system, gastric.jami_target_system) == (
        "1.2.392.100495.100.2050", "1.2.392.100495.100.2340")  # fmt: skip
    three_a = gastric.value("3a")
    assert (three_a.jami, three_a.jami_target, three_a.jami_read) == ("2", "2", False)


FOBT_SHAPES = [
    # (results, the items named as missing or contradicting)
    ({"day1": "negative"}, ["day2"]),
    ({}, ["day1", "day2"]),
    ({"day2": "positive", "overall": "positive"}, ["day1"]),
    ({"day1": "positive", "day2": "negative", "overall": "negative"}, ["overall"]),
    ({"day1": "negative", "day2": "negative", "overall": "positive"}, ["overall"]),
    ({"day1": "bad", "day2": "negative", "overall": "positive"}, ["day1"]),  # value refused
]


@pytest.mark.parametrize(("results", "named"), FOBT_SHAPES)
def test_a_fecal_result_needs_both_days_or_the_judgement_that_agrees(results, named):
    problems = v.check_result("fecal_occult_blood", results)
    assert [p.item for p in problems] == named
    assert all(p.message for p in problems)
    custom = v.days_problems("fecal_occult_blood", results, names={"day2": "便潜血2日目"})
    assert [p.item for p in custom] == [p.item for p in v.days_problems("fecal_occult_blood",
                                                                         results)]  # fmt: skip
    for problem in custom:
        if problem.item == "day2":
            assert problem.message.startswith("便潜血2日目が入っていません")


def test_the_two_day_judgement_is_made_from_the_days_or_not_at_all():
    assert v.whole_of_days("fecal_occult_blood", {"day1": "negative", "day2": "positive"}) == (
        "positive")  # fmt: skip
    assert v.whole_of_days("fecal_occult_blood", {"day1": "negative", "day2": "negative"}) == (
        "negative")  # fmt: skip
    assert v.whole_of_days("fecal_occult_blood", {"overall": "positive"}) == "positive"
    assert v.whole_of_days("fecal_occult_blood", {"day1": "negative"}) == ""
    assert v.whole_of_days("fecal_occult_blood", {"day1": "negative", "day2": "??"}) == ""
    assert v.whole_of_days("mammography", {"category": "1"}) == ""
    days = {"day1": "negative", "day2": "positive"}
    assert v.days_agree("fecal_occult_blood", days, {"overall": "positive"})
    assert not v.days_agree("fecal_occult_blood", days, {"overall": "negative"})
    assert not v.days_agree("fecal_occult_blood", days, {**days, "overall": "positive"})
    assert not v.days_agree("fecal_occult_blood", {"overall": "positive"}, {"overall": "positive"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format=2), "format は 1"),
        (lambda d: d["vocabulary"].append(dict(d["vocabulary"][0])), "二度定義されています"),
        (lambda d: d["vocabulary"][0]["values"][0].update(seiken="yes"), "seiken は true か false"),
        (lambda d: d["vocabulary"][0]["values"][1].update(code="NILM"), "同じ値コード"),
        (lambda d: d["vocabulary"][0].update(values=[]), "値がありません"),
        (
            lambda d: d["method"][0]["items"][0].update(vocabulary="nope"),
            "語彙 'nope' がありません",
        ),
        (lambda d: d["method"][0].update(rule="majority"), "rule は any / triage / days"),
        (lambda d: d["method"][0].update(rule="days"), "days は同じ語彙の任意の項目"),
        (
            lambda d: d["vocabulary"][0]["values"][0].update(jami_read="false"),
            "jami_read は true か false",
        ),
        (lambda d: d["method"][0].update(items=[]), "結果の項目がありません"),
        (lambda d: d["method"][0]["items"][0].update(code="判定"), "code は英数字"),
        (lambda d: d["method"].append(dict(d["method"][0])), "二度定義されています"),
    ],
)
def test_a_malformed_vocabulary_file_is_refused_naming_the_place(change, message):
    data = tomllib.loads(v.FILE.read_text(encoding="utf-8"))
    change(data)
    with pytest.raises(v.VocabularyError, match=message):
        v.parse(data)


def test_the_five_cancer_programmes_have_their_seiken_methods_and_results():
    for programme in ("gastric", "lung", "colorectal", "breast", "cervical"):
        spec = v.seiken_of(programme)
        assert spec is not None and spec.methods and "cancer" in spec.results
    # 大腸 counts 腺腫 separately; the tests that do not count as 精検 are marked.
    assert "adenoma" in v.seiken_of("colorectal").results
    assert "adenoma" not in v.seiken_of("gastric").results
    assert v.seiken_of("colorectal").method("fobt_repeat").inappropriate
    cytology_only = v.seiken_of("cervical").method("cytology_only")
    assert cytology_only.counts_after("cytology", "ASC-US")
    assert not cytology_only.counts_after("hpv_primary", "ASC-US")
    assert not cytology_only.counts_after("cytology", "LSIL")
    # The 追跡検査: a positive HPV test alone is 要精検.
    assert v.needs_seiken("hpv_primary", {"hpv": "positive"}, follow_up=True)
    assert not v.needs_seiken("hpv_primary", {"hpv": "positive"})
    assert v.shipped().seiken_results["suspected"] == "がんの疑いのある者又は未確定"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["seiken"][0].update(results=["maybe"]), "results は seiken_results"),
        (lambda d: d["seiken"][0].update(methods=[]), "精検の方法がないか"),
        (lambda d: d["seiken"].append(dict(d["seiken"][0])), "精検の定義 gastric が二度"),
    ],
)
def test_a_malformed_seiken_section_is_refused(change, message):
    data = tomllib.loads(v.FILE.read_text(encoding="utf-8"))
    change(data)
    with pytest.raises(v.VocabularyError, match=message):
        v.parse(data)
