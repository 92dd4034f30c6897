"""What became of the demo city's 要精検: the 精検 reports, surveys and tracing of each case.

Why: the 精検 worklists (未報告, 連絡票の未返却, 状況調査の対象), the ledgers and the 事業報告's
精検 table need cases in every state a real city has — long settled ones with the 精検機関's
連絡票, 未受診 known from the person or from an inappropriate repeat test, 未把握 that nobody
could resolve, and, in the last months before today, cases still waiting for news.

What: each case first gets its eventual fate, set so that once all news is in the counted
rates are the national ones (domain.md §4.4, FY2019 事業報告: 精検受診率 胃 84 %, 肺 83 %,
大腸 70 %, 子宮頸 75 %, 乳 89 %; 未把握率 胃 10 %, 肺 11 %, 大腸 18 %, 子宮頸 19 %, 乳 8 %; the
rest 未受診), then a timeline: the 要精検 notice
with the 連絡票 a few days after the result, the 精検 a month or so later, the 精検機関's
report two to four weeks after that, the 未受診者状況調査 half a year after the exam to
those still unknown. Whatever would happen after today has not happened: such a case is
still open. The status itself is not decided here — the writer derives it from these facts
with ``screening.rules.seiken_status``, as it would for a case entered by hand.

The 精検 results follow the primary result: がん at the 陽性反応適中度 each category has
(胃X線 by category from 宮城県 FY2015, domain.md §5.5: 3a 1.5 %, 3b 2.7 %, 4 35 %, 5 72 %;
the others set so that がん発見率 lands near the national figures — 胃 0.1–0.2 %, 肺 ~0.05 %,
大腸 ~0.15 %, 乳 ~0.3 %, 子宮頸 ~0.03–0.05 %), then がん疑い又は未確定, 腺腫 (大腸), がん以外,
異常認めず.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from kenshin.core import clock

# The 精検 facts are the history writer's own types (screening.services exports ExamFact).
from kenshin.screening.services import ExamFact, FollowUpFact, SeikenReportFact

# National 精検受診率 and 未把握率 (domain.md §4.4, FY2019); the rest are 未受診.
NATIONAL: dict[str, tuple[float, float]] = {
    "gastric": (0.841, 0.100),
    "lung": (0.830, 0.106),
    "colorectal": (0.698, 0.178),
    "cervical": (0.746, 0.193),
    "breast": (0.892, 0.077),
}
SELF_REPORT = 0.12  # attended, but the city hears it from the person (at the survey)
INCOMPLETE_SELF_REPORT = 0.25  # …of those, without the 精検機関: stays 未把握
INTERIM_REPORT = 0.4  # がん・がん疑い: the 精検機関 reports "in progress" first, then the result
SURVEY_MISSED = 0.15  # cases still unknown that staff never sent the survey to
SURVEY_ANSWERED = 0.35  # unknown cases whose survey came back (without the four items)
REPEAT_SHARE = 0.3  # 未受診 by an inappropriate repeat test, where the programme has one
NOT_ATTENDED_BY_SURVEY = 0.7  # …of the others, known from the survey (else by tracing)
REFERRAL_NAMED = 0.85
FORM_ISSUED = 0.95
# Attended cases the city never learns of (a self-report without the 精検機関, or no survey
# to bring it): they count as 未把握, as in the national figures, so more than the national
# 精検受診率 must really attend for the counted rate to match it.
UNHEARD = SELF_REPORT * (INCOMPLETE_SELF_REPORT + SURVEY_MISSED * (1 - INCOMPLETE_SELF_REPORT))


def fate(programme: str) -> tuple[float, float]:
    """(really attended, never heard of) for a case of the programme, such that the counted
    精検受診率 and 未把握率 come out at the national figures once settled."""
    rate, unknown = NATIONAL[programme]
    attended = rate / (1 - UNHEARD)
    return attended, unknown - (attended - rate)


# 精検機関 (synthetic) by programme, as the 紹介先 and in the reports.
HOSPITALS: dict[str, tuple[str, ...]] = {
    "gastric": ("くれ総合病院（デモ）", "みなと医療センター（デモ）", "ひろ消化器内科（デモ）"),
    "colorectal": ("くれ総合病院（デモ）", "みなと医療センター（デモ）", "ひろ消化器内科（デモ）"),
    "lung": ("くれ総合病院（デモ）", "みなと医療センター（デモ）"),
    "breast": ("くれ総合病院（デモ）", "あがの乳腺クリニック（デモ）"),
    "cervical": ("くれ総合病院（デモ）", "おんど婦人科クリニック（デモ）"),
}
# The 精検 method used, by programme: (code, weight); the first is the usual one.
METHODS: dict[str, tuple[tuple[str, float], ...]] = {
    "gastric": (("endoscopy", 96.0), ("xray", 4.0)),
    "lung": (("ct", 90.0), ("bronchoscopy", 10.0)),
    "colorectal": (("total_colonoscopy", 93.0), ("ct_colonography", 4.0), ("barium_enema", 3.0)),
    "breast": (("imaging", 70.0), ("biopsy", 30.0)),
    "cervical": (("colposcopy_biopsy", 100.0),),
}
# A test that does not count as 精検 (the person is 精検未受診), where the programme has one.
REPEAT_TEST = {"colorectal": "fobt_repeat", "cervical": "cytology_only"}
# P(がん | the primary's decisive value), per method.
CANCER: dict[str, Mapping[str, float]] = {
    "gastric_xray": {"3a": 0.015, "3b": 0.027, "4": 0.354, "5": 0.718},
    "gastric_endoscopy": {"suspected_cancer": 0.05},
    "chest_xray": {"E1": 0.015, "E2": 0.12},
    "sputum_cytology": {"D": 0.05, "E": 0.3},
    "fecal_occult_blood": {"positive": 0.035},
    "mammography": {"3": 0.02, "4": 0.25, "5": 0.8, "N": 0.01},
    "breast_ultrasound": {"3": 0.01, "4": 0.2, "5": 0.7},
    "cytology": {
        "inadequate": 0.001, "ASC-US": 0.002, "LSIL": 0.003, "ASC-H": 0.03, "HSIL": 0.08,
        "SCC": 0.6, "AGC": 0.05, "AIS": 0.3, "Adenocarcinoma": 0.6, "Other": 0.4,
    },
    "hpv_primary": {
        "positive": 0.01, "inadequate": 0.001, "ASC-US": 0.003, "LSIL": 0.004, "ASC-H": 0.03,
        "HSIL": 0.08, "SCC": 0.6, "AGC": 0.05, "AIS": 0.3, "Adenocarcinoma": 0.6, "Other": 0.4,
    },
}  # fmt: skip
SUSPECTED = 0.03  # がんの疑いのある者又は未確定, among the rest
OTHER_DISEASE = {"colorectal": 0.25, "gastric": 0.45, "lung": 0.35, "breast": 0.35,
                 "cervical": 0.5}  # fmt: skip
ADENOMA = 0.45  # 大腸: 腺腫であった者
EARLY = {"gastric": 0.7, "colorectal": 0.6, "lung": 0.5, "breast": 0.7, "cervical": 0.8}
PATHOLOGY = {
    "gastric": ("胃腺癌", "胃腺癌（進行）"),
    "colorectal": ("大腸腺癌（粘膜内）", "大腸腺癌"),
    "lung": ("肺腺癌", "肺扁平上皮癌"),
    "breast": ("非浸潤性乳管癌", "浸潤性乳管癌"),
    "cervical": ("上皮内癌（CIN3）", "扁平上皮癌"),
}
SURVEY_ANSWERS = (
    "精密検査は受けていない（自覚症状がない）",
    "精密検査は受けていない（仕事で時間がとれない）",
    "精密検査を受けるつもりはない",
)
TRACING = "電話で本人に確認（精密検査は受けていない）"


@dataclass
class _Case:
    """One case being drawn: the days that frame it and what the city knew by today."""

    rng: random.Random
    fact: ExamFact
    decisive: str  # the primary's decisive value (rules.decisive_value)
    notified: date  # the day the result was taken in: the 要精検 notice goes out from here
    today: date
    hospital: str
    survey: date  # when the 未受診者状況調査 goes to those still unknown
    survey_missed: bool
    reports: list[SeikenReportFact] = field(default_factory=list)
    returned: date | None = None  # the 連絡票 came back (the 精検機関's final report)
    answered: date | None = None
    answer: str = ""
    known_not_attended: bool = False
    tracing: str = ""
    traced: date | None = None

    def wait(self, after: date, low: int, mean: float) -> date:
        """``low`` days and an exponential wait (mean ``mean`` days, at most 240) after."""
        return after + timedelta(days=low + min(int(self.rng.expovariate(1 / mean)), 240))

    def report(self, day: date, **kw: Any) -> bool:
        """Add a report taken in on ``day`` — if that day has come."""
        if day > self.today:
            return False
        self.reports.append(SeikenReportFact(recorded_at=at_office(self.rng, day), **kw))
        return True

    def survey_answer(self, answer: str) -> date | None:
        """The survey came back with ``answer`` (None if not sent, or not back by today)."""
        day = self.wait(self.survey, 7, 10)
        if self.survey_missed or day > self.today:
            return None
        self.answered, self.answer = day, answer
        return day


def at_office(rng: random.Random, day: date) -> datetime:
    """A moment in office hours of ``day`` (when the city took the paper in)."""
    return datetime.combine(day, time(rng.randint(9, 16), rng.randrange(60)), tzinfo=clock.JST)


def _pick(rng: random.Random, weights: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _w in weights], weights=[w for _c, w in weights])[0]


def _seiken_result(rng: random.Random, fact: ExamFact, decisive: str) -> str:
    """The 精検 result category, given the primary result (module docstring)."""
    if rng.random() < CANCER.get(fact.method, {}).get(decisive, 0.0):
        return "cancer"
    draw = rng.random()
    if draw < SUSPECTED:
        return "suspected"
    draw = (draw - SUSPECTED) / (1 - SUSPECTED)
    if fact.programme == "colorectal":
        if draw < ADENOMA:
            return "adenoma"
        draw = (draw - ADENOMA) / (1 - ADENOMA)
    return "other_disease" if draw < OTHER_DISEASE[fact.programme] else "no_abnormality"


def _attended(c: _Case) -> None:
    """A 精検 that was done: reported by the 精検機関 (its 連絡票, sometimes "in progress"
    first), or by the person when the survey asks."""
    rng, programme = c.rng, c.fact.programme
    method = _pick(rng, METHODS[programme])
    if c.fact.method == "sputum_cytology":
        method = "bronchoscopy"  # 喀痰 D/E: bronchoscopy whatever the CT (domain.md §5.3)
    done = c.wait(c.notified, 5, 30)
    result = _seiken_result(rng, c.fact, c.decisive)
    details: dict[str, Any] = {}
    if result == "cancer":
        early = rng.random() < EARLY[programme]
        details = {
            "pathology": PATHOLOGY[programme][0 if early else 1],
            "stage": rng.choice(("0", "I") if early else ("II", "III", "IV")),
            "early_cancer": early,
        }
        method = "biopsy" if method == "imaging" else method
    if rng.random() < SELF_REPORT:
        complete = rng.random() >= INCOMPLETE_SELF_REPORT
        day = c.survey_answer("精密検査を受けた")
        if day is not None:
            c.report(
                day, from_institution=False, exam_date=min(done, day),
                institution=c.hospital if complete else "", method=method, result=result,
            )  # fmt: skip
        return
    if result in ("cancer", "suspected") and rng.random() < INTERIM_REPORT:
        c.report(done + timedelta(days=rng.randint(3, 10)), from_institution=True,
                 exam_date=done, institution=c.hospital, method=method)  # fmt: skip
    final = c.wait(done, 10, 30 if result == "cancer" else 15)
    if c.report(final, from_institution=True, exam_date=done, institution=c.hospital,
                method=method, result=result, **details):  # fmt: skip
        c.returned = final


def _not_attended(c: _Case) -> None:
    """No 精検: the city learns it from an inappropriate repeat test the clinic reports, from
    the person's survey answer, or by tracing (a phone call) — each only once it happens."""
    rng, fact = c.rng, c.fact
    repeat = REPEAT_TEST.get(fact.programme)
    if fact.method == "sputum_cytology":
        repeat = "sputum_repeat"  # 喀痰 要精検: a repeat 喀痰 is no 精検 (胸部X線's E has none)
    # After a cytology ASC-US a repeat cytology is an accepted 精検, not a way to miss one.
    if fact.method == "cytology" and c.decisive == "ASC-US":
        repeat = None
    how = rng.random()
    if repeat and how < REPEAT_SHARE:
        day = c.wait(c.notified, 10, 20)
        c.report(day, from_institution=True, exam_date=day - timedelta(days=rng.randint(3, 10)),
                 institution=fact.institution_code, method=repeat)  # fmt: skip
    elif how < REPEAT_SHARE + (1 - REPEAT_SHARE) * NOT_ATTENDED_BY_SURVEY:
        if c.survey_answer(rng.choice(SURVEY_ANSWERS)) is not None:
            c.known_not_attended = True
    else:
        day = c.wait(c.survey, 20, 30)
        if day <= c.today:
            c.known_not_attended, c.tracing, c.traced = True, TRACING, day


def _unknown(c: _Case) -> None:
    """未把握: some answer the survey without saying where and what (not enough to count)."""
    if c.rng.random() < SURVEY_ANSWERED:
        method = _pick(c.rng, METHODS[c.fact.programme])
        day = c.survey_answer("受診したと回答（受診機関・結果の記載なし）")
        if day is not None:
            c.report(day, from_institution=False, exam_date=None, method=method)


def draw_follow_up(
    rng: random.Random, fact: ExamFact, decisive: str, notified: date, today: date
) -> FollowUpFact:
    """Everything the city knew by ``today`` about the 精検 of a 要精検 exam (module docstring).

    ``decisive``: the primary's decisive value; ``notified``: the day the result was taken in.
    """
    programme = fact.programme
    hospital = rng.choice(HOSPITALS[programme])
    c = _Case(
        rng, fact, decisive, notified, today, hospital,
        survey=fact.exam_date + timedelta(days=rng.randint(185, 230)),
        survey_missed=rng.random() < SURVEY_MISSED,
    )  # fmt: skip
    referral = hospital if rng.random() < REFERRAL_NAMED else ""
    issued = notified + timedelta(days=rng.randint(0, 7))
    form_issued = issued if rng.random() < FORM_ISSUED and issued <= today else None
    attended, unknown = fate(programme)
    draw = rng.random()
    if draw < attended:
        _attended(c)
    elif draw < attended + unknown:
        _unknown(c)
    else:
        _not_attended(c)
    heard = min((r.recorded_at.date() for r in c.reports if r.recorded_at), default=None)
    # The survey goes to whoever the city has heard nothing of by then (and came back if
    # answered); one answered is always one sent.
    sent = None
    if c.answered is not None or (
        not c.survey_missed and c.survey <= today and (heard is None or heard > c.survey)
    ):
        sent = c.survey
    moments = [r.recorded_at for r in c.reports if r.recorded_at]
    moments += [at_office(rng, d) for d in (form_issued, c.answered, c.traced) if d]
    return FollowUpFact(
        referral_to=referral,
        form_issued_on=form_issued,
        form_returned_on=c.returned if form_issued else None,
        known_not_attended=c.known_not_attended,
        survey_sent_on=sent,
        survey_answered_on=c.answered,
        survey_answer=c.answer,
        tracing_result=c.tracing,
        reports=tuple(c.reports),
        updated_at=max(moments, default=None),
    )
