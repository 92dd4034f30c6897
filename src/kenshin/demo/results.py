"""Coded results of the demo city's exams, drawn at the national rates of 要精検.

Why: the worklists, the ledgers and the 事業報告 tables are only worth looking at in the demo
when the results behind them look like a real city's — a few percent 要精検, a 胸部X線 now and
then with an E, a mammography category 3 far more often than a 5. Each method's values come
from its own vocabulary (``programs/vocabularies.toml``); what is made up here is only how often
each value occurs.

The rates (shares of all exams of the method; domain.md §3–§5 and the 事業報告):

==================  =============  ==================================================
method              要精検          shape
==================  =============  ==================================================
胃X線                ~7 %           3a 5.0, 3b 1.8, 4 0.15, 5 0.05 (許容値 ≤11 %)
胃内視鏡              ~6 %           要精検（胃がん疑い）; 要治療（がん以外）6 % more
胸部X線              ~1.7 %         E1 1.4, E2 0.3; D (がん以外) ~4 % is not 要精検
喀痰細胞診            ~1.5 %         D 1.1, E 0.4
便潜血（2日法）        ~6.5 %         either day positive (許容値 ≤7 %)
マンモグラフィ         ~6.6 %         3 5.8, 4 0.4, 5 0.1, N 0.3
子宮頸部細胞診         ~2 %           non-NILM 1.8 (×1.6 in the 20s), 不適正 0.3
HPV検査単独法         ~3.5 %         HPV + 5–15 % by age; the triage's non-NILM ~45 %
追跡検査 (HPV)        ~30 %          HPV still positive a year on
==================  =============  ==================================================

The non-cancer programmes follow the report too: 歯周 要精密検査 ~70 % (national FY2006:
77.5 %), 骨粗鬆症 要精検 rising with age around 13 %, HBs 陽性 ~0.8 %, HCV 可能性高い ~0.3 %.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from itertools import accumulate

Weights = tuple[tuple[str, float], ...]

# One result item's values and their weights, per method whose result is a single judgement.
_SINGLE: dict[str, tuple[str, Weights]] = {
    "gastric_xray": ("judgement", (
        ("1", 30.0), ("2", 63.0), ("3a", 5.0), ("3b", 1.8), ("4", 0.15), ("5", 0.05),
    )),
    "gastric_endoscopy": ("judgement", (
        ("no_findings", 28.0), ("benign", 60.0), ("other_disease", 6.0),
        ("suspected_cancer", 6.0),
    )),
    "chest_xray": ("judgement", (
        ("A", 0.2), ("B", 72.0), ("C", 22.1), ("D1", 0.1), ("D2", 2.4), ("D3", 1.0),
        ("D4", 0.5), ("E1", 1.4), ("E2", 0.3),
    )),
    "sputum_cytology": ("judgement", (
        ("A", 3.0), ("B", 82.0), ("C", 13.5), ("D", 1.1), ("E", 0.4),
    )),
    "mammography": ("category", (
        ("1", 68.0), ("2", 25.4), ("3", 5.8), ("4", 0.4), ("5", 0.1), ("N", 0.3),
    )),
    "breast_ultrasound": ("category", (
        ("1", 70.0), ("2", 25.0), ("3", 4.2), ("4", 0.6), ("5", 0.2),
    )),
    "periodontal_exam": ("judgement", (("normal", 12.0), ("guidance", 18.0), ("seiken", 70.0))),
}  # fmt: skip

# Bethesda values other than NILM, by weight (percent of adequate cytology specimens).
_BETHESDA_ABNORMAL: Weights = (
    ("ASC-US", 0.85), ("LSIL", 0.4), ("ASC-H", 0.2), ("HSIL", 0.25), ("SCC", 0.02),
    ("AGC", 0.05), ("AIS", 0.01), ("Adenocarcinoma", 0.01), ("Other", 0.01),
)  # fmt: skip
# The triage cytology of an HPV-positive specimen: abnormal far more often.
_TRIAGE: Weights = (
    ("NILM", 55.0), ("ASC-US", 20.0), ("LSIL", 13.0), ("ASC-H", 5.0), ("HSIL", 6.0),
    ("SCC", 0.3), ("AGC", 0.5), ("AIS", 0.1), ("Adenocarcinoma", 0.05), ("Other", 0.05),
)  # fmt: skip
_ENDOMETRIAL: Weights = (
    ("negative", 97.5), ("ATEC-US", 1.5), ("ATEC-A", 0.5), ("hyperplasia", 0.3),
    ("atypical_hyperplasia", 0.1), ("malignant", 0.1),
)  # fmt: skip
INADEQUATE = 0.003  # cytology specimens 不適正 (counted as 要精検)
TRIAGE_INADEQUATE = 0.01
ENDOMETRIAL_INADEQUATE = 0.03
YOUNG_CYTOLOGY = 1.6  # abnormal cytology is more common in the 20s
FOBT = (("negative", "negative", 93.5), ("positive", "negative", 2.1),
        ("negative", "positive", 2.1), ("positive", "positive", 2.3))  # fmt: skip
FOLLOW_UP_POSITIVE = 0.30  # HPV still positive at the 追跡検査 a year later
HBS_POSITIVE = 0.008
HCV_LIKELY = 0.003


def _hpv_positive(age: int) -> float:
    """HPV prevalence falls with age (high in the early 30s)."""
    if age < 35:
        return 0.15
    if age < 40:
        return 0.12
    if age < 50:
        return 0.09
    return 0.06 if age < 60 else 0.05


def _bone_seiken(age: int) -> float:
    """骨粗鬆症 要精検 rises with age (national ~13 %)."""
    return 0.05 if age < 50 else 0.10 if age < 60 else 0.18 if age < 70 else 0.25


@cache
def _table(weights: Weights) -> tuple[list[str], list[float]]:
    return [c for c, _w in weights], list(accumulate(w for _c, w in weights))


def _pick(rng: random.Random, weights: Weights) -> str:
    codes, cum = _table(weights)
    return rng.choices(codes, cum_weights=cum)[0]


def _cytology(rng: random.Random, age: int) -> dict[str, str]:
    if rng.random() < INADEQUATE:
        # The vocabulary asks for a Bethesda value on every specimen; an unreadable one is
        # NILM as far as the interpretation goes, 要精検 by its adequacy.
        return {"adequacy": "inadequate", "bethesda": "NILM"}
    abnormal = sum(w for _c, w in _BETHESDA_ABNORMAL) / 100 * (YOUNG_CYTOLOGY if age < 30 else 1)
    if rng.random() >= abnormal:
        return {"adequacy": "adequate", "bethesda": "NILM"}
    return {"adequacy": "adequate", "bethesda": _pick(rng, _BETHESDA_ABNORMAL)}


def _hpv(rng: random.Random, age: int, follow_up: bool) -> dict[str, str]:
    if follow_up:
        return {"hpv": "positive" if rng.random() < FOLLOW_UP_POSITIVE else "negative"}
    if rng.random() >= _hpv_positive(age):
        return {"hpv": "negative"}
    if rng.random() < TRIAGE_INADEQUATE:
        return {"hpv": "positive", "triage_adequacy": "inadequate", "triage": "NILM"}
    return {"hpv": "positive", "triage_adequacy": "adequate", "triage": _pick(rng, _TRIAGE)}


def _bone(rng: random.Random, age: int) -> dict[str, str]:
    draw = rng.random()
    seiken = _bone_seiken(age)
    judgement = "seiken" if draw < seiken else "guidance" if draw < seiken + 0.2 else "normal"
    return {"judgement": judgement}


def draw_results(
    rng: random.Random, method: str, *, age: int, follow_up: bool = False
) -> dict[str, str]:
    """One exam's coded results ({item: value}) for the method, at the rates above.

    ``age``: the 年度末年齢 (HPV, cytology and bone density depend on it); ``follow_up``: the
    HPV 追跡検査, which is the HPV test alone.
    """
    if method in _SINGLE:
        item, weights = _SINGLE[method]
        return {item: _pick(rng, weights)}
    if method == "fecal_occult_blood":
        day1, day2, _w = rng.choices(FOBT, cum_weights=list(accumulate(w for *_d, w in FOBT)))[0]
        return {"day1": day1, "day2": day2}
    if method == "cytology":
        return _cytology(rng, age)
    if method == "hpv_primary":
        return _hpv(rng, age, follow_up)
    if method == "endometrial_cytology":
        if rng.random() < ENDOMETRIAL_INADEQUATE:
            return {"adequacy": "inadequate", "result": "negative"}
        return {"adequacy": "adequate", "result": _pick(rng, _ENDOMETRIAL)}
    if method in ("dxa", "bone_ultrasound"):
        return _bone(rng, age)
    if method == "hepatitis_test":
        return {
            "hbs": "positive" if rng.random() < HBS_POSITIVE else "negative",
            "hcv": "likely" if rng.random() < HCV_LIKELY else "unlikely",
        }
    raise KeyError(f"デモの結果の割合が決まっていない検査方法です: {method}")


def methods() -> Sequence[str]:
    """Every method this module draws results for (a test checks it covers the catalogues)."""
    return (*_SINGLE, "fecal_occult_blood", "cytology", "hpv_primary", "endometrial_cytology",
            "dxa", "bone_ultrasound", "hepatitis_test")  # fmt: skip
