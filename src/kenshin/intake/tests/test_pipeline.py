"""The staged pipeline on a small town: a file is checked, matched, previewed and committed —
new, corrected, unchanged, wrong and doubtful rows each end where they should."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import override_settings

from kenshin.core import clock
from kenshin.intake import actions, pipeline
from kenshin.intake.models import BatchState, CommitMode, RowStatus
from kenshin.intake.pipeline import staged_rows
from kenshin.intake.tests.helpers import INSTITUTION, csv_bytes, exam_row, staged, upload
from kenshin.screening.models import Exam, FollowUpCase
from kenshin.screening.tests.town import HANAKO, KEN, MISAKI, TARO

pytestmark = pytest.mark.django_db
TODAY = date(2025, 11, 20)


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(TODAY), override_settings(INTAKE_APPROVAL_ROWS=1_000):
        yield


def voucher(person) -> str:
    return next(v.voucher_no for v in screening_vouchers(person))


def screening_vouchers(person):
    from kenshin.screening.vouchers import vouchers_of

    return vouchers_of(person.atena_no)


def fobt(person, **extra) -> dict[str, str]:
    values = {"voucher_no": voucher(person), "birth_date": person.birth.isoformat(),
              "sex": str(person.sex), "method": "fecal_occult_blood", "day1": "陰性",
              "day2": "negative"}  # fmt: skip
    return exam_row(**{**values, **extra})


def statuses(batch) -> dict[int, str]:
    return {r.row_no: r.status for r in staged_rows(batch)}


def test_new_rows_stage_and_commit_once(town):
    batch = staged(csv_bytes([fobt(KEN), fobt(TARO, day2="陽性")]))
    assert batch.state == BatchState.STAGED
    assert batch.counts["new"] == 2 and batch.counts["error"] == 0
    before = Exam.objects.count()
    counts = actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    assert counts.written == 2
    assert Exam.objects.count() == before + 2
    taro = Exam.objects.get(atena_no=TARO.atena_no, method="fecal_occult_blood")
    assert taro.needs_seiken and taro.results == {"day1": "negative", "day2": "positive"}
    assert taro.age_at_exam == 65 and taro.fy_end_age == 66
    assert FollowUpCase.objects.filter(exam=taro).exists()
    with pytest.raises(actions.IntakeError, match="すでに確定"):
        actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)


def test_same_file_again_changes_nothing(town):
    data = csv_bytes([fobt(KEN)])
    batch = staged(data)
    actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    before = Exam.objects.count()
    again = upload(data)
    assert again.state == BatchState.DUPLICATE and "確定済み" in again.message
    # The same rows in another file (a different byte: no BOM) are unchanged, not new.
    other = staged(csv_bytes([fobt(KEN)], encoding="utf-8"))
    assert other.counts["unchanged"] == 1 and other.counts["new"] == 0
    actions.commit_batch("kakutei", other.pk, CommitMode.ALL)
    assert Exam.objects.count() == before


def test_corrected_result_is_an_update_with_its_diff(town):
    actions.commit_batch("kakutei", staged(csv_bytes([fobt(KEN)])).pk, CommitMode.ALL)
    batch = staged(csv_bytes([fobt(KEN, day1="positive")]))
    [row] = staged_rows(batch)
    assert row.status == RowStatus.UPDATED
    assert row.diff == {"results": [{"day1": "negative", "day2": "negative"},
                                    {"day1": "positive", "day2": "negative"}]}  # fmt: skip
    actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    exam = Exam.objects.get(atena_no=KEN.atena_no, method="fecal_occult_blood")
    assert exam.needs_seiken and FollowUpCase.objects.filter(exam=exam).exists()


def test_errors_block_commit_all_but_not_valid_only(town):
    bad = fobt(TARO, day1="たぶん陰性")
    batch = staged(csv_bytes([fobt(KEN), bad]))
    assert statuses(batch) == {2: RowStatus.NEW, 3: RowStatus.ERROR}
    problem = next(r for r in staged_rows(batch) if r.row_no == 3).problems[0]
    assert problem["column"] == "便潜血1日目" and problem["value"] == "たぶん陰性"
    with pytest.raises(actions.IntakeError, match="1 行あります"):
        actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    assert not Exam.objects.filter(atena_no=KEN.atena_no, method="fecal_occult_blood").exists()
    counts = actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
    assert counts.written == 1 and counts.left == 1


def test_wrong_year_future_and_duplicate_rows_are_errors(town):
    batch = staged(csv_bytes([
        fobt(KEN, exam_date="2025-03-31"),  # FY2024
        fobt(TARO, exam_date="2025-12-01"),  # after today
        fobt(MISAKI, method="mammography", day1="", day2="", category="1"),  # 21: not 40
        fobt(HANAKO, exam_date="R7.11.1"),
        fobt(HANAKO, exam_date="2025-11-01"),  # the same exam again
    ]))  # fmt: skip
    rows = {r.row_no: r for r in staged_rows(batch)}
    assert "契約年度" in rows[2].problems[0]["message"]
    assert "未来" in rows[3].problems[0]["message"]
    assert rows[4].status == RowStatus.QUARANTINED and "対象年齢" in str(rows[4].problems)
    assert rows[5].status == RowStatus.NEW
    assert rows[6].status == RowStatus.ERROR and "5 行目" in rows[6].problems[0]["message"]


def test_approval_needed_above_threshold_and_not_by_uploader(town, settings):
    settings.INTAKE_APPROVAL_ROWS = 1
    batch = staged(csv_bytes([fobt(KEN), fobt(TARO)]))
    with pytest.raises(actions.IntakeError, match="承認"):
        actions.commit_batch("kakutei", batch.pk, CommitMode.ALL)
    with pytest.raises(actions.IntakeError, match="受け付けた職員"):
        actions.approve("uketsuke", batch.pk)
    actions.approve("shonin", batch.pk)
    assert actions.commit_batch("kakutei", batch.pk, CommitMode.ALL).written == 2


def test_quarantined_row_resolved_to_a_person_is_committed(town):
    row = fobt(KEN, birth_date="1975-04-03")  # the clinic mistyped the birth date
    batch = staged(csv_bytes([row]))
    [staged_row] = staged_rows(batch)
    assert staged_row.status == RowStatus.QUARANTINED
    assert staged_row.candidates == [KEN.atena_no]
    with pytest.raises(actions.IntakeError, match="理由"):
        actions.resolve_row("hokenshi", staged_row.pk, atena_no=KEN.atena_no, reason=" ")
    actions.resolve_row("hokenshi", staged_row.pk, atena_no=KEN.atena_no,
                        reason="医療機関に電話で確認（生年月日の誤記）")  # fmt: skip
    batch.refresh_from_db()
    assert batch.counts["quarantined"] == 0 and batch.counts["new"] == 1
    assert actions.commit_batch("kakutei", batch.pk, CommitMode.ALL).written == 1


def test_sender_institution_mismatch_is_quarantined(town):
    batch = staged(csv_bytes([fobt(KEN)]), sender="3410000999")
    assert statuses(batch) == {2: RowStatus.QUARANTINED}
    assert "送付元" in str([r.problems for r in staged_rows(batch)])


def test_context_accepts_names_and_codes(town):
    ctx = pipeline.build_context(2025)
    assert ctx.methods["胃部エックス線検査"].code == "gastric_xray"
    assert ctx.programmes["胃がん"] == ctx.programmes["gastric"] == "gastric"
    assert INSTITUTION
