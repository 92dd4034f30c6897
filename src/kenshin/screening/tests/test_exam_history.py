"""record_exam_history: past exams in bulk — written all or nothing, audited without personal
data, counted per fiscal year, and read back by the roster's facts as history."""

from __future__ import annotations

import json
from datetime import date

import pytest

from kenshin.audit.models import AuditEvent
from kenshin.core import clock
from kenshin.screening import exam_history, services
from kenshin.screening.facts import history_of
from kenshin.screening.models import Exam

pytestmark = pytest.mark.django_db

A, B = "000000000101", "000000000102"


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
    assert json.loads(event.detail) == {"rows": 4}
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
