"""Intake screens: upload → preview (errors with row, column, value) → error file → resolve a
quarantined row side by side → commit; permissions; no person in any URL."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kenshin.audit.models import AuditEvent
from kenshin.core import clock
from kenshin.intake.models import BatchState, ImportBatch, RowStatus, StagedRow
from kenshin.intake.pipeline import staged_rows
from kenshin.intake.tests.helpers import csv_bytes, exam_row
from kenshin.screening.models import Exam
from kenshin.screening.tests.town import KEN, TARO
from kenshin.screening.vouchers import vouchers_of

pytestmark = pytest.mark.django_db
TODAY = date(2025, 11, 20)
ATENA = re.compile(r"1000000\d{3}")


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(TODAY):
        yield


@pytest.fixture
def staff(make_user, signed_in):
    def make(role: str, name: str | None = None):
        user = make_user(name or f"{role}1", roles=[role])
        client = signed_in(user)
        client.user = user
        return client

    return make


def fobt(person, **extra):
    values = {"voucher_no": vouchers_of(person.atena_no)[0].voucher_no,
              "birth_date": person.birth.isoformat(), "sex": str(person.sex),
              "method": "便潜血検査（免疫法・2日法）", "day1": "陰性", "day2": "陰性"}  # fmt: skip
    return exam_row(**{**values, **extra})


def upload(client, data: bytes, name="kekka.csv"):
    r = client.post(reverse("intake:index"), {
        "file": SimpleUploadedFile(name, data, content_type="text/csv"), "fiscal_year": "2025",
    })  # fmt: skip
    assert r.status_code == 302, r.content.decode()[:3000]
    return ImportBatch.objects.latest("pk"), r["Location"]


def test_upload_preview_error_file_resolve_and_commit(town, staff):
    client = staff("jimu")
    rows = [fobt(KEN), fobt(TARO, day1="=1+1"), fobt(TARO, birth_date="1960-01-16",
                                                    exam_date="2025-11-11")]  # fmt: skip
    batch, location = upload(client, csv_bytes(rows, encoding="cp932"))
    assert not ATENA.search(location)
    batch.refresh_from_db()
    assert batch.state == BatchState.STAGED and batch.encoding == "cp932"
    assert batch.counts == {**batch.counts, "new": 1, "error": 1, "quarantined": 1}
    page = client.get(location + "?tab=error").content.decode()
    assert "便潜血1日目" in page and "「=1+1」" in page and "使えない値" in page
    # The error file: original header and row, the reason at the end; formula-safe; CP932.
    r = client.post(reverse("intake:errors", args=[batch.pk]), {"encoding": "cp932"})
    text = b"".join(r.streaming_content).decode("cp932")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][0] == "受診券番号" and lines[0][-1] == "取込エラー 内容"
    assert lines[1][-5] == "3" and "'=1+1" in lines[1] and "使えない値" in lines[1][-1]
    assert AuditEvent.objects.filter(event="export", subject_ref=str(batch.pk)).exists()
    # Quarantine: the row beside its candidate; the decision needs a reason.
    row = StagedRow.objects.get(batch=batch, status=RowStatus.QUARANTINED)
    url = reverse("intake:resolve", args=[row.pk])
    page = client.get(url).content.decode()
    assert "1960-01-16" in page and "1960-01-15" in page and "不一致" in page
    r = client.post(url, {"step": "decide", "decision": "accept", "atena_no": TARO.atena_no,
                          "reason": "医療機関に確認（生年月日の誤記）"})  # fmt: skip
    assert r.status_code == 302
    client.post(reverse("intake:commit", args=[batch.pk]), {"mode": "valid_only"})
    batch.refresh_from_db()
    assert batch.state == BatchState.COMMITTED
    assert Exam.objects.filter(method="fecal_occult_blood", recorded_by="jimu1").count() == 2
    page = client.get(location).content.decode()
    assert "確定済み" in page and "100%" in page


def test_commit_needs_the_permission_and_views_need_import(town, staff, settings):
    batch, _ = upload(staff("jimu"), csv_bytes([fobt(KEN)]))
    viewer = staff("etsuran")
    assert viewer.get(reverse("intake:batch", args=[batch.pk])).status_code == 403
    assert (
        viewer.post(reverse("intake:commit", args=[batch.pk]), {"mode": "all"}).status_code == 403
    )
    batch.refresh_from_db()
    assert batch.state == BatchState.STAGED


def test_unreadable_file_is_refused_with_one_message(town, staff):
    client = staff("jimu")
    batch, location = upload(client, b"\x00\x01\x02binary", name="kekka.csv")
    batch.refresh_from_db()
    assert batch.state == BatchState.REFUSED
    assert "バイナリ" in client.get(location).content.decode()
    assert not staged_rows(batch)


def test_profiles_page_saves_a_clinics_layout_in_staff_terms(staff):
    client = staff("jimu")
    url = reverse("intake:profiles")
    r = client.post(url, {
        "name": "A医院", "description": "A医院の健診システム",
        "mapping": "券番号 = 受診券番号\nカナ = 氏名カナ\n性別(M/F) = sex\n",
        "values": "性別: M=1, F=2",
    })  # fmt: skip
    assert r.status_code == 302, r.content.decode()[:2000]
    from kenshin.intake.models import ColumnProfile

    profile = ColumnProfile.objects.get(name="A医院")
    assert profile.mapping == {"券番号": "voucher_no", "カナ": "name_kana", "性別(M/F)": "sex"}
    assert profile.values == {"sex": {"M": "1", "F": "2"}}
    page = client.get(url).content.decode()
    assert "券番号" in page and "受診券番号" in page and "M→1" in page
    # Unknown columns and rewrites of the hard keys are refused with the line named.
    r = client.post(url, {"name": "B", "mapping": "x = 存在しない列"})
    assert r.status_code == 400 and "1 行目" in r.content.decode()
    r = client.post(
        url, {"name": "B", "mapping": "生年 = 生年月日", "values": "生年月日: S50=1975"}
    )
    assert r.status_code == 400 and "読み替えられません" in r.content.decode()
    assert staff("etsuran").get(url).status_code == 403
