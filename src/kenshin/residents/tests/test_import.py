"""Feed import: every edge case names the exact Japanese message staff will read."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.residents import services
from kenshin.residents.actions import import_feed_file
from kenshin.residents.models import FeedImport, FiscalCategory, ResidentVersion
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db


def run(path):
    return import_feed_file(path, actor="test")


def messages(report):
    return [str(e) for e in report.errors]


def versions():
    return ResidentVersion.objects.count()


def test_full_load_into_empty_register_writes_every_row(feed_file):
    rows = [
        person(),
        person(宛名番号="1000000002", 氏名="山田　花子", 氏名カナ="ヤマダ　ハナコ", 性別="2",
               生年月日="1987-06-15", 続柄="妻"),
    ]  # fmt: skip
    report = run(feed_file(rows))
    assert report.ok, messages(report)
    assert (report.kind, report.rows, report.inserted) == ("resident_full", 2, 2)
    hanako = services.get_resident("1000000002")
    assert hanako.name == "山田　花子"
    assert hanako.birth_date == date(1987, 6, 15)
    assert hanako.change_kind == "full_load"
    assert hanako.postal_code == "7370051"


def test_same_file_twice_changes_nothing(feed_file):
    path = feed_file([person()])
    first = run(path)
    second = run(path)
    assert first.ok and first.inserted == 1
    assert second.already_imported
    assert second.summary().endswith("取込済みのファイルです（内容が同じため何も変更しません）")
    assert versions() == 1
    assert FeedImport.objects.count() == 1


def test_cp932_file_with_gaiji_free_kanji_is_detected_and_read(feed_file):
    path = feed_file(
        [person(氏名="髙橋　一郎", 氏名カナ="タカハシ　イチロウ", 世帯主氏名="髙橋　一郎")],
        encoding="cp932",
    )
    report = run(path)
    assert report.ok, messages(report)
    assert report.encoding == "cp932"
    assert services.get_resident("1000000001").name == "髙橋　一郎"


def test_utf8_with_bom_is_read(feed_file):
    report = run(
        feed_file([person(氏名="山﨑　次郎", 世帯主氏名="山﨑　次郎")], encoding="utf-8-sig")
    )
    assert report.ok, messages(report)
    assert report.encoding == "utf-8-sig"
    assert services.get_resident("1000000001").name == "山﨑　次郎"


def test_half_width_kana_and_hiragana_are_normalised(feed_file):
    report = run(
        feed_file(
            [person(氏名カナ="ﾔﾏﾀﾞ ﾀﾛｳ"), person(宛名番号="1000000002", 氏名カナ="やまだ　じろう")]
        )
    )
    assert report.ok, messages(report)
    assert services.get_resident("1000000001").name_kana == "ヤマダ　タロウ"
    assert services.get_resident("1000000002").name_kana == "ヤマダ　ジロウ"


def test_shifted_columns_are_rejected_with_the_column_count(feed_file):
    shifted = list(person().values())
    del shifted[10]  # 方書 missing: everything after it moves one column left
    report = run(feed_file([person(), shifted]))
    assert messages(report) == [
        "3行目: 列の数が違います（16列必要ですが15列あります）。区切り文字のずれや列の抜けがないか確認してください"
    ]
    assert versions() == 0


def test_impossible_date_names_row_column_and_value(feed_file):
    report = run(feed_file([person(), person(宛名番号="1000000002", 生年月日="1985-02-30")]))
    assert messages(report) == ["3行目 生年月日: 「1985-02-30」は存在しない日付です"]
    assert versions() == 0


def test_wareki_dates_are_accepted(feed_file):
    report = run(
        feed_file([person(生年月日="昭和60年4月1日", 異動日="R6.4.1", 届出日="令和6年4月1日")])
    )
    assert report.ok, messages(report)
    assert services.get_resident("1000000001").birth_date == date(1985, 4, 1)


def test_unknown_codes_are_each_reported(feed_file):
    report = run(feed_file([person(性別="3", 住民状態="9")]))
    assert messages(report) == [
        "2行目 性別: 「3」は定義されていないコードです（1 男、2 女）",
        "2行目 住民状態: 「9」は定義されていないコードです（1 住民、2 転出、3 死亡、4 住登外）",
    ]


def test_unknown_change_code_lists_the_valid_ones(feed_file):
    report = run(feed_file([person(), person(宛名番号="1000000002", 異動区分="99")]))
    assert messages(report)[0] == (
        "3行目 異動区分: 「99」は定義されていないコードです"
        "（00、10、11、20、21、30、31、32、40 のいずれか）"
    )


def test_duplicate_atena_no_in_a_full_file_points_at_the_first_row(feed_file):
    report = run(feed_file([person(), person(氏名="別人　太郎")]))
    assert messages(report) == [
        "3行目 宛名番号: 「1000000001」がファイル内で重複しています（2行目と同じ）"
    ]
    assert versions() == 0


def test_change_for_unknown_person_is_rejected(feed_file):
    run(feed_file([person()]))
    report = run(
        feed_file(
            [person(異動区分="31", 宛名番号="1000000099", 異動日="2024-05-01", 届出日="2024-05-01")]
        )
    )
    assert messages(report) == [
        "2行目 宛名番号: 「1000000099」は住民記録にありません（転入・出生以外の異動は、登録済みの方の分だけ取り込めます）"
    ]
    assert versions() == 1


def test_errors_never_echo_personal_values(feed_file):
    report = run(feed_file([person(氏名カナ="ヤマダ1タロウ")]))
    assert messages(report) == ["2行目 氏名カナ: カタカナと空白以外の文字が含まれています"]
    assert "ヤマダ" not in messages(report)[0]


def test_one_bad_row_writes_nothing_and_every_error_is_listed(feed_file):
    rows = [person(宛名番号=f"10000000{i:02d}") for i in range(10)]
    rows[3]["生年月日"] = "1985-13-01"
    rows[7]["性別"] = "x"
    report = run(feed_file(rows))
    assert [e.row for e in report.errors] == [5, 9]
    assert versions() == 0
    assert FeedImport.objects.count() == 0


def test_header_mismatch_names_the_first_wrong_column(feed_file):
    header = list(person().keys())
    header[2] = "受付日"
    report = run(feed_file([person()], header=header))
    assert messages(report) == [
        "1行目: 見出し行が住民記録ファイルの仕様と違います（3列目は「届出日」が必要ですが「受付日」です）"
    ]


def test_future_dates_are_rejected(feed_file):
    report = run(feed_file([person(異動日="2026-11-27")]))
    assert messages(report) == ["2行目 異動日: 「2026-11-27」は未来の日付です"]


def test_diff_applies_changes_in_effective_date_order(feed_file):
    run(feed_file([person()]))
    # Written out of order: the address change of June comes before the May one in the file.
    june = person(
        異動区分="31", 異動日="2024-06-10", 届出日="2024-06-12", 住所="広島県呉市広本町1-2-3"
    )
    may = person(
        異動区分="31", 異動日="2024-05-01", 届出日="2024-05-02", 住所="広島県呉市阿賀中央5-1-1"
    )
    report = run(feed_file([june, may]))
    assert report.ok, messages(report)
    assert report.changed == 2
    hist = services.history("1000000001")
    assert [(h.valid_from, h.valid_to, h.address) for h in hist] == [
        (date(2024, 6, 10), None, "広島県呉市広本町1-2-3"),
        (date(2024, 5, 1), date(2024, 6, 10), "広島県呉市阿賀中央5-1-1"),
        (date(2024, 4, 1), date(2024, 5, 1), "広島県呉市中央四丁目1番6号"),
    ]


def test_register_as_of_a_date_is_the_state_on_that_day(feed_file):
    run(
        feed_file(
            [person(), person(宛名番号="1000000002", 氏名="鈴木　一", 氏名カナ="スズキ　ハジメ")]
        )
    )
    run(feed_file([
        person(異動区分="20", 異動日="2024-09-30", 届出日="2024-09-30", 住民状態="2"),
        person(異動区分="11", 宛名番号="1000000003", 異動日="2024-10-05", 届出日="2024-10-10",
               生年月日="2024-10-05", 氏名="山田　三郎", 氏名カナ="ヤマダ　サブロウ", 続柄="子"),
    ]))  # fmt: skip

    def on(d):
        return sorted(r["atena_no"] for r in services.register_as_of(d))

    assert on(date(2024, 9, 29)) == ["1000000001", "1000000002"]
    assert on(date(2024, 9, 30)) == ["1000000002"]
    assert on(date(2024, 10, 5)) == ["1000000002", "1000000003"]
    assert on(date(2024, 3, 31)) == []


def test_move_in_of_a_current_resident_is_rejected(feed_file):
    run(feed_file([person()]))
    report = run(feed_file([person(異動区分="10", 異動日="2024-05-01", 届出日="2024-05-01")]))
    assert messages(report) == [
        "2行目 宛名番号: 「1000000001」は既に住民として登録されています（転入は取り込めません）"
    ]


def test_re_entry_after_move_out_is_allowed(feed_file):
    run(feed_file([person()]))
    out = person(異動区分="20", 異動日="2024-05-01", 届出日="2024-05-01", 住民状態="2")
    back = person(異動区分="10", 異動日="2025-01-10", 届出日="2025-01-10")
    report = run(feed_file([out, back]))
    assert report.ok, messages(report)
    assert services.get_resident("1000000001").status == "resident"


def test_birth_must_be_on_the_birth_date(feed_file):
    run(feed_file([person()]))
    report = run(
        feed_file(
            [
                person(
                    異動区分="11",
                    宛名番号="1000000005",
                    異動日="2024-06-02",
                    届出日="2024-06-02",
                    生年月日="2024-06-01",
                )
            ]
        )
    )
    assert messages(report) == ["2行目 異動日: 出生の異動日は生年月日と同じでなければなりません"]


def test_change_status_must_match_change_kind(feed_file):
    run(feed_file([person()]))
    report = run(feed_file([person(異動区分="21", 異動日="2024-06-02", 届出日="2024-06-02")]))
    assert messages(report) == ["2行目 住民状態: 死亡の行の住民状態は「死亡」でなければなりません"]


def test_same_change_resent_in_another_file_is_unchanged(feed_file):
    run(feed_file([person()]))
    change = person(
        異動区分="30",
        異動日="2024-07-01",
        届出日="2024-07-01",
        氏名="佐藤　太郎",
        氏名カナ="サトウ　タロウ",
    )
    first = run(feed_file([change]))
    again = run(
        feed_file(
            [
                change,
                person(
                    宛名番号="1000000001",
                    異動区分="31",
                    異動日="2024-08-01",
                    届出日="2024-08-01",
                    氏名="佐藤　太郎",
                    氏名カナ="サトウ　タロウ",
                    住所="広島県呉市焼山中央1-1",
                ),
            ]
        )
    )
    assert first.changed == 1
    assert (again.unchanged, again.changed) == (1, 1)
    assert len(services.history("1000000001")) == 3


def test_full_load_over_existing_register_writes_only_differences(feed_file):
    run(
        feed_file(
            [person(), person(宛名番号="1000000002", 氏名カナ="ヤマダ　ハナコ", 氏名="山田　花子")]
        )
    )
    report = run(feed_file([
        person(異動日="2025-04-01", 届出日="2025-04-01"),
        person(宛名番号="1000000003", 異動日="2025-04-01", 届出日="2025-04-01", 氏名="新人　一",
               氏名カナ="シンジン　ハジメ"),
    ]))  # fmt: skip
    assert report.ok, messages(report)
    assert (report.inserted, report.changed, report.unchanged, report.missing_from_full) == (
        1,
        0,
        1,
        1,
    )
    assert "全件ファイルに載っていない人 1 人（削除はしていません）" in report.summary()


def test_fiscal_categories_are_upserted(feed_file, category_file):
    run(feed_file([person()]))
    first = run(category_file([["2025", "1000000001", "1", "2"]]))
    assert first.ok, messages(first)
    second = run(
        category_file([["2025", "1000000001", "2", "2"], ["2026", "1000000001", "2", "3"]])
    )
    assert (second.inserted, second.changed) == (1, 1)
    assert services.fiscal_categories("1000000001") == [
        {"fiscal_year": 2026, "insurance_category": "後期高齢", "tax_category": "生活保護"},
        {"fiscal_year": 2025, "insurance_category": "後期高齢", "tax_category": "非課税"},
    ]
    assert FiscalCategory.objects.count() == 2


def test_fiscal_category_for_unknown_person_is_rejected(category_file):
    report = run(category_file([["2025", "1000000001", "1", "1"]]))
    assert messages(report) == ["2行目 宛名番号: 「1000000001」は住民記録にありません"]


def test_file_that_is_neither_utf8_nor_cp932_reports_the_row(feed_file, tmp_path):
    path = feed_file([person()])
    data = path.read_bytes() + b"\x80\x80\xff,\r\n"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(data)
    report = run(bad)
    assert [str(e) for e in report.errors] == [
        "3行目: 文字コードを判別できません（UTF-8 でも CP932 でも読めない文字があります）。"
        "UTF-8 または CP932 で保存し直してください"
    ]
    assert versions() == 0


def test_large_full_load_rebuilds_indexes_and_searches_work(feed_file, monkeypatch):
    from kenshin.residents import actions

    monkeypatch.setattr(actions, "REBUILD_INDEXES_ABOVE_BYTES", 0)
    rows = [
        person(宛名番号=f"1{i:09d}", 氏名カナ=f"ヤマダ　{'タロウ' if i % 2 else 'ハナコ'}")
        for i in range(200)
    ]
    report = run(feed_file(rows))
    assert report.ok and report.inserted == 200
    found = services.search_residents(kana="ヤマダ　ハ", birth_date="1985-04-01")
    assert len(found) == 50  # capped at the page size
    assert all(r.name_kana == "ヤマダ　ハナコ" for r in found)


def test_feed_provenance_is_complete(feed_file, category_file):
    """feed has no database constraint (bulk-load cost): the application keeps the invariant."""
    run(feed_file([person()]))
    run(
        feed_file(
            [
                person(
                    異動区分="31",
                    異動日="2024-05-01",
                    届出日="2024-05-01",
                    住所="広島県呉市広本町1-1",
                )
            ]
        )
    )
    run(category_file([["2025", "1000000001", "1", "1"]]))
    feeds = FeedImport.objects.values("pk")
    assert ResidentVersion.objects.count() == 2
    assert not ResidentVersion.objects.exclude(feed_id__in=feeds).exists()
    assert not FiscalCategory.objects.exclude(feed_id__in=feeds).exists()


def test_header_only_diff_file_is_a_day_without_changes(feed_file):
    report = run(feed_file([]))
    assert report.ok and report.empty
    assert (report.kind, report.rows) == ("resident_diff", 0)
    assert "データ行がありません" in report.summary()
    again = run(feed_file([]))  # the next quiet day sends the same bytes
    assert again.ok and again.empty and not again.already_imported
    assert FeedImport.objects.count() == 0


def test_late_change_under_a_later_version_is_refused(feed_file):
    """A 転出 dated before an already registered 住所変更 would leave the person 住民."""
    run(feed_file([person()]))
    run(
        feed_file(
            [
                person(
                    異動区分="31",
                    異動日="2024-08-01",
                    届出日="2024-08-01",
                    住所="広島県呉市広本町1-1",
                )
            ]
        )
    )
    late = person(
        異動区分="20",
        異動日="2024-06-01",
        届出日="2024-08-05",
        住所="広島県呉市広本町1-1",
        住民状態="2",
    )
    report = run(feed_file([late]))
    assert messages(report) == [
        "2行目 異動日: この方には2024-08-01付けの異動が既に登録されています。"
        "それより前の日付の異動は取り込めません（住基から、2024-08-01以降の日付の職権修正として送ってください）"
    ]
    assert services.get_resident("1000000001").status == "resident"


def test_dead_person_cannot_come_back_by_address_change(feed_file):
    run(feed_file([person()]))
    run(feed_file([person(異動区分="21", 異動日="2024-05-01", 届出日="2024-05-02", 住民状態="3")]))
    report = run(
        feed_file(
            [
                person(
                    異動区分="31",
                    異動日="2024-06-01",
                    届出日="2024-06-01",
                    住所="広島県呉市広本町1-1",
                )
            ]
        )
    )
    assert messages(report) == [
        "2行目 宛名番号: 「1000000001」は「死亡」の方には住所変更の異動を取り込めません"
    ]
    assert services.get_resident("1000000001").status == "deceased"


def test_same_day_changes_apply_in_file_order(feed_file):
    """Marriage: 氏名変更 then 住所変更 on the same day, in one file."""
    run(feed_file([person(性別="2", 氏名="山田　花子", 氏名カナ="ヤマダ　ハナコ")]))
    rename = person(
        異動区分="30",
        異動日="2024-06-01",
        届出日="2024-06-01",
        性別="2",
        氏名="佐藤　花子",
        氏名カナ="サトウ　ハナコ",
    )
    move = person(
        異動区分="31",
        異動日="2024-06-01",
        届出日="2024-06-01",
        性別="2",
        氏名="佐藤　花子",
        氏名カナ="サトウ　ハナコ",
        住所="広島県呉市焼山中央1-1",
    )
    report = run(feed_file([rename, move]))
    assert report.ok, messages(report)
    current = services.get_resident("1000000001")
    assert (current.name, current.address, current.change_kind) == (
        "佐藤　花子",
        "広島県呉市焼山中央1-1",
        "address_change",
    )


def test_gaiji_private_use_characters_are_refused(feed_file):
    report = run(feed_file([person(氏名="山田　\ue000郎")]))
    assert messages(report) == [
        "2行目 氏名: 外字（私用領域の文字）が含まれています。住基側で標準の文字に置き換えてください"
    ]


def test_overlong_household_head_name_is_a_row_error_not_a_crash(feed_file):
    report = run(feed_file([person(世帯主氏名="山" * 101)]))
    assert messages(report) == ["2行目 世帯主氏名: 100文字を超えています"]


def test_name_key_is_capped_when_nfkc_expands(feed_file):
    report = run(feed_file([person(氏名="㍿" * 40)]))  # each ㍿ becomes 株式会社 in the key
    assert report.ok, messages(report)
    assert services.get_resident("1000000001").name == "㍿" * 40


def test_full_width_codes_are_accepted(feed_file):
    report = run(feed_file([person(異動区分="００", 性別="２", 住民状態="１")]))
    assert report.ok, messages(report)
    assert services.get_resident("1000000001").sex == 2


def test_bom_file_with_invalid_bytes_names_the_line(feed_file, tmp_path):
    good = feed_file([person(宛名番号=f"10000000{i:02d}") for i in range(5)], encoding="utf-8-sig")
    lines = good.read_bytes().split(b"\r\n")
    lines[4] = lines[4].replace("山田".encode(), b"\x82\xa0")  # a CP932 byte pair inside UTF-8
    bad = tmp_path / "bom-bad.csv"
    bad.write_bytes(b"\r\n".join(lines))
    report = run(bad)
    assert [e.row for e in report.errors] == [5]
    assert versions() == 0


def test_category_file_with_a_typo_is_checked_against_the_category_layout(feed_file):
    report = run(
        feed_file(
            [["2025", "1000000001", "1", "1"]], header=("年", "宛名番号", "保険区分", "課税区分")
        )
    )
    assert messages(report) == [
        "1行目: 見出し行が年度別区分ファイルの仕様と違います（1列目は「年度」が必要ですが「年」です）"
    ]


def test_register_counts_follow_every_import(feed_file):
    run(feed_file([person(), person(宛名番号="1000000002", 住民状態="4")]))
    assert services.count_current() == {"住民": 1, "住登外": 1}
    run(feed_file([person(異動区分="20", 異動日="2024-05-01", 届出日="2024-05-01", 住民状態="2")]))
    assert services.count_current() == {"転出": 1, "住登外": 1}


def test_backslash_in_text_survives_the_bulk_path(feed_file, monkeypatch):
    """On PostgreSQL the first full load writes COPY text itself: a backslash must be escaped."""
    from kenshin.residents import actions

    monkeypatch.setattr(actions, "REBUILD_INDEXES_ABOVE_BYTES", 0)
    report = run(feed_file([person(住所="広島県呉市中央＼1-1", 方書="A\\B棟")]))
    assert report.ok, messages(report)
    stored = services.get_resident("1000000001")
    assert (stored.address, stored.address_annex) == ("広島県呉市中央\\1-1", "A\\B棟")


def test_error_cap_reached_after_batches_were_written_leaves_nothing(feed_file, monkeypatch):
    """Batches already streamed (COPY on PostgreSQL) are rolled back with the rest."""
    from kenshin.residents import actions

    monkeypatch.setattr(actions, "BATCH", 2)
    monkeypatch.setattr(actions, "MAX_ERRORS", 3)
    monkeypatch.setattr(actions, "REBUILD_INDEXES_ABOVE_BYTES", 0)
    good = [person(宛名番号=f"10000000{i:02d}") for i in range(5)]
    bad = [person(宛名番号=f"20000000{i:02d}", 性別="x") for i in range(3)]
    report = run(feed_file(good + bad))
    assert [e.row for e in report.errors] == [7, 8, 9]
    assert versions() == 0
    assert FeedImport.objects.count() == 0
    again = run(feed_file(good))  # the register is usable afterwards (indexes back, no lock)
    assert again.ok and again.inserted == 5
    assert len(services.search_residents(kana="ヤマダ", birth_date="1985-04-01")) == 5


def test_overlong_csv_field_is_a_row_error_not_a_crash(feed_file):
    report = run(feed_file([person(), person(宛名番号="1000000002", 方書="棟" * 200_000)]))
    assert messages(report) == [
        '3行目: 項目が長すぎるか、引用符（"）の対応が取れていません。区切りや引用符の誤りがないか確認してください'
    ]
    assert versions() == 0


def test_database_error_during_bulk_write_names_no_value(feed_file, monkeypatch):
    """A value that slips past validation must not reach the report or a traceback."""
    from kenshin.residents import actions, rules

    real = rules.parse_resident_row

    def sneak(cells, row, today, errors):
        rec = real(cells, row, today, errors)
        return (*rec[:8], -7, *rec[9:])  # a sex code the table's CHECK constraint refuses

    monkeypatch.setattr(actions.rules, "parse_resident_row", sneak)
    monkeypatch.setattr(actions, "REBUILD_INDEXES_ABOVE_BYTES", 0)
    # The linkage server would refuse the sex code first: stand it aside for this test.
    monkeypatch.setattr(
        actions.Linker, "register", lambda self, atenas: {a.atena_no: "1" * 15 for a in atenas}
    )
    report = run(feed_file([person()]))
    assert len(report.errors) == 1
    text = str(report.errors[0])
    assert text.startswith("データベースに書き込めませんでした（")
    assert "山田" not in text and "1000000001" not in text and "-7" not in text
    assert versions() == 0
    assert FeedImport.objects.count() == 0


def test_import_is_recorded_in_the_audit_log_and_a_refused_file_too(tmp_path, feed_file):
    from kenshin.audit.models import AuditEvent

    good = feed_file([person()])
    assert import_feed_file(good, actor="住基連携").ok
    event = AuditEvent.objects.filter(event="import").latest("seq")
    assert (event.username, event.result, event.subject_kind) == (
        "住基連携",
        "success",
        "feed_import",
    )
    assert '"inserted":1' in event.detail
    bad = feed_file([person(生年月日="1985-02-30")])
    assert not import_feed_file(bad, actor="住基連携").ok
    refused = AuditEvent.objects.filter(event="import").latest("seq")
    assert refused.result == "failure" and refused.subject_kind == "feed_file"
    assert "1985" not in refused.detail
