"""Manual entry of paper 受診票 in batches (受診票の入力), single or double.

Why batches: paper forms arrive in stacks — one clinic, one month, one kind of exam — and the
stack is the unit staff count, check and file. The batch fixes the method, the institution and
the 方式, so each form needs only the person, the date and the result.

Single entry records each form's exam as it is saved (through ``exam_actions.record_exam``, as
every other way in does). Double entry (二重入力): two different members of staff key the same
stack; each form is checked when saved but nothing is recorded until the two passes agree on
every form, then the whole batch is recorded in one transaction. The differences are listed by
form and item so the paper can be looked at again.

Finding the person: by 受診券番号 (check digit first, so a slip of a finger is refused) or the
クーポン番号 of that year's roster, or by kana and 生年月日. Whoever is shown is recorded in the
audit log under the purpose 結果登録, like any other search.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import transaction

from kenshin.core import audit, clock
from kenshin.core.fiscal import fiscal_year_of
from kenshin.core.purposes import Purpose
from kenshin.core.text import normalize_digits
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import exam_actions, vouchers
from kenshin.screening.exam_actions import ExamInput, ExamRecordError
from kenshin.screening.models import EntryBatch, EntryItem, RosterEntry, Setting
from kenshin.screening.permissions import ENTER_RESULT

# What the two passes must agree on, with the label the differences list shows.
COMPARED = (
    ("atena_no", "受診者（宛名番号）"),
    ("exam_date", "受診日"),
    ("voucher_no", "受診券番号"),
    ("coupon_no", "クーポン番号"),
    ("place", "検診場所"),
    ("smoking_index", "喫煙指数"),
    ("hpv_follow_up", "追跡検査"),
    ("complication", "偶発症"),
)


class EntryError(ExamRecordError):
    """A batch action was refused (the message says why, in Japanese)."""


@dataclass(frozen=True)
class Candidate:
    """A person a search found, with what staff compare against the paper form."""

    atena_no: str
    name: str
    name_kana: str
    sex_label: str
    birth_date: date
    address: str
    status_label: str
    found_by: str  # 受診券番号 / クーポン番号 / カナと生年月日
    note: str = ""  # e.g. the voucher is for another programme


def candidate_of(record: Any, found_by: str, note: str = "") -> Candidate:
    """A register record (residents' ResidentRecord) as the confirmation card shows it."""
    r = record
    return Candidate(r.atena_no, r.name, r.name_kana, r.sex_label, r.birth_date,
                     f"{r.address}{r.address_annex}", r.status_label, found_by, note)  # fmt: skip


def _name(actor: Any) -> str:
    return audit.actor_of(actor).username


def create_batch(
    actor: Any, *, label: str, method: str, institution_code: str, setting: str,
    double_entry: bool, billing_month: date | None = None,
) -> EntryBatch:  # fmt: skip
    """Start a batch; the method must be one the current fiscal year offers in that 方式."""
    label = (label or "").strip()
    if not label or len(label) > 100:
        raise EntryError("束の名前を 100 文字以内で入れてください")
    if not (len(institution_code) == 10 and institution_code.isdigit()):
        raise EntryError("医療機関コードは 10 桁の数字です")
    fy = fiscal_year_of(clock.today())
    try:
        found = programs.catalogue(fy).methods_by_code.get(method)
    except programs.CatalogueMissing:
        found = None
    if found is None or programs.results_of(method) is None:
        raise EntryError(f"検査方法 {method} は{fy}年度に入力できません")
    if setting not in found.settings:
        raise EntryError(f"{found.name}は{Setting(setting).label}で実施していません")
    with transaction.atomic():
        batch = EntryBatch.objects.create(
            municipality_code=settings.MUNICIPALITY_CODE, label=label, method=method,
            institution_code=institution_code, setting=setting, double_entry=double_entry,
            billing_month=billing_month, created_by=_name(actor), created_at=clock.now(),
        )  # fmt: skip
        audit.record(audit.Event.CREATE, actor, audit.Subject("entry_batch", str(batch.pk)),
                     function=ENTER_RESULT, method=method, double_entry=double_entry)  # fmt: skip
    return batch


def find_people(
    actor: Any, *, number: str = "", kana: str = "", birth_date: date | None = None,
    exam_date: date | None = None, programme: str = "", purpose: str = Purpose.RESULT_ENTRY,
) -> list[Candidate]:  # fmt: skip
    """The people a paper form may belong to: by 受診券・クーポン番号, or by kana + 生年月日."""
    found: list[tuple[str, str, str]] = []  # (atena_no, found_by, note)
    number = (number or "").strip()
    if number:
        digits = "".join(c for c in number if c.isdigit() or c in "０１２３４５６７８９")
        voucher = vouchers.find_voucher(digits)
        if voucher is not None:
            note = ""
            if voucher.programme and programme and voucher.programme != programme:
                note = "この受診券は別の検診のものです"
            if exam_date is not None and fiscal_year_of(exam_date) != voucher.fiscal_year:
                note = f"この受診券は{voucher.fiscal_year}年度のものです"
            found.append((voucher.atena_no, "受診券番号", note))
        else:
            # A coupon is valid to 31 March; a March form is often keyed in April, so the
            # previous fiscal year's coupons are looked up too.
            fy = fiscal_year_of(exam_date or clock.today())
            coupon = (
                RosterEntry.objects.filter(
                    municipality_code=settings.MUNICIPALITY_CODE, fiscal_year__in=(fy, fy - 1),
                    coupon_no__in={number, normalize_digits(number).upper()},
                ).order_by("-fiscal_year").values_list("atena_no", flat=True).first()
            )  # fmt: skip
            if coupon is not None:
                found.append((coupon, "クーポン番号", ""))
            elif vouchers.is_well_formed(digits) or len(digits) < 10:
                raise EntryError("この番号の受診券・クーポン券はありません")
            else:
                raise EntryError(
                    "受診券番号の誤りです（検査数字が合いません）。番号を見直してください"
                )
    elif kana and birth_date is not None:
        try:
            records = residents.search_residents(kana=kana, birth_date=birth_date, limit=20)
        except residents.SearchRejected as exc:
            raise EntryError(str(exc)) from None
        found = [(r.atena_no, "カナと生年月日", "") for r in records]
    else:
        raise EntryError("受診券・クーポン番号、またはカナと生年月日を入れてください")
    people = []
    for atena_no, how, note in found:
        r = residents.get_resident(atena_no)
        if r is None:
            continue
        people.append(candidate_of(r, how, note))
    with transaction.atomic():
        audit.record(audit.Event.SEARCH, actor, None, purpose, function=ENTER_RESULT,
                     by="number" if number else "kana_birth", shown=len(people))  # fmt: skip
        for p in people:
            audit.record(audit.Event.SEARCH, actor, audit.Subject.resident(p.atena_no), purpose,
                         function=ENTER_RESULT)  # fmt: skip
    return people


def _pass_for(batch: EntryBatch, who: str) -> int:
    """Which pass this member of staff keys: the first to key a batch keys pass 1; in a
    double entry, anyone else keys pass 2, and the pass-1 keyer never does."""
    if not batch.double_entry:
        return 1
    first = batch.items.filter(pass_no=1).values_list("keyed_by", flat=True).first()
    if first is None or first == who:
        return 1
    second = batch.items.filter(pass_no=2).values_list("keyed_by", flat=True).first()
    if second is not None and second != who:
        raise EntryError(
            f"この束は {first} さんと {second} さんが入力しています（3 人目は入力できません）"
        )
    return 2


def _open_batch(batch_id: int) -> EntryBatch:
    # Locked for the transaction: a double click on 登録 or two staff saving the first form
    # at once are taken one after the other, so a batch is recorded once and pass 1 has one
    # keyer.
    batch = (
        EntryBatch.objects.select_for_update()
        .filter(pk=batch_id, municipality_code=settings.MUNICIPALITY_CODE)
        .first()
    )
    if batch is None:
        raise EntryError("この束はありません")
    if batch.status != EntryBatch.Status.OPEN:
        raise EntryError("この束は登録済みです")
    return batch


@dataclass(frozen=True)
class Keyed:
    item: EntryItem
    pass_no: int
    exam_recorded: bool
    opens_case: bool


def key_form(actor: Any, batch_id: int, seq: int, data: ExamInput) -> Keyed:
    """Save one keyed form: recorded at once (single entry) or kept for the comparison."""
    if seq < 1:
        raise EntryError("通し番号は 1 以上です")
    with transaction.atomic():
        batch = _open_batch(batch_id)
        if (data.method, data.institution_code, data.setting, data.billing_month) != (
            batch.method, batch.institution_code, batch.setting, batch.billing_month,
        ):  # fmt: skip
            raise EntryError("束の検査方法・医療機関・方式と違います")
        who = _name(actor)
        pass_no = _pass_for(batch, who)
        existing = batch.items.filter(pass_no=pass_no, seq=seq).first()
        if existing is not None and not batch.double_entry:
            raise EntryError(f"通し番号 {seq} は入力済みです（記録の訂正は受診台帳から）")
        checked = exam_actions.check_exam(data)
        exam = None
        if not batch.double_entry:
            exam, _ = exam_actions.record_exam(actor, data)
        if existing is not None:
            existing.delete()  # a double-entry pass re-keys a form by keying it again
        item = EntryItem.objects.create(
            batch=batch, pass_no=pass_no, seq=seq, atena_no=data.atena_no,
            exam_date=data.exam_date, voucher_no=data.voucher_no, coupon_no=data.coupon_no,
            place=data.place, results=dict(data.results), smoking_index=data.smoking_index,
            hpv_follow_up=data.hpv_follow_up, complication=data.complication,
            keyed_by=who, keyed_at=clock.now(), exam=exam,
        )  # fmt: skip
    return Keyed(item, pass_no, exam is not None, checked.opens_case)


def next_seq(batch: EntryBatch, pass_no: int) -> int:
    last = (
        batch.items.filter(pass_no=pass_no).order_by("-seq").values_list("seq", flat=True).first()
    )
    return (last or 0) + 1


def pass_of(batch: EntryBatch, actor: Any) -> int | None:
    """The pass this member of staff keys in the batch, or None when they may not key it."""
    try:
        return _pass_for(batch, _name(actor))
    except EntryError:
        return None


@dataclass(frozen=True)
class Difference:
    seq: int
    item: str  # the label of what differs
    first: str
    second: str


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "（なし）"
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    return str(value)


def differences(batch: EntryBatch) -> list[Difference]:
    """Every disagreement of the two passes, form by form (a form keyed once is one too)."""
    passes: dict[int, dict[int, EntryItem]] = {1: {}, 2: {}}
    for item in batch.items.all():
        passes[item.pass_no][item.seq] = item
    spec = programs.results_of(batch.method)
    item_names = {i.code: i.name for i in spec.items} if spec else {}
    value_labels = {
        (i.code, v.code): v.label for i in (spec.items if spec else ()) for v in i.vocabulary.values
    }

    def value_label(code: str, value: str | None) -> str:
        return _shown(value_labels.get((code, value or ""), value))

    out: list[Difference] = []
    for seq in sorted(set(passes[1]) | set(passes[2])):
        a, b = passes[1].get(seq), passes[2].get(seq)
        if a is None or b is None:
            out.append(Difference(seq, "受診票", "入力済み" if a else "未入力",
                                  "入力済み" if b else "未入力"))  # fmt: skip
            continue
        for field, label in COMPARED:
            if getattr(a, field) != getattr(b, field):
                out.append(Difference(seq, label, _shown(getattr(a, field)),
                                      _shown(getattr(b, field))))  # fmt: skip
        for code in sorted(set(a.results) | set(b.results)):
            if a.results.get(code, "") != b.results.get(code, ""):
                first = value_label(code, a.results.get(code))
                second = value_label(code, b.results.get(code))
                out.append(Difference(seq, item_names.get(code, code), first, second))
    return out


def commit_batch(actor: Any, batch_id: int) -> int:
    """Record a double-entry batch whose passes agree; return how many exams were recorded."""
    with transaction.atomic():
        batch = _open_batch(batch_id)
        if not batch.double_entry:
            raise EntryError("一人入力の束は入力のたびに登録されています")
        items = list(batch.items.order_by("seq", "pass_no"))
        keyers = {i.pass_no: i.keyed_by for i in items}
        if 1 not in keyers or 2 not in keyers:
            raise EntryError("二人目の入力がまだです")
        if differences(batch):
            raise EntryError(
                "1 回目と 2 回目の入力に違いがあります。受診票を見直して入力し直してください"
            )
        first = [i for i in items if i.pass_no == 1]
        second = {i.seq: i for i in items if i.pass_no == 2}
        keyers_1 = {i.keyed_by for i in first}
        keyers_2 = {i.keyed_by for i in second.values()}
        if keyers_1 & keyers_2:
            raise EntryError("1 回目と 2 回目は別の職員が入力します（同じ職員の入力があります）")
        for item in first:
            try:
                exam = _record_item(actor, batch, item)
            except ExamRecordError as exc:
                raise EntryError(f"No.{item.seq}: {exc}") from exc
            EntryItem.objects.filter(pk__in=[item.pk, second[item.seq].pk]).update(exam=exam)
        batch.status = EntryBatch.Status.COMMITTED
        batch.committed_by, batch.committed_at = _name(actor), clock.now()
        batch.save(update_fields=["status", "committed_by", "committed_at"])
        audit.record(audit.Event.UPDATE, actor, audit.Subject("entry_batch", str(batch.pk)),
                     function=ENTER_RESULT, action="commit", rows=len(first))  # fmt: skip
    return len(first)


def _record_item(actor: Any, batch: EntryBatch, item: EntryItem) -> Any:
    exam, _ = exam_actions.record_exam(actor, ExamInput(
        atena_no=item.atena_no, method=batch.method, exam_date=item.exam_date,
        setting=batch.setting, institution_code=batch.institution_code,
        results=item.results, voucher_no=item.voucher_no, coupon_no=item.coupon_no,
        place=item.place, smoking_index=item.smoking_index,
        hpv_follow_up=item.hpv_follow_up, complication=item.complication,
        billing_month=batch.billing_month,
    ))  # fmt: skip
    return exam


def record_listed(actor: Any, atena_nos: list[str], purpose: str = Purpose.RESULT_ENTRY) -> None:
    """Record each person a batch page lists (the forms keyed), as any list of people is."""
    if not atena_nos:
        return
    with transaction.atomic():
        for atena_no in dict.fromkeys(atena_nos):
            audit.record(audit.Event.SEARCH, actor, audit.Subject.resident(atena_no), purpose,
                         function=ENTER_RESULT, listed="entry_batch")  # fmt: skip
