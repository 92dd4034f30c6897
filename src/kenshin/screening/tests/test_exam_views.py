"""Exam pages: batch entry of paper 受診票 (find, confirm, enter, next; double entry with the
differences listed), the person's ledger with its 精検 case forms under the optimistic lock and
its PDF, the worklists by POST with a purpose — and no 宛名番号 in any URL."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pypdf import PdfReader

from kenshin.audit.models import AuditEvent
from kenshin.core import audit, clock
from kenshin.programs import services as programs
from kenshin.screening import entry, services, vouchers
from kenshin.screening import exam_actions as ea
from kenshin.screening.models import EntryBatch, EntryItem, Exam, FollowUpCase
from kenshin.screening.tests.town import KEN, TARO, import_town

pytestmark = pytest.mark.django_db
TODAY = date(2025, 11, 20)


def keyed():
    """Exams recorded by hand (the town's past history was brought in bulk, unrecorded)."""
    return Exam.objects.filter(recorded_at__isnull=False)


ATENA = re.compile(r"1000000\d{3}")
HREF = re.compile(r'(?:href|action)="([^"]+)"')


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(TODAY):
        yield


@pytest.fixture
def town(tmp_path):
    programs.load_shipped()
    import_town(tmp_path)
    services.build_roster(2025)


@pytest.fixture
def staff(make_user, signed_in):
    def make(role: str, name: str | None = None):
        user = make_user(name or f"{role}1", roles=[role])
        client = signed_in(user)
        client.user = user
        return client

    return make


def new_batch(client, *, method="fecal_occult_blood", double=False, label="11月分 大腸",
              billing=""):  # fmt: skip
    data = {"label": label, "method": method, "institution_code": "3410000001",
            "setting": "individual", "billing_month": billing}  # fmt: skip
    if double:
        data["double_entry"] = "on"
    r = client.post(reverse("exams:batches"), data)
    assert r.status_code == 302, r.content.decode()[:2000]
    return EntryBatch.objects.latest("pk")


def key_one(client, batch, *, kana, birth, seq, results, exam_date="2025-11-10", number=""):
    url = reverse("exams:key", args=[batch.pk])
    r = client.post(url, {"step": "find", "seq": seq, "number": number, "kana": kana,
                          "birth": birth})  # fmt: skip
    page = r.content.decode()
    assert r.status_code == 200 and 'id="person-card"' in page, page[:3000]
    ref = re.search(r'name="ref" value="([^"]+)"', page).group(1)
    data = {"step": "save", "seq": seq, "ref": ref, "exam_date": exam_date,
            **{f"r_{k}": v for k, v in results.items()}}  # fmt: skip
    voucher = re.search(r'name="voucher_no" value="([^"]*)"', page)
    if voucher:
        data["voucher_no"] = voucher.group(1)
    return client.post(url, data)


def test_single_entry_finds_confirms_records_and_opens_the_case(town, staff):
    jimu = staff("jimu")
    batch = new_batch(jimu, billing="令和7年11月")
    r = key_one(jimu, batch, kana="シケン タロウ", birth="昭和35年1月15日", seq=1,
                results={"day1": "negative", "day2": "positive"})  # fmt: skip
    assert r.status_code == 302
    exam = keyed().get(atena_no=TARO.atena_no)
    assert exam.needs_seiken and exam.institution_code == "3410000001"
    assert exam.billing_month == date(2025, 11, 1)  # the batch's 請求月
    assert FollowUpCase.objects.filter(exam=exam).exists()
    page = jimu.get(r["Location"]).content.decode()
    assert "No.1 を登録しました（要精検" in page and "受診票 No.2" in page
    # The same number again is refused (a correction goes through the ledger).
    again = key_one(jimu, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                    results={"day1": "negative", "day2": "negative"})  # fmt: skip
    assert "通し番号 1 は入力済みです" in again.content.decode()
    assert keyed().count() == 1


def test_the_result_form_offers_only_the_methods_vocabulary(town, staff):
    jimu = staff("jimu")
    batch = new_batch(jimu)
    r = key_one(jimu, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                results={"day1": "NILM", "day2": "positive"})  # fmt: skip
    page = r.content.decode()
    assert r.status_code == 200 and "NILM は候補にありません" in page
    assert keyed().count() == 0


def test_a_fecal_result_missing_a_day_is_said_beside_the_field(town, staff):
    jimu = staff("jimu")
    batch = new_batch(jimu)
    r = key_one(jimu, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                results={"day1": "negative"})  # fmt: skip
    page = r.content.decode()
    assert r.status_code == 200
    assert re.search(r'field--error">\s*<label for="id_r_day2">[^<]*</label>.*?'
                     r"便潜血 2日目が入っていません", page, re.S), page[:3000]  # fmt: skip
    assert "日ごとの結果がないときだけ" in page  # the 2日分 judgement's help
    assert keyed().count() == 0
    # The 2日分 judgement alone (a national-format report) is a whole result.
    ok = key_one(jimu, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                 results={"overall": "positive"})  # fmt: skip
    assert ok.status_code == 302
    exam = keyed().get(atena_no=TARO.atena_no)
    assert exam.results == {"overall": "positive"} and exam.needs_seiken


def test_a_voucher_number_finds_its_person_and_a_slip_is_refused(town, staff):
    issued = vouchers.issue_vouchers(audit.Actor(None, "system"), 2025, [KEN.atena_no])
    number = issued[KEN.atena_no]
    assert vouchers.is_well_formed(number)
    jimu = staff("jimu")
    batch = new_batch(jimu)
    url = reverse("exams:key", args=[batch.pk])
    ok = jimu.post(url, {"step": "find", "seq": 1, "number": number}).content.decode()
    assert "試験　健" in ok and "受診券番号" in ok
    slipped = number[:-2] + str((int(number[-2]) + 1) % 10) + number[-1]
    bad = jimu.post(url, {"step": "find", "seq": 1, "number": slipped}).content.decode()
    assert "検査数字が合いません" in bad and "試験　健" not in bad


def test_double_entry_lists_differences_and_records_only_when_they_agree(town, staff):
    first, second = staff("jimu", "jimu1"), staff("jimu", "jimu2")
    batch = new_batch(first, double=True)
    key_one(first, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
            results={"day1": "negative", "day2": "positive"})  # fmt: skip
    assert keyed().count() == 0  # nothing recorded by one pass
    key_one(second, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
            results={"day1": "negative", "day2": "negative"})  # fmt: skip
    page = second.get(reverse("exams:batch", args=[batch.pk])).content.decode()
    assert 'id="differences"' in page and "<td>便潜血 2日目</td><td>陽性</td><td>陰性</td>" in page
    refused = second.post(reverse("exams:batch", args=[batch.pk]), follow=True).content.decode()
    assert "違いがあります" in refused and keyed().count() == 0
    # The second keyer looks at the paper again and re-keys No.1.
    key_one(second, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
            results={"day1": "negative", "day2": "positive"})  # fmt: skip
    done = second.post(reverse("exams:batch", args=[batch.pk]), follow=True).content.decode()
    assert "1 件の受診を登録しました" in done
    assert keyed().filter(atena_no=TARO.atena_no, needs_seiken=True).count() == 1
    batch.refresh_from_db()
    assert batch.status == "committed"


def _ledger(client, atena_no: str, purpose: str = "follow_up") -> str:
    """Open the ledger the way staff do: from the resident's record (search → person ref)."""
    from kenshin.residents import services as residents

    session = client.session
    ref = residents.person_ref(session, atena_no, purpose)
    session.save()
    return ref


@pytest.fixture
def taro_case(town):
    _, case = ea.record_exam(audit.Actor(None, "jimu1"), ea.ExamInput(
        atena_no=TARO.atena_no, method="fecal_occult_blood", exam_date=date(2025, 6, 1),
        setting="individual", institution_code="3410000001",
        results={"day1": "negative", "day2": "positive"},
    ))  # fmt: skip
    return case


def test_the_ledger_shows_exams_results_and_case_and_records_the_view(taro_case, staff):
    hokenshi = staff("hokenshi")
    ref = _ledger(hokenshi, TARO.atena_no)
    r = hokenshi.get(reverse("exams:ledger", args=[ref]))
    page = r.content.decode()
    assert r.status_code == 200
    assert "試験　太郎" in page and "便潜血" in page and "要精検" in page
    assert "精検未把握" in page and "陽性" in page
    view = AuditEvent.objects.filter(function="screening.view_exams").latest("seq")
    assert (view.event, view.subject_ref, view.purpose) == ("view", TARO.atena_no, "follow_up")
    assert not any(ATENA.search(u) for u in HREF.findall(page))


def test_the_ledger_reads_a_fixed_number_of_queries_whatever_the_history(taro_case, staff):
    hokenshi = staff("hokenshi")
    ref = _ledger(hokenshi, TARO.atena_no)
    url = reverse("exams:ledger", args=[ref])
    hokenshi.get(url)
    with CaptureQueriesContext(connection) as one:
        hokenshi.get(url)
    for year, month in ((2024, 6), (2024, 10), (2025, 2), (2025, 9)):
        with clock.frozen(date(year, month, 1)):
            ea.record_exam(audit.Actor(None, "jimu1"), ea.ExamInput(
                atena_no=TARO.atena_no, method="fecal_occult_blood",
                exam_date=date(year, month, 1), setting="individual",
                institution_code="3410000001", results={"day1": "positive", "day2": "negative"},
            ))  # fmt: skip
    with CaptureQueriesContext(connection) as five:
        hokenshi.get(url)
    assert len(five) == len(one)
    assert len(one) <= 16, [q["sql"][:80] for q in one.captured_queries]  # session, roles, audit …


def test_two_staff_editing_a_case_cannot_overwrite_each_other(taro_case, staff):
    a, b = staff("hokenshi", "hokenshi1"), staff("hokenshi", "hokenshi2")
    ref_a, ref_b = _ledger(a, TARO.atena_no), _ledger(b, TARO.atena_no)
    c = taro_case.pk
    form = {"case_id": c, f"c{c}-version": 1, f"c{c}-case_id": c,
            f"c{c}-referral_to": "呉中央病院", f"c{c}-form_issued_on": "2025-06-05"}  # fmt: skip
    first = a.post(reverse("exams:case_update", args=[ref_a]), form)
    assert first.status_code == 302
    stale = {**form, f"c{c}-referral_to": "別の病院"}
    second = b.post(reverse("exams:case_update", args=[ref_b]), stale)
    page = second.content.decode()
    assert second.status_code == 200 and "他の職員が更新しました" in page
    case = FollowUpCase.objects.get(pk=c)
    assert (case.referral_to, case.version) == ("呉中央病院", 2)


def test_a_complete_report_makes_the_case_attended(taro_case, staff):
    a = staff("hokenshi")
    ref = _ledger(a, TARO.atena_no)
    c = taro_case.pk
    r = a.post(reverse("exams:case_report", args=[ref]), {
        "case_id": c, f"r{c}-case_id": c, f"r{c}-version": 1, f"r{c}-from_institution": "1",
        f"r{c}-exam_date": "2025-07-01", f"r{c}-institution": "呉中央病院",
        f"r{c}-method": "total_colonoscopy", f"r{c}-result": "adenoma",
    })  # fmt: skip
    assert r.status_code == 302, r.content.decode()[:3000]
    case = FollowUpCase.objects.get(pk=c)
    assert (case.status, case.result) == ("attended", "adenoma")


def test_the_ledger_pdf_has_the_person_and_the_exam_and_is_recorded_as_print(taro_case, staff):
    a = staff("hokenshi")
    ref = _ledger(a, TARO.atena_no)
    r = a.get(reverse("exams:ledger_pdf", args=[ref]))
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert "個人別受診台帳" in text and "試験" in text and "便潜血" in text
    printed = AuditEvent.objects.filter(function="screening.view_exams").latest("seq")
    assert (printed.event, printed.subject_ref) == ("print", TARO.atena_no)


def test_a_worklist_needs_a_purpose_and_records_each_person_shown(taro_case, staff):
    a = staff("hokenshi")
    url = reverse("exams:worklist", args=["seiken_not_reported"])
    assert "利用目的" in a.get(url).content.decode()
    assert a.post(url, {}).status_code == 400
    page = a.post(url, {"purpose": "follow_up"}).content.decode()
    assert "試験　太郎" in page
    shown = AuditEvent.objects.filter(function="screening.view_exams", event="search",
                                      subject_ref=TARO.atena_no)  # fmt: skip
    assert shown.count() == 1
    assert not any(ATENA.search(u) for u in HREF.findall(page))


def test_viewing_role_sees_the_ledger_but_cannot_change_a_case(taro_case, staff):
    viewer = staff("etsuran")
    ref = _ledger(viewer, TARO.atena_no)
    page = viewer.get(reverse("exams:ledger", args=[ref])).content.decode()
    assert "精検未把握" in page and "精密検査の記録を更新する" not in page
    c = taro_case.pk
    r = viewer.post(reverse("exams:case_update", args=[ref]), {"case_id": c})
    assert r.status_code == 403
    assert viewer.get(reverse("exams:batches")).status_code == 403


def test_a_third_member_of_staff_cannot_key_a_double_entry_batch(town, staff):
    first, second, third = (staff("jimu", f"jimu{i}") for i in (1, 2, 3))
    batch = new_batch(first, double=True)
    for client in (first, second):
        key_one(client, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                results={"day1": "negative", "day2": "negative"})  # fmt: skip
    page = third.get(reverse("exams:key", args=[batch.pk])).content.decode()
    assert "2 人の職員が入力中です" in page and "受診者を探す" not in page
    with pytest.raises(entry.EntryError, match="3 人目は入力できません"):
        entry.key_form(third.user, batch.pk, 2, ea.ExamInput(
            atena_no=TARO.atena_no, method="fecal_occult_blood", exam_date=date(2025, 11, 1),
            setting="individual", institution_code="3410000001",
            results={"day1": "negative", "day2": "negative"},
        ))  # fmt: skip


def test_a_form_keyed_in_one_pass_only_is_a_difference_and_blocks_recording(town, staff):
    first, second = staff("jimu", "jimu1"), staff("jimu", "jimu2")
    batch = new_batch(first, double=True)
    for seq in (1, 2):
        key_one(first, batch, kana="シケン タロウ", birth="1960-01-15", seq=seq,
                results={"day1": "negative", "day2": "negative"})  # fmt: skip
    key_one(second, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
            results={"day1": "negative", "day2": "negative"})  # fmt: skip
    diffs = entry.differences(batch)
    assert [(d.seq, d.item, d.first, d.second) for d in diffs] == [
        (2, "受診票", "入力済み", "未入力")
    ]
    with pytest.raises(entry.EntryError, match="違いがあります"):
        entry.commit_batch(second.user, batch.pk)
    assert keyed().count() == 0


def test_pages_leak_no_template_comments(town, staff):
    jimu = staff("jimu")
    batch = new_batch(jimu)
    for url in (reverse("exams:home"), reverse("exams:batches"),
                reverse("exams:key", args=[batch.pk])):  # fmt: skip
        page = jimu.get(url).content.decode()
        assert "{#" not in page and "{%" not in page, url


@pytest.mark.parametrize(
    ("text", "month"),
    [("2026-11", date(2026, 11, 1)), ("２０２６年１１月", date(2026, 11, 1)),
     ("令和8年11月", date(2026, 11, 1)), ("", None)],
)  # fmt: skip
def test_the_batch_billing_month_reads_western_and_japanese_months(text, month):
    from kenshin.screening.exam_forms import _month

    assert _month(text) == month


@pytest.mark.parametrize("text", ["2026-13", "来月", "2026-11-05x"])
def test_a_billing_month_that_is_not_a_month_is_refused_in_japanese(text):
    from django import forms

    from kenshin.screening.exam_forms import _month

    with pytest.raises(forms.ValidationError, match="請求月"):
        _month(text)


def test_a_settled_case_offers_its_forms_only_when_asked(taro_case, staff):
    a = staff("hokenshi")
    ref = _ledger(a, TARO.atena_no)
    c = taro_case.pk
    ea.add_seiken_report(audit.Actor(None, "hokenshi1"), c, 1, from_institution=True,
                         exam_date=date(2025, 7, 1), institution="呉中央病院",
                         method="total_colonoscopy", result="no_abnormality")  # fmt: skip
    url = reverse("exams:ledger", args=[ref])
    page = a.get(url).content.decode()
    assert "精検受診" in page and f'name="c{c}-version"' not in page
    assert f'href="?case={c}#case-{c}"' in page
    asked = a.get(url, {"case": c}).content.decode()
    assert f'name="c{c}-version"' in asked and f'name="r{c}-version"' in asked


def test_a_double_entry_batch_is_recorded_once_and_never_with_one_keyer_on_both_passes(town, staff):
    first, second = staff("jimu", "jimu1"), staff("jimu", "jimu2")
    batch = new_batch(first, double=True)
    for client in (first, second):
        key_one(client, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                results={"day1": "negative", "day2": "negative"})  # fmt: skip
    # A forged state: the first keyer's form in pass 2 as well (as a race could leave it).
    extra = EntryItem.objects.get(batch=batch, pass_no=1, seq=1)
    extra.pk, extra.pass_no, extra.seq = None, 2, 2
    extra.save()
    again = EntryItem.objects.get(batch=batch, pass_no=1, seq=1)
    again.pk, again.seq = None, 2
    again.save()
    with pytest.raises(entry.EntryError, match="別の職員"):
        entry.commit_batch(second.user, batch.pk)
    EntryItem.objects.filter(batch=batch, seq=2).delete()
    assert entry.commit_batch(second.user, batch.pk) == 1
    with pytest.raises(entry.EntryError, match="登録済み"):
        entry.commit_batch(second.user, batch.pk)  # a second click records nothing more
    assert keyed().count() == 1


def test_recording_a_batch_whose_form_no_longer_passes_says_which_form(town, staff):
    first, second = staff("jimu", "jimu1"), staff("jimu", "jimu2")
    batch = new_batch(first, double=True)
    for client in (first, second):
        key_one(client, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
                results={"day1": "negative", "day2": "negative"})  # fmt: skip
    EntryItem.objects.filter(batch=batch).update(atena_no="1999999999")  # no such resident
    page = second.post(reverse("exams:batch", args=[batch.pk]), follow=True).content.decode()
    assert "No.1: この宛名番号の住民記録がありません" in page
    assert keyed().count() == 0 and EntryBatch.objects.get(pk=batch.pk).status == "open"


def test_the_batch_page_records_the_people_it_lists_and_keeps_their_purpose(taro_case, staff):
    jimu = staff("jimu")
    batch = new_batch(jimu)
    key_one(jimu, batch, kana="シケン タロウ", birth="1960-01-15", seq=1,
            results={"day1": "negative", "day2": "negative"})  # fmt: skip
    # Then the ledger opened for the follow-up: listing the batch must not switch its purpose.
    ref = _ledger(jimu, TARO.atena_no, purpose="follow_up")
    before = AuditEvent.objects.filter(subject_ref=TARO.atena_no, event="search").count()
    jimu.get(reverse("exams:batch", args=[batch.pk]))
    after = AuditEvent.objects.filter(subject_ref=TARO.atena_no, event="search").count()
    assert after == before + 1
    from kenshin.residents import services as residents

    assert residents.person_of_ref(jimu.session, ref) == (TARO.atena_no, "follow_up")
