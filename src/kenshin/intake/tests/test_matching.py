"""Matching a row to a resident (IMP-05): the adversarial set.

Same-name same-birth-date twins, swapped birth dates, a voucher of someone else or used at
another clinic, kana variants, 旧字体 names: every mismatch waits in quarantine, and no result
is ever written to the wrong resident. First the pure rule, table by table; then a whole file
through the pipeline, checking where every committed exam landed.
"""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.core import clock
from kenshin.intake import actions, rules
from kenshin.intake.layout import SourceRow
from kenshin.intake.models import CommitMode, RowStatus
from kenshin.intake.pipeline import staged_rows
from kenshin.intake.tests.helpers import INSTITUTION, csv_bytes, exam_row, staged
from kenshin.programs import services as programs
from kenshin.screening import services as screening
from kenshin.screening.models import Exam
from kenshin.screening.tests.town import Person, import_town
from kenshin.screening.vouchers import vouchers_of

A = rules.PersonInfo("1000000101", date(1970, 5, 5), 1, "ヤマダ　タロウ")
B = rules.PersonInfo("1000000102", date(1970, 5, 5), 1, "ヤマダ　タロウ")  # 同姓同名, same day
C = rules.PersonInfo("1000000103", date(1981, 2, 3), 2, "ヴィオラ　ショウコ")
PEOPLE = {p.atena_no: p for p in (A, B, C)}
VA = rules.VoucherInfo("2500000011", A.atena_no, 2025, "")
VC = rules.VoucherInfo("2500000029", C.atena_no, 2025, "")
FOBT = rules.MethodRule(
    code="fecal_occult_blood", name="便潜血検査", programme="colorectal", programme_name="大腸がん検診",
    sex="any", min_age=40, settings=("individual",), items=("day1", "day2"),
    required=frozenset({"day1", "day2"}), values={}, triage=False, seiken_methods=frozenset(),
    seiken_results=frozenset(),
)  # fmt: skip
MMG = rules.MethodRule(
    code="mammography", name="マンモグラフィ", programme="breast", programme_name="乳がん検診",
    sex="female", min_age=40, settings=("individual",), items=("category",),
    required=frozenset({"category"}), values={}, triage=False, seiken_methods=frozenset(),
    seiken_results=frozenset(),
)  # fmt: skip


def row(*, voucher="", atena="", birth: date | None = None, sex=1, kana="", method=FOBT,
        institution=INSTITUTION) -> rules.CheckedRow:  # fmt: skip
    cells = {"birth_date": birth.isoformat() if birth else "", "sex": str(sex), "name_kana": kana}
    return rules.CheckedRow(
        SourceRow(2, cells), voucher_no=voucher, atena_no=atena, name_kana=kana, birth_date=birth,
        sex=sex, exam_date=date(2025, 10, 1), institution_code=institution, method=method,
    )  # fmt: skip


CASES = [
    # (what, row, voucher found, sender, matched atena_no or None, reason fragment)
    ("voucher + birth + sex agree", row(voucher=VA.voucher_no, birth=A.birth_date),
     VA, "", A.atena_no, ""),
    ("twin: A's voucher, same name and day as B → A, never B",
     row(voucher=VA.voucher_no, birth=A.birth_date, kana="ヤマダ　タロウ"), VA, "", A.atena_no, ""),
    ("twin: kana + birth + sex only → quarantine", row(birth=A.birth_date, kana="ヤマダ　タロウ"),
     None, "", None, "照合できません"),
    ("twin: A's voucher with B's 宛名番号 → quarantine",
     row(voucher=VA.voucher_no, atena=B.atena_no, birth=A.birth_date), VA, "", None, "別の人"),
    ("swapped birth date", row(voucher=VC.voucher_no, birth=A.birth_date, sex=2), VC, "", None,
     "生年月日"),
    ("day and month swapped", row(voucher=VC.voucher_no, birth=date(1981, 3, 2), sex=2), VC, "",
     None, "生年月日"),
    ("sex disagrees", row(voucher=VA.voucher_no, birth=A.birth_date, sex=2), VA, "", None, "性別"),
    ("voucher never issued", row(voucher="2500000037", birth=A.birth_date), None, "", None,
     "発行されていません"),
    ("voucher of another year", row(voucher=VA.voucher_no, birth=A.birth_date),
     rules.VoucherInfo(VA.voucher_no, A.atena_no, 2024, ""), "", None, "2024年度"),
    ("voucher of another programme", row(voucher=VA.voucher_no, birth=A.birth_date),
     rules.VoucherInfo(VA.voucher_no, A.atena_no, 2025, "gastric"), "", None, "別の検診事業"),
    ("another clinic than the sender", row(voucher=VA.voucher_no, birth=A.birth_date), VA,
     "3410000999", None, "送付元"),
    ("宛名番号 only, agreeing", row(atena=A.atena_no, birth=A.birth_date), None, "", A.atena_no,
     ""),
    ("宛名番号 only, birth date wrong", row(atena=A.atena_no, birth=date(1970, 5, 6)), None, "",
     None, "生年月日"),
    ("宛名番号 unknown", row(atena="1000000999", birth=A.birth_date), None, "", None, "住民記録"),
    ("half-width kana", row(voucher=VA.voucher_no, birth=A.birth_date, kana="ﾔﾏﾀﾞ ﾀﾛｳ"), VA, "",
     A.atena_no, ""),
    ("ヴ written ブ, small ョ written large", row(voucher=VC.voucher_no, birth=C.birth_date, sex=2,
     kana="ブイオラ　シヨウコ"), VC, "", C.atena_no, ""),
    ("another given name", row(voucher=VA.voucher_no, birth=A.birth_date, kana="ヤマダ　ター"), VA,
     "", None, "氏名カナ"),
    ("another person's kana", row(voucher=VA.voucher_no, birth=A.birth_date, kana="スズキ　ハナコ"),
     VA, "", None, "氏名カナ"),
    ("a man in mammography", row(voucher=VA.voucher_no, birth=A.birth_date, method=MMG), VA, "",
     None, "対象ではありません"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "checked", "voucher", "sender", "expected", "reason"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_match_row(what, checked, voucher, sender, expected, reason):
    match = rules.match_row(checked, voucher, PEOPLE, sender_institution=sender)
    assert match.atena_no == expected
    if expected is None:
        assert any(reason in r.message for r in match.reasons), match.reasons
    else:
        assert match.reasons == ()


def test_kana_is_never_enough_to_find_anyone():
    """Whatever the kana says, a row without a hard key is matched to nobody."""
    for kana in ("ヤマダ　タロウ", "ﾔﾏﾀﾞﾀﾛｳ", ""):
        assert rules.match_row(row(birth=A.birth_date, kana=kana), None, PEOPLE).atena_no is None


# ---------------------------------------------------------------------------- the whole file

TWIN_1 = Person("1000000201", 1, date(1970, 5, 5), "山田　太郎", "ヤマダ　タロウ")
TWIN_2 = Person("1000000202", 1, date(1970, 5, 5), "山田　太郎", "ヤマダ　タロウ")
KYUJI = Person(
    "1000000203", 2, date(1975, 9, 9), "髙橋　惠子", "タカハシ　ケイコ"
)  # 旧字体, no 外字
VIOLA = Person("1000000204", 2, date(1981, 2, 3), "ヴィオラ　祥子", "ヴィオラ　ショウコ")
SWAP_1 = Person("1000000205", 1, date(1960, 1, 10), "佐藤　一", "サトウ　ハジメ")
SWAP_2 = Person("1000000206", 1, date(1962, 10, 1), "佐藤　二郎", "サトウ　ジロウ")
CITY = (TWIN_1, TWIN_2, KYUJI, VIOLA, SWAP_1, SWAP_2)


@pytest.mark.django_db
def test_adversarial_file_writes_nothing_to_the_wrong_resident(tmp_path, settings):
    settings.INTAKE_DIR = tmp_path / "intake"
    with clock.frozen(date(2025, 11, 20)):
        programs.load_shipped()
        import_town(tmp_path, people=CITY)
        screening.issue_vouchers("test", 2025, [p.atena_no for p in CITY])
        v = {p.atena_no: vouchers_of(p.atena_no)[0].voucher_no for p in CITY}

        def fobt(p, **extra):
            base = {"voucher_no": v[p.atena_no], "birth_date": p.birth.isoformat(),
                    "sex": str(p.sex), "name_kana": p.kana, "method": "fecal_occult_blood",
                    "day1": "negative", "day2": "negative"}  # fmt: skip
            return exam_row(**{**base, **extra})

        rows = [
            fobt(TWIN_1),  # 2: matched to TWIN_1
            fobt(TWIN_2, exam_date="2025-11-11"),  # 3: matched to TWIN_2
            fobt(TWIN_1, voucher_no="", exam_date="2025-11-12"),  # 4: kana+birth only
            fobt(TWIN_1, atena_no=TWIN_2.atena_no, exam_date="2025-11-13"),  # 5: keys disagree
            fobt(SWAP_1, birth_date=SWAP_2.birth.isoformat()),  # 6: swapped birth dates
            fobt(SWAP_2, birth_date=SWAP_1.birth.isoformat()),  # 7
            fobt(KYUJI, name_kana="ﾀｶﾊｼ ｹｲｺ"),  # 8: 旧字体 name, half-width kana: matched
            fobt(VIOLA, name_kana="ブイオラ　シヨウコ"),  # 9: ヴ/ブ, small ョ: matched
            fobt(VIOLA, name_kana="タカハシ　ケイコ", exam_date="2025-11-14"),  # 10: wrong kana
            fobt(KYUJI, voucher_no=v[VIOLA.atena_no], exam_date="2025-11-15"),  # 11: VIOLA's
        ]  # fmt: skip
        batch = staged(csv_bytes(rows))
        status = {r.row_no: r.status for r in staged_rows(batch)}
        new, held = RowStatus.NEW, RowStatus.QUARANTINED
        assert status == {2: new, 3: new, 4: held, 5: held, 6: held, 7: held, 8: new, 9: new,
                          10: held, 11: held}  # fmt: skip
        # The clinic at another clinic's voucher: TWIN_1's voucher already used elsewhere.
        actions.commit_batch("kakutei", batch.pk, CommitMode.VALID_ONLY)
        elsewhere = staged(csv_bytes([fobt(TWIN_1, institution_code="3410000777",
                                           exam_date="2025-11-16")]))  # fmt: skip
        [again] = staged_rows(elsewhere)
        assert again.status == held and "別の医療機関" in str(again.problems)
    landed = dict(Exam.objects.filter(method="fecal_occult_blood").values_list("voucher_no",
                                                                                 "atena_no"))  # fmt: skip
    # Every exam written is on the person its voucher was issued to: 0 on a wrong resident.
    assert landed == {v[p.atena_no]: p.atena_no for p in (TWIN_1, TWIN_2, KYUJI, VIOLA)}
