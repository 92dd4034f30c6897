"""The guards a review of the intake asked for, each as the case that got through before:
the same exam twice through quarantine, another clinic's row taken as a correction, a 精検
report for an exam on record dropped, a corrected result leaving its case behind, an exam
after death, a mistyped voucher, a broken FHIR Bundle, an approval outliving a resolution,
a profile rewriting the hard keys, and two commits of the same rows at once."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connection, connections, transaction

from kenshin.core import clock
from kenshin.intake import actions
from kenshin.intake.models import BatchState, CommitMode, RowStatus, StagedRow
from kenshin.intake.pipeline import staged_rows
from kenshin.intake.tests.helpers import csv_bytes, exam_row, staged, upload
from kenshin.screening.models import Exam, FollowUpCase
from kenshin.screening.tests.town import GONE, HANAKO, KEN, MISAKI
from kenshin.screening.vouchers import vouchers_of

TODAY = date(2025, 11, 20)


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(TODAY):
        yield


def voucher(person) -> str:
    return vouchers_of(person.atena_no)[0].voucher_no


def fobt(person, **extra) -> dict[str, str]:
    values = {"voucher_no": voucher(person), "birth_date": person.birth.isoformat(),
              "sex": str(person.sex), "method": "fecal_occult_blood", "day1": "negative",
              "day2": "negative"}  # fmt: skip
    return exam_row(**{**values, **extra})


def cytology(person, bethesda: str, **extra) -> dict[str, str]:
    values = {"voucher_no": voucher(person), "birth_date": person.birth.isoformat(),
              "sex": str(person.sex), "method": "cytology", "adequacy": "adequate",
              "bethesda": bethesda}  # fmt: skip
    return exam_row(**{**values, **extra})


def rows_of(batch) -> dict[int, StagedRow]:
    return {r.row_no: r for r in staged_rows(batch)}


@pytest.mark.django_db
def test_resolving_a_row_to_an_exam_already_in_the_file_is_refused(town):
    batch = staged(csv_bytes([fobt(KEN), fobt(KEN, birth_date="1975-04-03")]))
    doubtful = rows_of(batch)[3]
    assert doubtful.status == RowStatus.QUARANTINED
    with pytest.raises(actions.IntakeError, match="同じファイルの別の行"):
        actions.resolve_row("hokenshi1", doubtful.pk, atena_no=KEN.atena_no, reason="誤記")
    actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    assert Exam.objects.filter(atena_no=KEN.atena_no, method="fecal_occult_blood").count() == 1


@pytest.mark.django_db
def test_another_clinics_row_for_an_exam_on_record_is_held_not_a_correction(town):
    actions.commit_batch("kakutei", staged(csv_bytes([fobt(KEN)])).pk, CommitMode.ALL)
    other = fobt(KEN, institution_code="3410000002", day1="positive")
    batch = staged(csv_bytes([other]), sender="3410000002")
    [row] = rows_of(batch).values()
    assert row.status == RowStatus.QUARANTINED and "別の医療機関" in row.problems[0]["message"]
    exam = Exam.objects.get(atena_no=KEN.atena_no, method="fecal_occult_blood")
    assert exam.institution_code == "3410000001" and exam.results["day1"] == "negative"


@pytest.mark.django_db
def test_a_seiken_report_for_an_exam_on_record_is_an_error_not_dropped(town):
    positive = fobt(KEN, day2="positive")
    actions.commit_batch("kakutei", staged(csv_bytes([positive])).pk, CommitMode.ALL)
    again = {**positive, "seiken_date": "2025-11-15", "seiken_method": "total_colonoscopy",
             "seiken_result": "adenoma"}  # fmt: skip
    batch = staged(csv_bytes([again]))
    [row] = rows_of(batch).values()
    assert row.status == RowStatus.ERROR and "受診台帳" in row.problems[0]["message"]


@pytest.mark.django_db
def test_a_corrected_result_becomes_its_cases_primary_result(town):
    first = cytology(MISAKI, "ASC-US", exam_date="2025-11-10")
    actions.commit_batch("kakutei", staged(csv_bytes([first])).pk, CommitMode.ALL)
    case = FollowUpCase.objects.get(exam__atena_no=MISAKI.atena_no)
    assert case.primary_result == "ASC-US"
    batch = staged(csv_bytes([cytology(MISAKI, "HSIL", exam_date="2025-11-10")]))
    assert rows_of(batch)[2].status == RowStatus.UPDATED
    actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    case.refresh_from_db()
    assert case.primary_result == "HSIL" and case.version == 2


@pytest.mark.django_db
def test_an_exam_after_death_waits_for_staff(town):
    batch = staged(csv_bytes([fobt(GONE, exam_date="2025-11-10")]))
    [row] = rows_of(batch).values()
    assert row.status == RowStatus.QUARANTINED
    assert "住民ではありません" in str(row.problems) and "2025-03-01" in str(row.problems)


@pytest.mark.django_db
def test_a_voucher_with_a_wrong_check_digit_is_an_error(town):
    good = voucher(KEN)
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    [row] = rows_of(staged(csv_bytes([fobt(KEN, voucher_no=wrong)]))).values()
    assert row.status == RowStatus.ERROR and "チェック数字" in row.problems[0]["message"]


CATEGORY = {"coding": [{"system": "x/checkup-report-category", "code": "55"}]}
WRONG_SHAPES = {
    "an event that is a string": [
        {"resource": {"resourceType": "Composition", "category": [CATEGORY], "event": ["a"]}},
        {"resource": {"resourceType": "Patient", "name": "x", "birthDate": 5}},
    ],
    "a coding that is a string": [
        {"resource": {"resourceType": "Composition", "category": [CATEGORY]}},
        {"resource": {"resourceType": "Patient"}},
        {"resource": {"resourceType": "Observation", "code": {"coding": "abc"},
                      "valueCodeableConcept": 1}},
    ],
}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("shape", sorted(WRONG_SHAPES))
def test_a_fhir_bundle_of_the_wrong_shape_is_refused_with_a_message(town, shape):
    import json

    bundle = {"resourceType": "Bundle", "type": "document", "entry": WRONG_SHAPES[shape]}
    data = json.dumps(bundle).encode()
    batch = actions.stage_batch("uketsuke", upload(data, name="b.json").pk)
    assert batch.state == BatchState.REFUSED
    assert "1 件目の Bundle" in batch.message and "ください" in batch.message
    assert not staged_rows(batch)


@pytest.mark.django_db
def test_a_5000_digit_number_in_a_bundle_is_refused(town):
    data = ('{"resourceType": "Bundle", "type": "document", "total": 1' + "0" * 5000 + "}").encode()
    batch = actions.stage_batch("uketsuke", upload(data, name="n.json").pk)
    assert batch.state == BatchState.REFUSED and "ください" in batch.message


@pytest.mark.django_db
def test_resolving_a_row_takes_back_the_approval(town, settings):
    settings.INTAKE_APPROVAL_ROWS = 0
    batch = staged(csv_bytes([fobt(KEN), fobt(HANAKO, birth_date="1980-06-02")]))
    actions.approve("shonin", batch.pk)
    doubtful = rows_of(batch)[3]
    actions.resolve_row("uketsuke", doubtful.pk, atena_no=HANAKO.atena_no, reason="誤記")
    with pytest.raises(actions.IntakeError, match="承認"):
        actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"birth_date": {"S50": "1975-04-02"}}, "読み替えられません"),
        ({"sex": {"": "1"}}, "空欄"),
        ({"nonsense": {"a": "b"}}, "知らない項目"),
    ],
)
def test_a_profile_cannot_rewrite_the_hard_keys_or_fill_blanks(values, message):
    with pytest.raises(actions.IntakeError, match=message):
        actions.save_profile("jimu", "A医院", {"券番号": "voucher_no"}, values=values)


@pytest.mark.django_db(transaction=True)
def test_two_commits_of_the_same_rows_at_once_write_them_once(town):
    """One commit holds its transaction open; the other starts meanwhile. On PostgreSQL the
    second waits on the writers' lock and then sees the first's rows; SQLite takes its single
    write lock at BEGIN, so the second waits there."""
    data = [fobt(KEN), fobt(HANAKO)]
    first = staged(csv_bytes(data))
    second = staged(csv_bytes(data, encoding="utf-8"))  # other bytes, the same rows
    assert first.counts["new"] == second.counts["new"] == 2
    started, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_commit() -> None:
        try:
            with clock.frozen(TODAY), transaction.atomic():
                actions.commit_batch("kakutei", first.pk, CommitMode.ALL)
                started.set()
                go_on.wait(10)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_commit)
    thread.start()
    assert started.wait(10)
    if connection.vendor == "sqlite":
        go_on.set()  # SQLite's lock would make the second wait for the first: let it finish
        thread.join(10)
    timer = threading.Timer(1.0, go_on.set)  # PostgreSQL: let the first finish while we wait
    timer.start()
    counts = actions.commit_batch("kakutei", second.pk, CommitMode.ALL)
    thread.join(10)
    timer.cancel()
    assert not errors, errors
    assert counts.written == 0 and counts.already == 2
    assert Exam.objects.filter(method="fecal_occult_blood").count() == 2


@pytest.mark.django_db
def test_a_correction_made_against_values_that_changed_since_is_refused(town):
    actions.commit_batch("kakutei", staged(csv_bytes([fobt(KEN)])).pk, CommitMode.ALL)
    late = staged(csv_bytes([fobt(KEN, day1="positive")]))  # staged against day1 negative
    sooner = staged(csv_bytes([fobt(KEN, day2="positive")], encoding="utf-8"))
    actions.commit_batch("kakutei", sooner.pk, CommitMode.ALL)
    with pytest.raises(actions.IntakeError, match="確認の後に変わりました"):
        actions.commit_batch("kakutei", late.pk, CommitMode.ALL)
    exam = Exam.objects.get(atena_no=KEN.atena_no, method="fecal_occult_blood")
    assert exam.results == {"day1": "negative", "day2": "positive"}
