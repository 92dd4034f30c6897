"""`kenshin roster build` and `kenshin roster explain`: what they print, what they record."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest
from django.core.management import CommandError, call_command

from kenshin.audit.models import AuditEvent
from kenshin.core import clock
from kenshin.programs import services as programs
from kenshin.screening import services
from kenshin.screening.models import RosterBuild, RosterEntry
from kenshin.screening.tests.town import HANAKO, MISAKI, TARO, TOWN, import_town

pytestmark = pytest.mark.django_db
FY = 2025


@pytest.fixture
def town(tmp_path):
    with clock.frozen(date(2025, 4, 10)):
        programs.load_shipped()
        import_town(tmp_path)
        yield


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("roster", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_build_prints_the_summary_and_per_method_counts(town):
    out, _err = run("build", "--fy", "2025")
    assert "2025年度の対象者抽出が終わりました（基準日 2025-04-01、事業定義 第1版" in out
    rows = RosterEntry.objects.filter(fiscal_year=FY)
    assert f"追加 {rows.count():,}件" in out
    mammography = rows.filter(method="mammography")
    line = next(ln for ln in out.splitlines() if ln.startswith("マンモグラフィ"))
    assert line.split()[1:] == [
        f"{mammography.count():,}",
        f"{mammography.filter(eligible=True).count():,}",
    ]
    assert out.splitlines()[-1].split()[1:] == [
        f"{rows.count():,}",
        f"{rows.filter(eligible=True).count():,}",
    ]
    # A second run changes nothing and says so.
    again, _ = run("build", "--fy", "2025")
    assert f"追加 0件、変更 0件、変更なし {rows.count():,}件" in again


def test_build_accepts_a_wareki_base_date(town):
    run("build", "--fy", "2025", "--as-of", "令和7年6月1日")
    assert RosterBuild.objects.get().as_of == date(2025, 6, 1)


def test_build_refuses_a_year_without_catalogue_and_a_bad_date(town):
    with pytest.raises(CommandError, match="2031年度の検診事業の定義がありません"):
        run("build", "--fy", "2031")
    with pytest.raises(CommandError, match="--as-of"):
        run("build", "--fy", "2025", "--as-of", "令和7年2月30日")
    assert not RosterBuild.objects.exists()


def test_build_today_is_the_daily_top_up_in_todays_fiscal_year(town):
    with clock.frozen(date(2025, 5, 20)):
        run("build", "--today")
    build = RosterBuild.objects.get()
    assert (build.fiscal_year, build.as_of) == (2025, date(2025, 5, 20))
    with pytest.raises(CommandError, match="一緒に使えません"):
        run("build", "--today", "--as-of", "2025-06-01")
    with pytest.raises(CommandError, match="--fy で年度を指定"):
        run("build")


def test_build_refuses_a_base_date_outside_the_year(town):
    with pytest.raises(CommandError, match="基準日 2027-04-01 は2025年度の対象者抽出に使えません"):
        run("build", "--fy", "2025", "--as-of", "2027-04-01")
    assert not RosterEntry.objects.exists()


def test_explain_prints_each_decision_with_its_rule_and_records_the_read(town):
    run("build", "--fy", "2025")
    services.override(None, FY, "gastric_xray", HANAKO.atena_no, False, "理由")
    before = AuditEvent.objects.count()
    out, _ = run("explain", "--fy", "2025", "--atena-no", HANAKO.atena_no)
    lines = out.splitlines()
    assert lines[0] == f"2025年度 対象者の判定　宛名番号 {HANAKO.atena_no}"
    assert "性別 女　年度末年齢 45歳　住民状態（基準日） 住民" in out
    assert "  マンモグラフィ: × 対象外  規則 [screened_last_year] 前年度に受診済み" in out
    assert "  HPV検査単独法: ○ 対象  規則 [milestone] 節目年齢" in out
    assert "  歯周疾患検診: × 対象外  規則 [not_milestone] 節目年齢ではない" in out
    assert "  胃内視鏡検査: × 対象外  規則 [under_age]" in out
    # The staff decision is shown beside the rule's.
    assert "    職員の判断: 対象外（規則では [annual] 毎年度の対象年齢）" in out
    # 生活保護 from FY2025 (taxed in FY2024): the current status counts, April–June included.
    assert "免除 生活保護\n" in out and "4〜6月の受診は免除" not in out
    assert "自己負担: 個別 0円、集団 0円" in out  # 胸部X線
    assert "自己負担（対象外のため委託単価）: 個別 17,600円" in out  # 胃内視鏡 at 45
    assert "自己負担（対象外のため委託単価）: 個別 8,800円、集団 6,600円" in out  # マンモ
    # No name, kana or address in the output.
    for text in (HANAKO.name, HANAKO.kana, "呉市", HANAKO.birth.isoformat()):
        assert text not in out
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.event, e.subject_ref, e.purpose, e.function) for e in events] == [
        ("view", HANAKO.atena_no, "eligibility", "screening.view_roster")
    ]
    assert json.loads(events[0].detail)["fiscal_year"] == FY


def test_explain_shows_the_coupon_and_the_purpose_given(town):
    run("build", "--fy", "2025")
    out, _ = run("explain", "--fy", "2025", "--atena-no", MISAKI.atena_no, "--purpose", "inquiry")
    assert "  子宮頸部細胞診: ○ 対象  規則 [coupon] 無料クーポンの対象" in out
    assert "クーポン番号 2025C000001" in out
    assert AuditEvent.objects.order_by("-seq").first().purpose == "inquiry"


def test_explain_before_any_build_and_for_an_unknown_number(town):
    out, _ = run("explain", "--fy", "2025", "--atena-no", TARO.atena_no)
    assert "対象者抽出はまだ行われていません" in out
    assert "名簿: 載っていません" in out
    with pytest.raises(CommandError, match="宛名番号 1999999999 は住民記録にありません"):
        run("explain", "--fy", "2025", "--atena-no", "1999999999")
    # Even a miss is a recorded attempt to read.
    assert AuditEvent.objects.filter(event="view", subject_ref="1999999999").exists()


def test_explain_agrees_with_the_stored_roster_for_everyone(town):
    run("build", "--fy", "2025")
    for person in TOWN:
        for x in services.explain(FY, person.atena_no):
            if x.entry is not None:
                assert x.agrees, (person.atena_no, x.method)


def test_recount_heals_a_count_table_that_drifted_and_says_how_many_cells(town):
    from kenshin.screening.models import RosterCount

    with clock.frozen(date(2025, 4, 10)):
        run("build", "--fy", "2025")
        cell = RosterCount.objects.filter(fiscal_year=FY, eligible__gt=0).first()
        right = cell.eligible
        RosterCount.objects.filter(pk=cell.pk).update(eligible=right + 5)  # drift
        out, _err = run("recount", "--fy", "2025")
        assert "数が違っていた区分 1）" in out
        healed = RosterCount.objects.get(fiscal_year=FY, method=cell.method, sex=cell.sex,
                                         band=cell.band)  # fmt: skip
        assert healed.eligible == right
        out, _err = run("recount", "--fy", "2025")
        assert "数が違っていた区分 0）" in out
