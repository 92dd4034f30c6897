"""Residents and the 番号連携サーバ: the optional 個人番号 column, ResidentLink for every imported
resident, the 個人番号 nowhere in the main database, and `kenshin residents link` (issue 4)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, connections

from kenshin.core.mynumber import check_digit
from kenshin.linkage import services as linkage
from kenshin.residents import services
from kenshin.residents.actions import import_feed_file
from kenshin.residents.models import ResidentLink, ResidentVersion
from kenshin.residents.rules import RESIDENT_HEADER_WITH_MY_NUMBER
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db


def synthetic(first_eleven: str) -> str:
    """A synthetic 個人番号: 11 digits plus the check digit (never a real person's)."""
    return first_eleven + str(check_digit(first_eleven))


NUMBER = synthetic("31415926535")
OTHER = synthetic("27182818284")


def with_number(atena: str, number: str = "", **changes: str) -> dict[str, str]:
    return person(宛名番号=atena, 個人番号=number, **changes)


@pytest.fixture
def mn_file(feed_file):
    def write(rows, **kw) -> Path:
        return feed_file(rows, header=RESIDENT_HEADER_WITH_MY_NUMBER, **kw)

    return write


def links() -> dict[str, str]:
    return dict(ResidentLink.objects.values_list("atena_no", "unified_atena_no"))


def main_database_text() -> str:
    """Every value of every table of the main database, as text (tests are small)."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # nosec B608
            out.extend(str(v) for row in cursor.fetchall() for v in row)
    return "\n".join(out)


def test_valid_mynumber_is_linked_and_the_same_person_is_found_by_it(mn_file):
    report = import_feed_file(
        mn_file(
            [with_number("1000000001", NUMBER), with_number("1000000002", "", 氏名="山田　花子")]
        ),
        actor="住基連携",
    )
    assert report.ok, report.errors
    assert report.linked == 2
    found = links()
    assert set(found) == {"1000000001", "1000000002"}
    assert found["1000000001"] != found["1000000002"]
    client = linkage.client()
    assert client.find_by_my_number(NUMBER, actor="test") == found["1000000001"]
    assert client.masked_my_number(found["1000000001"], actor="test") == "**** **** " + NUMBER[-4:]
    assert client.masked_my_number(found["1000000002"], actor="test") is None


def test_mynumber_in_full_width_and_grouped_is_accepted(mn_file):
    spelled = "".join(chr(ord(c) + 0xFEE0) for c in NUMBER)
    spelled = f"{spelled[:4]}-{spelled[4:8]}-{spelled[8:]}"
    assert import_feed_file(mn_file([with_number("1000000001", spelled)]), actor="t").ok
    assert linkage.client().find_by_my_number(NUMBER, actor="test") == links()["1000000001"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12345678901", "12桁の数字ではありません"),
        ("1234567890123", "12桁の数字ではありません"),
        ("ABCDEFGHIJKL", "12桁の数字ではありません"),
        (
            NUMBER[:11] + str((int(NUMBER[11]) + 1) % 10),
            "検査用数字（12桁目）が合いません。番号の誤りです",
        ),
    ],
)
def test_invalid_mynumber_is_a_row_error_naming_row_and_column_never_the_value(
    mn_file, value, message
):
    report = import_feed_file(
        mn_file([with_number("1000000001", NUMBER), with_number("1000000002", value)]), actor="t"
    )
    assert [str(e) for e in report.errors] == [f"3行目 個人番号: {message}"]
    assert value not in str(report.errors[0]) and NUMBER not in str(report.errors[0])
    assert ResidentVersion.objects.count() == 0 and ResidentLink.objects.count() == 0


def test_errors_csv_never_carries_the_mynumber(mn_file, tmp_path):
    wrong = NUMBER[:11] + str((int(NUMBER[11]) + 1) % 10)
    report = import_feed_file(mn_file([with_number("1000000001", wrong)]), actor="t")
    out = tmp_path / "errors.csv"
    assert services.write_errors_csv([report], out) == 1
    text = out.read_text(encoding="utf-8-sig")
    assert "個人番号" in text and wrong not in text and wrong[:11] not in text


def test_a_row_with_the_wrong_number_of_columns_names_seventeen(mn_file):
    report = import_feed_file(mn_file([[*with_number("1000000001").values()][:16]]), actor="t")
    assert "17列必要ですが16列あります" in str(report.errors[0])


def test_header_with_a_wrong_last_column_is_refused(feed_file):
    header = (*RESIDENT_HEADER_WITH_MY_NUMBER[:-1], "マイナンバー")
    report = import_feed_file(feed_file([person()], header=header), actor="t")
    assert "17列目は「個人番号」が必要です" in str(report.errors[0])


def test_the_mynumber_is_nowhere_in_the_main_database(mn_file, feed_file):
    rows = [with_number("1000000001", NUMBER), with_number("1000000002", OTHER, 氏名="山田　花子")]
    assert import_feed_file(mn_file(rows), actor="t").ok
    diff = with_number(
        "1000000001", NUMBER, 異動区分="31", 異動日="2025-05-01", 住所="広島県呉市宝町1番1号"
    )
    assert import_feed_file(mn_file([diff]), actor="t").ok
    text = main_database_text()
    assert ResidentVersion.objects.count() == 3  # the scan did see the register
    for number in (NUMBER, OTHER):
        assert number not in text
        assert f"{number[:4]} {number[4:8]} {number[8:]}" not in text
    # … while the linkage database holds them only encrypted.
    with connections["linkage"].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM linkage_mynumber")
        assert cursor.fetchone()[0] == 2


def test_every_imported_resident_gets_a_link_without_a_mynumber_column_too(feed_file):
    rows = [
        person(宛名番号=f"10000000{i:02d}", 氏名=f"山田　{'一二三四五'[i]}郎") for i in range(5)
    ]
    report = import_feed_file(feed_file(rows), actor="t")
    assert report.ok and report.linked == 5
    assert len(set(links().values())) == 5


def test_diff_links_new_people_and_attaches_a_mynumber_to_a_known_one(feed_file, mn_file):
    assert import_feed_file(feed_file([person()]), actor="t").ok
    before = links()["1000000001"]
    move_in = with_number(
        "1000000002",
        "",
        異動区分="10",
        異動日="2025-04-01",
        氏名="佐藤　次郎",
        氏名カナ="サトウ　ジロウ",
    )
    known = with_number(
        "1000000001", NUMBER, 異動区分="32", 異動日="2025-04-02", 世帯番号="2000000009"
    )
    assert import_feed_file(mn_file([move_in, known]), actor="t").ok
    after = links()
    assert after["1000000001"] == before  # the same person, now with a 個人番号
    assert "1000000002" in after
    assert linkage.client().find_by_my_number(NUMBER, actor="t") == before


def test_resync_full_load_registers_only_what_changed_or_carries_a_number(mn_file, monkeypatch):
    rows = [with_number(f"10000000{i:02d}", "", 氏名=f"山田　{'一二三'[i]}郎") for i in range(3)]
    assert import_feed_file(mn_file(rows), actor="t").ok
    from kenshin.residents import linking

    sent: list[str] = []
    real = linking.Linker.register

    def spy(self, atenas):
        sent.extend(a.atena_no for a in atenas)
        return real(self, atenas)

    monkeypatch.setattr(linking.Linker, "register", spy)
    rows[1] = with_number(
        "1000000001", NUMBER, 氏名="山田　二郎", 異動日="2025-04-01", 届出日="2025-04-01"
    )
    resync = [{**r, "異動日": "2025-04-01", "届出日": "2025-04-01"} for r in rows]
    assert import_feed_file(mn_file(resync), actor="t").ok
    assert sent == ["1000000001"]


def test_resync_full_load_relinks_exactly_the_resident_whose_link_was_lost(feed_file, monkeypatch):
    """5,000 residents (a quarter of an import batch): a re-sync of the same full file sends
    only the one resident without a link, and finishes (the unlinked filter is one set)."""
    from datetime import date, timedelta

    from kenshin.residents import linking

    born = date(1940, 1, 1)
    rows = [
        person(宛名番号=f"1{i:09d}", 生年月日=(born + timedelta(days=i)).isoformat())
        for i in range(5_000)
    ]
    assert import_feed_file(feed_file(rows), actor="t").ok
    before = links()
    assert len(before) == 5_000
    ResidentLink.objects.filter(atena_no="1000002500").delete()

    sent: list[str] = []
    real = linking.Linker.register

    def spy(self, atenas):
        sent.extend(a.atena_no for a in atenas)
        return real(self, atenas)

    monkeypatch.setattr(linking.Linker, "register", spy)
    resync = [{**r, "異動日": "2025-04-01", "届出日": "2025-04-01"} for r in rows]
    report = import_feed_file(feed_file(resync), actor="t")
    assert report.ok, report.errors
    assert report.unchanged == 5_000
    assert sent == ["1000002500"]
    assert links() == before


def test_a_refused_registration_writes_nothing(mn_file, monkeypatch):
    from kenshin.linkage.contract import Conflict
    from kenshin.residents import linking

    def refuse(self, atenas):
        raise Conflict("1件目: この個人番号は別の団体内統合宛名番号に登録されています")

    monkeypatch.setattr(linking.Linker, "register", refuse)
    report = import_feed_file(mn_file([with_number("1000000001", NUMBER)]), actor="t")
    assert [str(e) for e in report.errors] == [
        "番号連携サーバに登録できませんでした（1件目: この個人番号は別の団体内統合宛名番号に"
        "登録されています）。住民記録には何も登録していません（番号連携サーバに登録済みの宛名は、"
        "取り込み直すと同じ番号に結び付きます）"
    ]
    assert ResidentVersion.objects.count() == 0 and ResidentLink.objects.count() == 0


def test_residents_link_registers_the_unlinked_and_resumes(feed_file):
    rows = [
        person(宛名番号=f"10000000{i:02d}", 氏名=f"山田　{'一二三四五六七'[i]}郎") for i in range(7)
    ]
    assert import_feed_file(feed_file(rows), actor="t").ok
    kept = links()
    ResidentLink.objects.filter(atena_no__gte="1000000002").delete()  # as if imported before
    out = io.StringIO()
    call_command("residents", "link", "--batch-size", "2", "--limit", "3", stdout=out)
    assert "3 人に連携しました" in out.getvalue() and "未連携が 2 人残っています" in out.getvalue()
    assert ResidentLink.objects.count() == 5
    out = io.StringIO()
    call_command("residents", "link", "--batch-size", "2", stdout=out)
    assert "2 人に連携しました" in out.getvalue() and "残っています" not in out.getvalue()
    assert links() == kept  # the linkage server gave each 宛名 back its number
    out = io.StringIO()
    call_command("residents", "link", stdout=out)
    assert "0 人に連携しました" in out.getvalue()


def test_one_linkage_client_per_configuration_and_replaced_ones_are_closed(settings):
    first = linkage.client()
    assert linkage.client() is first
    settings.LINKAGE_URL = "http://127.0.0.1:9/"
    http = linkage.client()
    assert http is not first and linkage.client() is http
    settings.LINKAGE_CREDENTIAL = "kl_other_credential"
    other = linkage.client()
    assert other is not http and http._http.is_closed and not other._http.is_closed
    linkage.reset_client()
    assert other._http.is_closed


def test_credential_file_is_read_again_only_when_it_changes(settings, tmp_path):
    path = tmp_path / "credential"
    path.write_text("kl_first_x\n")
    settings.LINKAGE_CREDENTIAL, settings.LINKAGE_CREDENTIAL_FILE = "", str(path)
    assert linkage.credential() == "kl_first_x"
    first = linkage.client()
    assert linkage.client() is first
    path.write_text("kl_second_xy\n")  # another size: a new stamp even on a coarse clock
    assert linkage.credential() == "kl_second_xy"
    assert linkage.client() is not first


def test_keys_from_environment_sees_any_of_the_three_variables(monkeypatch):
    names = ("KENSHIN_LINKAGE_KEYS", "KENSHIN_LINKAGE_ACTIVE_KEY", "KENSHIN_LINKAGE_INDEX_KEY")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    assert not linkage.keys_from_environment()
    monkeypatch.setenv("KENSHIN_LINKAGE_INDEX_KEY", "x")
    assert linkage.keys_from_environment()


def test_a_revealed_number_is_grouped_four_by_four():
    assert linkage.group_my_number(NUMBER) == f"{NUMBER[:4]} {NUMBER[4:8]} {NUMBER[8:]}"


def test_every_path_builds_the_same_atena_from_the_same_attributes():
    from datetime import date

    from kenshin.residents.actions import ATTR_FIELDS
    from kenshin.residents.linking import ATENA_ATTR_FIELDS, atena_in

    assert ATTR_FIELDS[: len(ATENA_ATTR_FIELDS)] == ATENA_ATTR_FIELDS
    attrs = ("山田　太郎", "ヤマダ　タロウ", "k", "n", 1, "1985-04-01", "7370051", "呉市中央")
    parsed, queried = (
        atena_in("1", attrs),
        atena_in("1", (*attrs[:5], date(1985, 4, 1), *attrs[6:])),
    )
    assert parsed == queried and parsed.birth_date == date(1985, 4, 1)
    assert parsed.address == "呉市中央" and parsed.sex == 1 and parsed.my_number is None
