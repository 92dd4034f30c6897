"""record_exam_history: past exams in bulk — written all or nothing, audited without personal
data, counted per fiscal year, and read back by the roster's facts as history; with results,
held to the rules of the one-exam action (要精検, 追跡検査, 初回, the case and its derived
status), so a history brought in bulk reads the same as one entered by hand."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pytest
from django.db import transaction

from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.core.fiscal import age_on, fy_end_age
from kenshin.programs import services as programs
from kenshin.screening import exam_actions as ea
from kenshin.screening import exam_history, rules, services
from kenshin.screening.exam_history import FollowUpFact, SeikenReportFact
from kenshin.screening.facts import history_of
from kenshin.screening.models import Exam, FollowUpCase, SeikenReportRecord
from kenshin.screening.tests.town import FORMULA, HANAKO, KEN, TARO, import_town

pytestmark = pytest.mark.django_db

A, B = "000000000101", "000000000102"
STAFF = audit.Actor(None, "hokenshi1")


def fact(atena: str, method: str, programme: str, day: date, **kw) -> services.ExamFact:
    return services.ExamFact(atena_no=atena, programme=programme, method=method, exam_date=day,
                             setting=kw.pop("setting", "individual"), **kw)  # fmt: skip


ROWS = [
    fact(A, "mammography", "breast", date(2024, 3, 31)),  # FY2023's last day
    fact(A, "mammography", "breast", date(2024, 4, 1)),  # FY2024's first day
    fact(A, "chest_xray", "lung", date(2024, 9, 2), setting="group", smoking_index=640),
    fact(B, "hepatitis_test", "hepatitis", date(2022, 6, 1), institution_code="3410000011"),
]


def test_rows_are_written_with_the_fiscal_year_of_their_date():
    with clock.frozen(date(2025, 1, 10)):
        assert services.record_exam_history(ROWS, actor="demo", source="test") == 4
    got = sorted(Exam.objects.values_list("atena_no", "fiscal_year", "method", "exam_date",
                                          "setting", "smoking_index"))  # fmt: skip
    assert got == sorted(
        [
            (A, 2023, "mammography", date(2024, 3, 31), "individual", None),
            (A, 2024, "mammography", date(2024, 4, 1), "individual", None),
            (A, 2024, "chest_xray", date(2024, 9, 2), "group", 640),
            (B, 2022, "hepatitis_test", date(2022, 6, 1), "individual", None),
        ]
    )
    assert services.exam_count() == 4
    assert services.exam_count([2024]) == 2
    assert services.exam_count([2025]) == 0


def test_one_audit_event_with_the_count_and_no_person():
    with clock.frozen(date(2025, 1, 10)):
        services.record_exam_history(ROWS, actor="demo", source="demo seed 1")
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.event, event.function) == ("import", "screening.exam_history")
    assert event.username == "demo"
    assert json.loads(event.detail) == {"rows": 4, "cases": 0, "reports": 0}
    assert A not in event.detail + event.subject_ref and B not in event.detail


def test_nothing_to_write_writes_nothing():
    before = AuditEvent.objects.count()
    assert services.record_exam_history([]) == 0
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (fact(A, "cytology", "cervical", date(2024, 5, 1), setting="home"), "検診方式"),
        (fact("", "cytology", "cervical", date(2024, 5, 1)), "必須"),
        (fact(A, "chest_xray", "lung", date(2024, 5, 1), smoking_index=-1), "喫煙指数"),
        (
            fact(A, "hpv_primary", "cervical", date(2025, 5, 1), follow_up_due=date(2025, 5, 1)),
            "追跡検査",
        ),
    ],
)
def test_a_bad_row_refuses_the_whole_history(bad, message, monkeypatch):
    monkeypatch.setattr(exam_history, "BATCH", 2)  # the bad row comes after a written batch
    with pytest.raises(ValueError, match=message):
        services.record_exam_history([*ROWS, bad])
    assert services.exam_count() == 0


def test_roster_facts_read_the_recorded_history():
    services.record_exam_history(
        [
            *ROWS,
            fact(A, "hpv_primary", "cervical", date(2025, 6, 1), follow_up_due=date(2026, 6, 1)),
        ]
    )
    history, smoking = history_of(A, 2025, date(2025, 4, 1))
    assert history.programme_years == {"breast": {2023, 2024}, "lung": {2024}}
    assert smoking == 640
    later, _ = history_of(A, 2026, date(2026, 4, 1))
    assert later.follow_up_due == {"hpv_primary": date(2026, 6, 1)}
    assert later.last_method_year("hpv_primary", 2026) == 2025


# ------------------------------------------------------------------ rows with their results

T0 = datetime(2025, 12, 1, 10, 0, tzinfo=clock.JST)
FOBT_POS = {"day1": "negative", "day2": "positive"}


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=clock.JST)


def full(atena: str, method: str, day: date, results: dict, **kw) -> services.ExamFact:
    programme = {"fecal_occult_blood": "colorectal", "mammography": "breast",
                 "chest_xray": "lung", "cytology": "cervical", "hpv_primary": "cervical",
                 "gastric_xray": "gastric", "periodontal_exam": "periodontal"}[method]  # fmt: skip
    return services.ExamFact(
        atena_no=atena, programme=programme, method=method, exam_date=day,
        setting=kw.pop("setting", "individual"), institution_code="3410000001",
        results=results, recorded_by="migration", recorded_at=at(day + timedelta(days=14)), **kw,
    )  # fmt: skip


def report(day: date | None, taken_in: date, *, method: str = "", result: str = "",
           institution: str = "", by_institution: bool = True) -> SeikenReportFact:  # fmt: skip
    return SeikenReportFact(from_institution=by_institution, exam_date=day,
                            institution=institution, method=method, result=result,
                            recorded_at=at(taken_in))  # fmt: skip


class _Undo(Exception):
    pass


def written_by(write) -> tuple:
    """What one way of recording left in the tables (then undone, for the other way)."""
    try:
        with transaction.atomic():
            exam = write()
            case = FollowUpCase.objects.filter(exam=exam).first()
            got = (
                exam.programme, exam.fiscal_year, exam.results, exam.needs_seiken,
                exam.follow_up_due, exam.hpv_follow_up, exam.first_time, exam.age_at_exam,
                exam.fy_end_age,
                case and (case.programme, case.primary_result, case.status, case.status_since,
                          case.result, case.version),
            )  # fmt: skip
            raise _Undo
    except _Undo:
        return got


@pytest.fixture
def town(tmp_path):
    with clock.frozen(date(2025, 12, 1)):
        programs.load_shipped()
        import_town(tmp_path)  # HANAKO: mammography FY2024; TARO: hepatitis 2019
        yield


@pytest.mark.parametrize(
    ("person", "method", "day", "results", "follow_up"),
    [
        (TARO, "fecal_occult_blood", date(2025, 5, 1), FOBT_POS, False),  # 要精検, a case
        (TARO, "chest_xray", date(2025, 5, 1), {"judgement": "D2"}, False),  # D: not 要精検
        (HANAKO, "mammography", date(2025, 9, 1), {"category": "3"}, False),  # not 初回
        (HANAKO, "hpv_primary", date(2025, 6, 2),  # triage NILM: 追跡検査 a year later
         {"hpv": "positive", "triage_adequacy": "adequate", "triage": "NILM"}, False),
        (HANAKO, "hpv_primary", date(2025, 6, 2),  # triage ASC-US: 要確定精検
         {"hpv": "positive", "triage_adequacy": "adequate", "triage": "ASC-US"}, False),
        (HANAKO, "hpv_primary", date(2025, 6, 2), {"hpv": "positive"}, True),  # 追跡検査 +
        (HANAKO, "cytology", date(2025, 6, 2), {"adequacy": "inadequate", "bethesda": "NILM"},
         False),  # an unreadable specimen is 要精検; its decisive value is the adequacy
    ],
)  # fmt: skip
def test_a_row_with_results_is_stored_as_record_exam_would_store_it(
    town, person, method, day, results, follow_up
):
    """The bulk path and the one-exam action draw the same conclusions from the same exam."""
    with clock.frozen(date(2025, 12, 1)):
        by_hand = written_by(lambda: ea.record_exam(STAFF, ea.ExamInput(
            atena_no=person.atena_no, method=method, exam_date=day, setting="individual",
            institution_code="3410000001", results=results, hpv_follow_up=follow_up,
        ))[0])  # fmt: skip

        def bulk() -> Exam:
            row = full(person.atena_no, method, day, results, hpv_follow_up=follow_up,
                       age_at_exam=age_on(person.birth, day),
                       fy_end_age=fy_end_age(person.birth, 2025))  # fmt: skip
            services.record_exam_history([row], actor="migration")
            return Exam.objects.get(atena_no=person.atena_no, method=method, exam_date=day)

        in_bulk = written_by(bulk)
    assert in_bulk == by_hand


def test_every_seiken_opens_a_case_whose_status_is_derived_from_its_reports(town):
    a, b = HANAKO.atena_no, TARO.atena_no
    d = date(2025, 5, 1)
    rows = [
        # 精検機関's 連絡票 with a result: attended (腺腫), since the day it was taken in.
        full(b, "fecal_occult_blood", d, FOBT_POS, follow_up=FollowUpFact(
            form_issued_on=date(2025, 5, 20), form_returned_on=date(2025, 7, 1),
            reports=(report(date(2025, 6, 10), date(2025, 7, 1), method="total_colonoscopy",
                            result="adenoma", institution="くれ総合病院"),),
        )),
        # A repeat 便潜血 is no 精検: 未受診.
        full(b, "fecal_occult_blood", date(2024, 5, 1), FOBT_POS, follow_up=FollowUpFact(
            reports=(report(date(2024, 6, 1), date(2024, 6, 5), method="fobt_repeat"),),
        )),
        # A self-report without the 精検機関: still 未把握, open since the exam.
        full(a, "mammography", date(2025, 9, 1), {"category": "3"}, follow_up=FollowUpFact(
            survey_sent_on=date(2025, 11, 1), survey_answered_on=date(2025, 11, 10),
            reports=(report(date(2025, 10, 1), date(2025, 11, 10), method="imaging",
                            result="no_abnormality", by_institution=False),),
        )),
        # 要精検 with nothing known: a case all the same.
        full(b, "chest_xray", d, {"judgement": "E1"}, setting="group"),
        # Known not to have gone (the survey's answer): 未受診 from the answer's day.
        full(b, "gastric_xray", d, {"judgement": "3a"}, setting="group", follow_up=FollowUpFact(
            known_not_attended=True, survey_sent_on=date(2025, 11, 1),
            survey_answered_on=date(2025, 11, 12), survey_answer="受けていない",
        )),
        # "In progress" first, the result later: attended from the first report, がん counted.
        full(a, "cytology", date(2024, 6, 3), {"adequacy": "adequate", "bethesda": "HSIL"},
             follow_up=FollowUpFact(reports=(
                 report(date(2024, 7, 1), date(2024, 8, 1), method="colposcopy_biopsy",
                        result="cancer", institution="おんど婦人科"),
                 report(date(2024, 7, 1), date(2024, 7, 10), method="colposcopy_biopsy",
                        institution="おんど婦人科"),
             ))),
        # No 要精検, no case.
        full(a, "periodontal_exam", d, {"judgement": "normal"}),
    ]  # fmt: skip
    with clock.frozen(T0):
        assert services.record_exam_history(rows, actor="migration", source="test") == 7
    cases = {c.exam.method + str(c.exam.fiscal_year): c for c in FollowUpCase.objects.all()}
    got = {k: (c.status, c.status_since, c.result) for k, c in cases.items()}
    assert got == {
        "fecal_occult_blood2025": ("attended", date(2025, 7, 1), "adenoma"),
        "fecal_occult_blood2024": ("not_attended", date(2024, 6, 5), ""),
        "mammography2025": ("unknown", date(2025, 9, 1), ""),
        "chest_xray2025": ("unknown", date(2025, 5, 1), ""),
        "gastric_xray2025": ("not_attended", date(2025, 11, 12), ""),
        "cytology2024": ("attended", date(2024, 7, 10), "cancer"),
    }
    # Re-derived from the stored reports, the status is the stored one.
    for case in cases.values():
        reports = [
            rules.SeikenReport(r.from_institution, r.exam_date, r.institution, r.method, r.result)
            for r in case.reports.order_by("recorded_at", "pk")
        ]
        outcome = rules.seiken_status(case.programme, case.exam.method, case.primary_result,
                                      case.fiscal_year, reports,
                                      known_not_attended=case.known_not_attended)  # fmt: skip
        assert (case.status, case.result) == (outcome.status, outcome.result)
        assert case.exam.needs_seiken and case.atena_no == case.exam.atena_no
    assert cases["mammography2025"].survey_answered_on == date(2025, 11, 10)
    assert cases["fecal_occult_blood2025"].form_returned_on == date(2025, 7, 1)
    assert SeikenReportRecord.objects.count() == 5
    assert not Exam.objects.get(method="periodontal_exam").needs_seiken
    event = AuditEvent.objects.order_by("-seq").first()
    assert json.loads(event.detail) == {"rows": 7, "cases": 6, "reports": 5}
    assert a not in event.detail + event.subject_ref and b not in event.detail


def test_first_time_is_derived_over_the_three_previous_fiscal_years_unless_given(town):
    a, b, c = FORMULA.atena_no, TARO.atena_no, KEN.atena_no
    mammo = {"category": "1"}
    fobt = {"day1": "negative", "day2": "negative"}
    rows = [
        full(a, "mammography", date(2021, 6, 1), mammo),  # FY2021: four years before FY2025
        full(a, "mammography", date(2025, 6, 1), mammo),
        full(b, "fecal_occult_blood", date(2022, 6, 1), fobt),  # FY2022: within three
        full(b, "fecal_occult_blood", date(2025, 6, 1), fobt),
        full(c, "fecal_occult_blood", date(2025, 6, 1), fobt, first_time=False),  # as given
        fact(c, "chest_xray", "lung", date(2025, 6, 1)),  # a bare row is derived too
        # The history already on record counts: HANAKO's FY2024 mammogram (the town's).
        full(HANAKO.atena_no, "mammography", date(2025, 10, 1), mammo),
    ]
    with clock.frozen(T0):
        services.record_exam_history(rows)
    got = {(e.atena_no, e.fiscal_year, e.method): e.first_time for e in Exam.objects.all()}
    assert got[(a, 2025, "mammography")] is True
    assert got[(a, 2021, "mammography")] is True
    assert got[(b, 2025, "fecal_occult_blood")] is False
    assert got[(b, 2022, "fecal_occult_blood")] is True
    assert got[(c, 2025, "fecal_occult_blood")] is False
    assert got[(c, 2025, "chest_xray")] is True
    assert got[(HANAKO.atena_no, 2025, "mammography")] is False


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (full(A, "mammography", date(2025, 6, 1), {"category": "7"}), "カテゴリー"),
        (full(A, "hpv_primary", date(2025, 6, 1), {"hpv": "positive"}), "トリアージ"),
        (full(A, "mammography", date(2025, 6, 1), {"category": "1"},
              follow_up=FollowUpFact()), "要精検でない"),
        (full(A, "mammography", date(2025, 6, 1), {"category": "4"}, follow_up=FollowUpFact(
            reports=(report(date(2025, 7, 1), date(2025, 7, 5), method="colonoscopy"),))),
         "精検法"),
        (full(A, "mammography", date(2025, 6, 1), {"category": "4"}, follow_up=FollowUpFact(
            reports=(report(date(2025, 5, 1), date(2025, 7, 5), method="imaging"),))),
         "精検日"),
        (full(A, "hpv_primary", date(2025, 6, 1),
              {"hpv": "positive", "triage_adequacy": "adequate", "triage": "NILM"},
              follow_up_due=date(2026, 7, 1)), "追跡検査の時期が結果と合いません"),
        (full(A, "mammography", date(2026, 6, 1), {"category": "1"}), "未来"),
        (full(A, "mammography", date(2025, 6, 1), {"category": "1"},
              billing_month=date(2025, 7, 15)), "請求月"),
    ],
)  # fmt: skip
def test_a_bad_result_or_case_refuses_the_whole_history_naming_the_row(bad, message, monkeypatch):
    monkeypatch.setattr(exam_history, "BATCH", 2)  # a batch with a case is written first
    first = full(B, "fecal_occult_blood", date(2025, 5, 1), FOBT_POS, follow_up=FollowUpFact(
        reports=(report(date(2025, 6, 1), date(2025, 6, 5), method="total_colonoscopy",
                        result="no_abnormality"),),
    ))  # fmt: skip
    with clock.frozen(T0), pytest.raises(ValueError, match=message) as refused:
        services.record_exam_history([first, *ROWS, bad])
    assert str(refused.value).startswith("6 件目: ")
    assert services.exam_count() == 0
    assert not FollowUpCase.objects.exists() and not SeikenReportRecord.objects.exists()


# ------------------------------------------------------------------ insert_exams_from (intake)


def _staging_select(rows: list[dict]) -> tuple[str, list]:
    """A SELECT of literal rows in the columns insert_exams_from reads (stands in for a
    staging table of another app)."""
    from django.db import connection

    types = {"fiscal_year": "INTEGER", "smoking_index": "INTEGER", "age_at_exam": "INTEGER",
             "fy_end_age": "INTEGER", "exam_date": "DATE", "follow_up_due": "DATE",
             "billing_month": "DATE", "needs_seiken": "BOOLEAN", "hpv_follow_up": "BOOLEAN",
             "results": "JSONB"}  # fmt: skip

    def cell(column: str) -> str:  # PostgreSQL types parameters; SQLite takes them as they are
        typed = connection.vendor == "postgresql" and column in types
        return f"CAST(%s AS {types[column]})" if typed else "%s"

    parts, params = [], []
    for row in rows:
        parts.append("SELECT " + ", ".join(f"{cell(c)} AS {c}" for c in services.EXAM_COLUMNS))
        params.extend(row[c] for c in services.EXAM_COLUMNS)
    return " UNION ALL ".join(parts), params


def _staged(atena: str, method: str, programme: str, day: date, results: dict) -> dict:
    seiken, due = services.exam_outcome(method, day, results)
    return {
        "atena_no": atena, "fiscal_year": 2025, "programme": programme, "method": method,
        "exam_date": day, "setting": "individual", "institution_code": "3410000001",
        "smoking_index": None, "follow_up_due": due, "results": json.dumps(results),
        "needs_seiken": seiken, "hpv_follow_up": False, "voucher_no": "", "coupon_no": "",
        "place": "", "age_at_exam": 60, "fy_end_age": 60, "complication": "",
        "billing_category": "", "billing_month": None,
    }  # fmt: skip


def test_insert_exams_from_copies_rows_opens_cases_derives_first_time_and_skips_duplicates():
    programs.load_shipped()
    with clock.frozen(date(2025, 12, 1)):
        services.record_exam_history(
            [fact(A, "fecal_occult_blood", "colorectal", date(2024, 6, 1))], actor="demo"
        )
        rows = [
            _staged(A, "fecal_occult_blood", "colorectal", date(2025, 6, 2),
                    {"day1": "negative", "day2": "positive"}),
            _staged(B, "fecal_occult_blood", "colorectal", date(2025, 6, 3),
                    {"day1": "negative", "day2": "negative"}),
        ]  # fmt: skip
        select, params = _staging_select(rows)
        with transaction.atomic():
            written = services.insert_exams_from(select, params, fiscal_year=2025, actor="intake-test",
                                                 recorded_by="jimu1", source="intake:1")  # fmt: skip
        assert written == 2
        # The same rows again: already on record, nothing written.
        assert services.insert_exams_from(select, params, fiscal_year=2025, actor="intake-test",
                                          recorded_by="jimu1", source="intake:1") == 0  # fmt: skip
    a = Exam.objects.get(atena_no=A, fiscal_year=2025)
    b = Exam.objects.get(atena_no=B, fiscal_year=2025)
    assert a.needs_seiken and a.results == {"day1": "negative", "day2": "positive"}
    assert (a.first_time, b.first_time) == (False, True)  # A was screened in FY2024
    assert a.recorded_by == "jimu1" and a.municipality_code == b.municipality_code
    case = FollowUpCase.objects.get(exam=a)
    assert case.status == rules.SeikenStatus.UNKNOWN and case.status_since == date(2025, 6, 2)
    assert case.primary_result == "positive"
    assert not FollowUpCase.objects.filter(exam=b).exists()
    events = AuditEvent.objects.filter(event="import", subject_ref="intake:1")
    assert events.count() == 1
    assert json.loads(events.get().detail) == {"rows": 2, "cases": 1, "reports": 0}
    assert A not in events.get().detail
