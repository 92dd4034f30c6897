"""Every state change of the 番号連携サーバ. Each one writes its LinkageEvent rows in the same
transaction on the ``linkage`` database, so a change and its log entry exist together or not at
all.

Registration (``register_many``) is set-based: a batch of 宛名 costs a fixed number of queries
(existing 宛名番号, known 個人番号 by blind index, five-item matches, who already holds a
個人番号), decisions are taken in memory, and the writes are bulk inserts. That keeps a feed
import of a whole city within minutes, not hours. The batch holds the NumberCounter row lock
from its first statement: registrations are serialised, so two batches can never both issue a
number for the same new person (and the counter only ever counts up — a number retired by a
merge is never issued again).

Decision for one 宛名 (in order):
1. its 宛名番号 is known for this system → "existing": items updated; a 個人番号 given is
   attached if the person holds none; a 個人番号 held by someone else, or a different one than
   the person holds, refuses the whole batch (Conflict, with the row's position, never the value);
2. the 個人番号 given is known → "linked_my_number";
3. the five items match exactly one active person → "linked_five_items" — unless that person
   holds a different 個人番号 than the one given: then a new number and a DuplicateCandidate;
4. several five-item matches → a new number, and a DuplicateCandidate with each;
5. otherwise → "issued".

Merges need two people: the one who asks and the one who approves (MergeRequest). What a merge
moved is recorded, so an unmerge moves exactly that back. Both requests stay as history.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import F, Q

from kenshin.core import clock
from kenshin.core import mynumber as core_mynumber
from kenshin.core.bulk import bulk_insert
from kenshin.linkage import crypto, gateway, mynumber, rules
from kenshin.linkage.contract import (
    AtenaIn,
    Conflict,
    InvalidInput,
    MergeView,
    NotFound,
    Registration,
)
from kenshin.linkage.gateway import Caller
from kenshin.linkage.models import (
    DB,
    Atena,
    BusinessSystem,
    DuplicateBasis,
    DuplicateCandidate,
    MergeKind,
    MergeRequest,
    MergeStatus,
    MyNumber,
    NumberCounter,
    Person,
    SystemCredential,
)

COUNTER = "unified_atena_no"
# Parameters per IN (...) list: far below SQLite's 32,766 and PostgreSQL's 65,535.
IN_CHUNK = 5000
ATENA_NO_MAX = 15
ITEM_FIELDS = ("name", "name_kana", "birth_date", "sex", "address")
# Column order of the bulk inserts (core.bulk: executemany on SQLite, COPY on PostgreSQL).
PERSON_FIELDS = ("id", "municipality_code", "unified_atena_no", "created_at")
MYNUMBER_FIELDS = ("person", "key_id", "ciphertext", "blind_index", "updated_at")
ATENA_FIELDS = (
    "municipality_code",
    "system",
    "atena_no",
    "person",
    *ITEM_FIELDS,
    "match_key",
    "updated_at",
)
SYSTEM_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _in_chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


# --- registration ---------------------------------------------------------------------------------


@dataclass
class _Row:
    """One validated 宛名 of a batch (position is 1-based, for messages)."""

    position: int
    atena: AtenaIn
    atena_no: str
    match_key: str
    number: str | None  # normalised 個人番号, kept only in memory for encryption
    blind: bytes | None


def _validate(atenas: Sequence[AtenaIn], ring: crypto.Keyring) -> list[_Row]:
    """Check every row before anything is read or written; InvalidInput names the row only."""
    rows: list[_Row] = []
    seen: set[str] = set()
    for position, atena in enumerate(atenas, start=1):
        atena_no = (atena.atena_no or "").strip()
        if not atena_no:
            raise InvalidInput(f"{position}件目: 宛名番号がありません")
        if len(atena_no) > ATENA_NO_MAX:
            raise InvalidInput(f"{position}件目: 宛名番号は{ATENA_NO_MAX}文字以内です")
        if atena_no in seen:
            raise InvalidInput(f"{position}件目: 同じ宛名番号が一括登録の中に2回あります")
        seen.add(atena_no)
        for label, value, limit in (
            ("氏名", atena.name, 100),
            ("カナ氏名", atena.name_kana, 100),
            ("住所", atena.address, 200),
        ):
            if len(value or "") > limit:
                raise InvalidInput(f"{position}件目: {label}は{limit}文字以内です")
        try:
            key = rules.five_item_key(
                atena.name, atena.name_kana, atena.birth_date, atena.sex, atena.address
            )
        except InvalidInput as e:
            raise InvalidInput(f"{position}件目: {e}") from None
        number = blind = None
        if atena.my_number is not None and atena.my_number.strip():
            try:
                number = mynumber.normalize(atena.my_number)
            except mynumber.InvalidMyNumber as e:
                raise InvalidInput(f"{position}件目: {e}") from None
            if not core_mynumber.is_valid(number):
                raise InvalidInput(f"{position}件目: 個人番号の検査用数字が正しくありません")
            blind = ring.blind_index(number)
        rows.append(_Row(position, atena, atena_no, key, number, blind))
    return rows


def _counter_base() -> int:
    """Lock the NumberCounter row for this transaction and return the last serial issued.

    The lock also serialises registrations with merges (decide_merge takes it first).
    """
    qs = NumberCounter.objects.using(DB).select_for_update()
    last = qs.filter(name=COUNTER).values_list("last", flat=True).first()
    if last is None:
        # First registration ever: two batches may get here at once. ON CONFLICT DO NOTHING
        # makes the second wait for the first's row instead of failing on the primary key.
        NumberCounter.objects.using(DB).bulk_create(
            [NumberCounter(name=COUNTER, last=0)], ignore_conflicts=True
        )
        last = qs.filter(name=COUNTER).values_list("last", flat=True).get()
    return last


def register_many(caller: Caller, atenas: Sequence[AtenaIn]) -> list[Registration]:
    """Register or update a batch of 宛名 in one transaction (see the module docstring)."""
    if not atenas:
        return []
    ring = crypto.keyring()
    rows = _validate(atenas, ring)
    try:
        with transaction.atomic(using=DB):
            return _register(caller, rows)
    except IntegrityError:
        # Registrations and merges are serialised by the counter lock, so this is not expected;
        # if a writer outside this module got in between, nothing was written and the batch
        # may simply be retried.
        raise Conflict("同時に別の登録が行われました。もう一度実行してください") from None


def _register(caller: Caller, rows: list[_Row]) -> list[Registration]:
    now = clock.now()
    base = _counter_base()
    # The keyring for encryption is read only now, under the counter lock that key retirement
    # also takes: a key retired while this batch waited for the lock is never used.
    ring = crypto.keyring()
    mine = Atena.objects.using(DB).filter(system_id=caller.system_id)

    existing: dict[str, dict[str, Any]] = {}
    atena_nos = [r.atena_no for r in rows]
    for chunk in _in_chunks(atena_nos):
        for values in mine.filter(atena_no__in=chunk).values(
            "id", "atena_no", "person_id", *ITEM_FIELDS
        ):
            existing[values["atena_no"]] = values

    owner_of: dict[bytes, int] = {}  # blind index → person holding it
    blinds = list({r.blind for r in rows if r.blind is not None})
    for chunk in _in_chunks(blinds):
        for blind, person_id in (
            MyNumber.objects.using(DB)
            .filter(blind_index__in=chunk)
            .values_list("blind_index", "person_id")
        ):
            owner_of[bytes(blind)] = person_id

    matches: dict[str, set[int]] = {}  # match key → active persons with an Atena of that key
    keys = list({r.match_key for r in rows if r.atena_no not in existing})
    for chunk in _in_chunks(keys):
        for key, person_id in (
            Atena.objects.using(DB)
            .filter(match_key__in=chunk, person__merged_into__isnull=True)
            .values_list("match_key", "person_id")
            .distinct()
        ):
            matches.setdefault(key, set()).add(person_id)

    held: dict[int, bytes] = {pid: b for b, pid in owner_of.items()}  # person → blind index
    asked = {v["person_id"] for v in existing.values()}
    asked.update(pid for pids in matches.values() for pid in pids)
    asked.difference_update(held)
    asked_list = list(asked)
    for chunk in _in_chunks(asked_list):
        for person_id, blind in (
            MyNumber.objects.using(DB)
            .filter(person_id__in=chunk)
            .values_list("person_id", "blind_index")
        ):
            held[person_id] = bytes(blind)

    conn = connections[DB]
    at = conn.ops.adapt_datetimefield_value(now)  # as the ORM would store it (SQLite: text)
    new_persons: list[tuple] = []
    new_numbers: list[tuple] = []
    new_atenas: list[tuple] = []
    changed: list[Atena] = []
    candidates: dict[tuple[int, int], DuplicateCandidate] = {}
    results: list[Registration] = []
    person_of: list[int] = []
    municipality = settings.MUNICIPALITY_CODE

    def issue() -> int:
        serial = base + len(new_persons) + 1
        unified = rules.unified_atena_no(serial)
        new_persons.append((serial, municipality, unified, at))
        return serial

    def attach(row: _Row, person_id: int) -> None:
        assert row.number is not None and row.blind is not None
        new_numbers.append(
            (person_id, ring.active_key_id, ring.encrypt(row.number, person_id), row.blind, at)
        )
        owner_of[row.blind] = person_id
        held[person_id] = row.blind

    def suspect(a: int, b: int, basis: str) -> None:
        pair = (min(a, b), max(a, b))
        candidates.setdefault(
            pair,
            DuplicateCandidate(person_a_id=pair[0], person_b_id=pair[1], basis=basis, found_at=now),
        )

    for row in rows:
        suspected = False
        ex = existing.get(row.atena_no)
        if ex is not None:
            person_id = ex["person_id"]
            outcome = "existing"
            if row.blind is not None:
                owner = owner_of.get(row.blind)
                if owner is not None and owner != person_id:
                    raise Conflict(
                        f"{row.position}件目: "
                        "この個人番号は別の団体内統合宛名番号に登録されています"
                    )
                current = held.get(person_id)
                if current is None:
                    attach(row, person_id)
                elif current != row.blind:
                    raise Conflict(
                        f"{row.position}件目: この宛名の団体内統合宛名番号には"
                        "別の個人番号が登録されています"
                    )
            items = _items(row.atena)
            if any(ex[f] != items[f] for f in ITEM_FIELDS):
                changed.append(Atena(id=ex["id"], match_key=row.match_key, updated_at=now, **items))
        else:
            person_id = None
            if row.blind is not None and row.blind in owner_of:
                person_id = owner_of[row.blind]
                outcome = "linked_my_number"
            else:
                found = sorted(matches.get(row.match_key, ()))
                if len(found) == 1 and (
                    row.blind is None or held.get(found[0]) in (None, row.blind)
                ):
                    person_id = found[0]
                    outcome = "linked_five_items"
                    if row.blind is not None and held.get(person_id) is None:
                        attach(row, person_id)
                else:
                    person_id = issue()
                    outcome = "issued"
                    for other in found:
                        suspect(other, person_id, DuplicateBasis.FIVE_ITEMS)
                        suspected = True
                    if row.blind is not None:
                        attach(row, person_id)
            a = row.atena
            new_atenas.append(
                (
                    municipality, caller.system_id, row.atena_no, person_id, a.name, a.name_kana,
                    conn.ops.adapt_datefield_value(a.birth_date), a.sex, a.address,
                    row.match_key, at,
                )
            )  # fmt: skip
        matches.setdefault(row.match_key, set()).add(person_id)
        person_of.append(person_id)
        results.append(Registration(row.atena_no, "", outcome, suspected))

    if new_persons:
        NumberCounter.objects.using(DB).filter(name=COUNTER).update(
            last=F("last") + len(new_persons)
        )
        bulk_insert(Person, PERSON_FIELDS, new_persons, using=DB)
    if new_numbers:
        bulk_insert(MyNumber, MYNUMBER_FIELDS, new_numbers, using=DB)
    if new_atenas:
        bulk_insert(Atena, ATENA_FIELDS, new_atenas, using=DB)
    if changed:
        Atena.objects.using(DB).bulk_update(
            changed, [*ITEM_FIELDS, "match_key", "updated_at"], batch_size=1000
        )
    if candidates:
        DuplicateCandidate.objects.using(DB).bulk_create(
            list(candidates.values()), batch_size=2000, ignore_conflicts=True
        )
    out, events = [], []
    for reg, pid in zip(results, person_of, strict=True):
        # A Person's primary key is its serial: the number follows without a query.
        unified = rules.unified_atena_no(pid)
        out.append(Registration(reg.atena_no, unified, reg.outcome, reg.duplicate_suspected))
        events.append(
            gateway.event_values(
                system_code=caller.system_code,
                actor=caller.actor,
                jimu=caller.jimu,
                operation="register",
                unified=unified,
                detail={"outcome": reg.outcome, "duplicate": reg.duplicate_suspected},
                at=now,
            )
        )
    gateway.insert_events(events)
    return out


def _items(atena: AtenaIn) -> dict[str, Any]:
    return {
        "name": atena.name,
        "name_kana": atena.name_kana,
        "birth_date": atena.birth_date,
        "sex": atena.sex,
        "address": atena.address,
    }


def register(caller: Caller, atena: AtenaIn) -> Registration:
    """One 宛名: the same decisions and writes as a batch of one."""
    return register_many(caller, [atena])[0]


# --- merge and unmerge ----------------------------------------------------------------------------


def _person(unified: str, *, lock: bool = False) -> Person:
    qs = Person.objects.using(DB)
    if lock:
        qs = qs.select_for_update()
    person = qs.filter(id=rules.serial_of(unified)).first()
    if person is None or person.unified_atena_no != unified.strip():
        raise NotFound("団体内統合宛名番号が見つかりません")
    return person


def merge_view(req: MergeRequest, survivor: str = "", absorbed: str = "") -> MergeView:
    """The contract's view of a request (統合宛名番号 derived from the serials: no query)."""
    return MergeView(
        id=req.pk,
        kind=req.kind,
        survivor=survivor or rules.unified_atena_no(req.survivor_id),
        absorbed=absorbed or rules.unified_atena_no(req.absorbed_id),
        status=req.status,
        requested_by=req.requested_by,
        decided_by=req.decided_by,
        reason=req.reason,
    )


def _reason(reason: str) -> str:
    reason = gateway.clean_actor(reason or "")  # same neutralising: bounded, no 個人番号
    if not reason:
        raise InvalidInput("理由を入力してください")
    return reason[:200]


def _pending_for(*person_ids: int) -> bool:
    return (
        MergeRequest.objects.using(DB)
        .filter(status=MergeStatus.PENDING)
        .filter(Q(survivor_id__in=person_ids) | Q(absorbed_id__in=person_ids))
        .exists()
    )


def request_merge(caller: Caller, survivor: str, absorbed: str, reason: str) -> MergeView:
    """Ask to fold ``absorbed`` into ``survivor``. Someone other than ``caller.actor`` decides."""
    reason = _reason(reason)
    with transaction.atomic(using=DB):
        keep, gone = _person(survivor, lock=True), _person(absorbed, lock=True)
        _check_mergeable(keep, gone)
        if _pending_for(keep.pk, gone.pk):
            raise Conflict("この団体内統合宛名番号には承認待ちの申請があります")
        req = MergeRequest.objects.using(DB).create(
            kind=MergeKind.MERGE,
            survivor=keep,
            absorbed=gone,
            reason=reason,
            requested_by=caller.actor,
            requested_at=clock.now(),
        )
        _log(caller, "merge_request", keep, req, absorbed=gone.unified_atena_no)
    return merge_view(req, keep.unified_atena_no, gone.unified_atena_no)


def _check_mergeable(keep: Person, gone: Person) -> None:
    if keep.pk == gone.pk:
        raise InvalidInput("同じ団体内統合宛名番号どうしは統合できません")
    if keep.merged_into_id is not None or gone.merged_into_id is not None:
        raise Conflict("すでに統合された団体内統合宛名番号は統合できません")
    if MyNumber.objects.using(DB).filter(person_id__in=[keep.pk, gone.pk]).count() == 2:
        raise Conflict("別人の個人番号がそれぞれに登録されているため統合できません")


def request_unmerge(caller: Caller, merge_id: int, reason: str) -> MergeView:
    """Ask to undo an applied merge. Someone other than ``caller.actor`` decides."""
    reason = _reason(reason)
    with transaction.atomic(using=DB):
        merge = MergeRequest.objects.using(DB).select_for_update().filter(pk=merge_id).first()
        if merge is None or merge.kind != MergeKind.MERGE:
            raise NotFound("統合の申請が見つかりません")
        _check_undoable(merge)
        if _pending_for(merge.survivor_id, merge.absorbed_id):
            raise Conflict("この団体内統合宛名番号には承認待ちの申請があります")
        req = MergeRequest.objects.using(DB).create(
            kind=MergeKind.UNMERGE,
            survivor_id=merge.survivor_id,
            absorbed_id=merge.absorbed_id,
            undoes=merge,
            reason=reason,
            requested_by=caller.actor,
            requested_at=clock.now(),
        )
        _log(caller, "unmerge_request", None, req, merge=merge.pk)
    return merge_view(req)


def _check_undoable(merge: MergeRequest) -> None:
    if merge.status != MergeStatus.APPLIED:
        raise Conflict("実施されていない統合は取り消せません")
    if merge.undone_by.filter(status=MergeStatus.APPLIED).exists():
        raise Conflict("この統合はすでに取り消されています")
    people = dict(
        Person.objects.using(DB)
        .filter(id__in=[merge.survivor_id, merge.absorbed_id])
        .values_list("id", "merged_into_id")
    )
    if people.get(merge.absorbed_id) != merge.survivor_id:
        raise Conflict("この統合はすでに取り消されています")
    if people.get(merge.survivor_id) is not None:
        raise Conflict("統合先がさらに統合されています。先にその統合を取り消してください")


def decide_merge(caller: Caller, request_id: int, approve: bool) -> MergeView:
    """Approve (apply) or reject a pending merge or unmerge; never by the one who asked."""
    with transaction.atomic(using=DB):
        # The registration lock first (always in this order): a batch must not link a 宛名 to a
        # person this merge is about to fold away, nor a merge move a 個人番号 under a batch.
        _counter_base()
        req = MergeRequest.objects.using(DB).select_for_update().filter(pk=request_id).first()
        if req is None:
            raise NotFound("統合の申請が見つかりません")
        if req.status != MergeStatus.PENDING:
            raise Conflict("この申請はすでに処理されています")
        if req.requested_by == caller.actor:
            raise Conflict("申請者以外の職員が承認してください")
        now = clock.now()
        if approve:
            if req.kind == MergeKind.MERGE:
                req.moved = _apply_merge(req, now)
            else:
                req.moved = _apply_unmerge(req, now)
            req.status = MergeStatus.APPLIED
        else:
            req.status = MergeStatus.REJECTED
        req.decided_by = caller.actor
        req.decided_at = now
        req.save(using=DB, update_fields=["status", "decided_by", "decided_at", "moved"])
        operation = ("merge" if req.kind == MergeKind.MERGE else "unmerge") + (
            "_apply" if approve else "_reject"
        )
        _log(caller, operation, None, req)
    return merge_view(req)


def _move_number(from_id: int, to_id: int, now: datetime) -> None:
    """Re-encrypt a 個人番号 for its new row id: the row id is the ciphertext's associated data."""
    ring = crypto.keyring()
    row = MyNumber.objects.using(DB).select_for_update().get(person_id=from_id)
    plain = ring.decrypt(row.ciphertext, from_id)
    blind = bytes(row.blind_index)
    row.delete(using=DB)
    MyNumber.objects.using(DB).create(
        person_id=to_id,
        key_id=ring.active_key_id,
        ciphertext=ring.encrypt(plain, to_id),
        blind_index=blind,
        updated_at=now,
    )


def _apply_merge(req: MergeRequest, now: datetime) -> dict[str, Any]:
    keep = Person.objects.using(DB).select_for_update().get(pk=req.survivor_id)
    gone = Person.objects.using(DB).select_for_update().get(pk=req.absorbed_id)
    _check_mergeable(keep, gone)
    atena_ids = list(
        Atena.objects.using(DB)
        .filter(person_id=gone.pk)
        .order_by("id")
        .values_list("id", flat=True)
    )
    Atena.objects.using(DB).filter(id__in=atena_ids).update(person_id=keep.pk, updated_at=now)
    holders = set(
        MyNumber.objects.using(DB)
        .filter(person_id__in=[keep.pk, gone.pk])
        .values_list("person_id", flat=True)
    )
    number_moved = holders == {gone.pk}
    if number_moved:
        _move_number(gone.pk, keep.pk, now)
    Person.objects.using(DB).filter(pk=gone.pk).update(merged_into=keep.pk)
    DuplicateCandidate.objects.using(DB).filter(
        person_a_id=min(keep.pk, gone.pk), person_b_id=max(keep.pk, gone.pk), resolved_at=None
    ).update(resolved_at=now, resolution="merged")
    return {"atenas": atena_ids, "my_number": number_moved}


def _apply_unmerge(req: MergeRequest, now: datetime) -> dict[str, Any]:
    merge = MergeRequest.objects.using(DB).select_for_update().get(pk=req.undoes_id)
    list(
        Person.objects.using(DB)
        .select_for_update()
        .filter(pk__in=[merge.survivor_id, merge.absorbed_id])
        .values_list("id", flat=True)
    )
    _check_undoable(merge)
    moved = merge.moved or {}
    atena_ids = list(
        Atena.objects.using(DB)
        .filter(id__in=moved.get("atenas", []), person_id=merge.survivor_id)
        .values_list("id", flat=True)
    )
    Atena.objects.using(DB).filter(id__in=atena_ids).update(
        person_id=merge.absorbed_id, updated_at=now
    )
    number_moved = bool(moved.get("my_number")) and (
        MyNumber.objects.using(DB).filter(person_id=merge.survivor_id).exists()
    )
    if number_moved:
        _move_number(merge.survivor_id, merge.absorbed_id, now)
    Person.objects.using(DB).filter(pk=merge.absorbed_id).update(merged_into=None)
    return {"atenas": atena_ids, "my_number": number_moved}


def _log(caller: Caller, operation: str, person: Person | None, req: MergeRequest, **extra):
    unified = person.unified_atena_no if person else rules.unified_atena_no(req.survivor_id)
    detail = {"request": req.pk, **extra}
    if "absorbed" not in detail:
        detail["absorbed"] = rules.unified_atena_no(req.absorbed_id)
    gateway.insert_event(
        system_code=caller.system_code,
        actor=caller.actor,
        jimu=caller.jimu,
        operation=operation,
        unified=unified,
        detail=detail,
        durable=True,
    )


# --- systems and credentials ----------------------------------------------------------------------


def _admin_event(system_code: str, actor: str, operation: str, **detail: Any) -> None:
    """Administration is logged like calls: system = the one changed, no 事務."""
    gateway.insert_event(
        system_code=system_code,
        actor=actor,
        jimu="",
        operation=operation,
        detail=detail,
        durable=True,
    )


def _check_jimu(jimu_codes: Iterable[str]) -> list[str]:
    codes = list(dict.fromkeys(jimu_codes))
    unknown = [c for c in codes if c not in rules.JIMU]
    if unknown:
        raise InvalidInput("定義されていない事務コードがあります: " + ", ".join(unknown[:5])[:100])
    return codes


def register_system(
    code: str, name: str, jimu_codes: Sequence[str], *, actor: str, active: bool = True
) -> None:
    """Add a calling system, or change its name, 事務 list or active flag (idempotent)."""
    if not SYSTEM_CODE.fullmatch(code or ""):
        raise InvalidInput("システムコードは英小文字で始まる半角英数字と_（32文字以内）です")
    if not (name or "").strip():
        raise InvalidInput("システムの名称を入力してください")
    codes = _check_jimu(jimu_codes)
    with transaction.atomic(using=DB):
        system, created = (
            BusinessSystem.objects.using(DB)
            .select_for_update()
            .get_or_create(
                code=code,
                defaults={
                    "name": name.strip(),
                    "jimu_codes": codes,
                    "active": active,
                    "created_at": clock.now(),
                },
            )
        )
        if not created:
            if (system.name, system.jimu_codes, system.active) == (name.strip(), codes, active):
                return
            system.name, system.jimu_codes, system.active = name.strip(), codes, active
            system.save(using=DB, update_fields=["name", "jimu_codes", "active"])
        _admin_event(
            code,
            actor,
            "system_add" if created else "system_change",
            jimu=codes,
            active=active,
        )
    transaction.on_commit(gateway.systems_changed, using=DB)


def issue_credential(system_code: str, *, actor: str, expires_at: datetime | None = None) -> str:
    """A new credential for a system: ``kl_<prefix>_<secret>``, shown once, stored as a hash."""
    with transaction.atomic(using=DB):
        system = BusinessSystem.objects.using(DB).filter(code=system_code).first()
        if system is None:
            raise NotFound("連携システムが登録されていません")
        return _issue(system, actor=actor, expires_at=expires_at)


def _issue(system: BusinessSystem, *, actor: str, expires_at: datetime | None) -> str:
    """Issue inside the caller's transaction (issue_credential, rotate_credential)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    SystemCredential.objects.using(DB).create(
        system=system,
        prefix=prefix,
        secret_hash=gateway.secret_hash(secret),
        created_at=clock.now(),
        created_by=gateway.clean_actor(actor),
        expires_at=expires_at,
    )
    _admin_event(
        system.code,
        actor,
        "credential_issue",
        credential=prefix,
        expires=expires_at.isoformat() if expires_at else None,
    )
    return f"{gateway.TOKEN_PREFIX}_{prefix}_{secret}"


def credential_prefix(value: str) -> str:
    """The prefix of a credential however an operator spells it: the bare prefix (as
    ``credential list`` prints it), ``kl_<prefix>`` (as the docs write it) or a whole token."""
    value = (value or "").strip()
    parsed = gateway.parse_token(value)
    if parsed is not None:
        return parsed[0]
    return value.removeprefix(f"{gateway.TOKEN_PREFIX}_")


def _locked_credential(prefix: str) -> SystemCredential:
    cred = (
        SystemCredential.objects.using(DB)
        .select_for_update()
        .select_related("system")
        .filter(prefix=credential_prefix(prefix))
        .first()
    )
    if cred is None:
        raise NotFound("連携認証情報が見つかりません")
    return cred


def _revoke(cred: SystemCredential, actor: str) -> None:
    if cred.revoked_at is None:
        cred.revoked_at = clock.now()
        cred.save(using=DB, update_fields=["revoked_at"])
        _admin_event(cred.system.code, actor, "credential_revoke", credential=cred.prefix)


def revoke_credential(prefix: str, *, actor: str) -> None:
    """Revoke a credential at once (this process forgets it now; others within seconds).

    ``prefix``: as :func:`credential_prefix` reads it (bare, ``kl_<prefix>`` or a token).
    """
    with transaction.atomic(using=DB):
        cred = _locked_credential(prefix)
        _revoke(cred, actor)
    gateway.forget(cred.prefix)


def rotate_credential(prefix: str, *, actor: str, revoke_old: bool = False) -> str:
    """A new credential for the same system; the old one stays valid unless ``revoke_old``
    (so a caller can switch over without a gap, then revoke). One transaction: with
    ``revoke_old`` the system is never left with both, nor with neither."""
    with transaction.atomic(using=DB):
        old = _locked_credential(prefix)
        token = _issue(old.system, actor=actor, expires_at=None)
        if revoke_old:
            _revoke(old, actor)
    if revoke_old:
        gateway.forget(old.prefix)
    return token


def list_credentials(system_code: str = "") -> list[dict[str, Any]]:
    """Every credential (of one system, or all): never the secret or its hash."""
    qs = (
        SystemCredential.objects.using(DB)
        .select_related("system")
        .order_by("system__code", "created_at")
    )
    if system_code:
        qs = qs.filter(system__code=system_code)
    return [
        {
            "prefix": c.prefix,
            "system": c.system.code,
            "created": c.created_at,
            "created_by": c.created_by,
            "expires": c.expires_at,
            "revoked": c.revoked_at,
        }
        for c in qs
    ]
