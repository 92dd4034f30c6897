"""Staff UI of exam records (mounted at /exams/): worklists, the batch entry of paper 受診票,
and the person's ledger (個人別受診台帳) with its 精検 case forms and PDF.

URLs carry codes and ids of batches only; people travel as the residents' random per-session
references (``residents.services.person_ref``), never a 宛名番号, and case ids travel in POST
bodies (a settled case's forms open with ``?case=<id>``, an internal number). Pages that
show people ask for the 利用目的 first and are recorded (``ledger``, ``worklists``,
``entry``); a refused change re-renders the page with the message and status
200, because the page names the person and error responses are scanned as error pages.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kenshin.core import clock
from kenshin.core.fiscal import fiscal_year_of
from kenshin.core.permissions import requires
from kenshin.core.purposes import Purpose
from kenshin.core.purposes import label as purpose_label
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import entry, exam_actions, ledger, worklists
from kenshin.screening.exam_forms import BatchForm, CaseForm, FindForm, ReportForm, ResultForm
from kenshin.screening.forms import PurposeForm
from kenshin.screening.models import EntryBatch, RosterEntry
from kenshin.screening.permissions import ENTER_RESULT, FOLLOW_UP, VIEW_EXAMS

NOT_FOUND = "受診台帳は住民の画面かワークリストから開いてください"
SHOWN_ITEMS = 30  # the latest forms of a batch listed under the entry form


# ------------------------------------------------------------------------------ home, worklists


def _batches():
    return EntryBatch.objects.filter(municipality_code=settings.MUNICIPALITY_CODE)


@requires(VIEW_EXAMS)
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Where the work is: each worklist with its count, and the open batches."""
    counts = worklists.counts()
    lines = [(w, counts[w.code]) for w in worklists.WORKLISTS]
    batches = _batches().filter(status=EntryBatch.Status.OPEN).order_by("-created_at")[:20]
    return render(request, "screening/exams/home.html", {"lines": lines, "batches": batches})


@requires(VIEW_EXAMS)
@require_http_methods(["GET", "POST"])
def worklist(request: HttpRequest, code: str) -> HttpResponse:
    """GET: the rule and the purpose question. POST: one page of the list (recorded)."""
    if code not in {w.code for w in worklists.WORKLISTS}:
        raise Http404("このワークリストはありません")
    wl = worklists.worklist(code)
    if request.method == "GET":
        context = {"wl": wl, "count": wl.query(clock.today()).count(), "form": PurposeForm()}
        return render(request, "screening/exams/worklist.html", context)
    form = PurposeForm(request.POST)
    if not form.is_valid():
        context = {"wl": wl, "count": None, "form": form}
        return render(request, "screening/exams/worklist.html", context, status=400)
    purpose = form.cleaned_data["purpose"]
    try:
        page_no = int(request.POST.get("page", "1"))
    except ValueError:
        page_no = 1
    page = worklists.list_for(request, code, purpose=purpose, page=page_no)
    refs = residents.person_refs(request.session, [r.atena_no for r in page.rows], purpose)
    names = _programme_and_method_names()
    rows = [(r, refs[r.atena_no], *names(r.programme, r.method)) for r in page.rows]
    context = {"wl": wl, "count": page.total, "form": form, "page": page, "rows": rows,
               "purpose": purpose, "purpose_label": purpose_label(purpose)}  # fmt: skip
    return render(request, "screening/exams/worklist.html", context)


def _programme_and_method_names():
    fy = fiscal_year_of(clock.today())
    try:
        catalogue = programs.catalogue(fy)
        prog = {p.code: p.name for p in catalogue.programmes}
        meth = {m.code: m.name for m in catalogue.methods}
    except programs.CatalogueMissing:
        prog, meth = {}, {}
    return lambda p, m: (prog.get(p, p), meth.get(m, m))


# ------------------------------------------------------------------------------ batch entry


def _entry_methods() -> list[tuple[str, str]]:
    fy = fiscal_year_of(clock.today())
    try:
        catalogue = programs.catalogue(fy)
    except programs.CatalogueMissing:
        return []
    return [(m.code, m.name) for m in catalogue.methods if programs.results_of(m.code)]


@requires(ENTER_RESULT)
@require_http_methods(["GET", "POST"])
def batches(request: HttpRequest) -> HttpResponse:
    """The batches, and a new one."""
    form = BatchForm(request.POST or None, methods=_entry_methods())
    if request.method == "POST" and form.is_valid():
        try:
            batch = entry.create_batch(request, **form.cleaned_data)
        except entry.EntryError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("exams:key", batch_id=batch.pk)
    listed = _batches().order_by("-created_at")[:50]
    status = 400 if request.method == "POST" else 200
    return render(request, "screening/exams/batches.html",
                  {"form": form, "batches": listed}, status=status)  # fmt: skip


def _batch_or_404(batch_id: int) -> EntryBatch:
    batch = _batches().filter(pk=batch_id).first()
    if batch is None:
        raise Http404("この束はありません")
    return batch


def _method_name(method: str) -> str:
    return dict(_entry_methods()).get(method, method)


def _batch_context(request: HttpRequest, batch: EntryBatch) -> dict[str, Any]:
    pass_no = entry.pass_of(batch, request)
    items = list(batch.items.order_by("seq", "pass_no"))
    mine = [i for i in items if i.pass_no == (pass_no or 1)]
    shown = mine[-SHOWN_ITEMS:]
    names = residents.names_of(i.atena_no for i in shown)
    # The staff who keyed the forms may open each person's ledger from here (結果登録); a
    # reference they already hold keeps its purpose. Each person listed is recorded.
    refs = residents.person_refs(request.session, [i.atena_no for i in shown],
                                 Purpose.RESULT_ENTRY, keep_purpose=True)  # fmt: skip
    entry.record_listed(request, [i.atena_no for i in shown])
    return {
        "batch": batch,
        "method_name": _method_name(batch.method),
        "pass_no": pass_no,
        "items": [(i, names.get(i.atena_no), refs[i.atena_no]) for i in shown],
        "keyed": {p: sum(1 for i in items if i.pass_no == p) for p in (1, 2)},
        "hidden_items": len(mine) - len(shown),
        "differences": entry.differences(batch) if batch.double_entry else [],
    }


@requires(ENTER_RESULT)
@require_http_methods(["GET", "POST"])
def key(request: HttpRequest, batch_id: int) -> HttpResponse:
    """Key one 受診票 after another: find the person, confirm, enter the result, next."""
    batch = _batch_or_404(batch_id)
    context = _batch_context(request, batch)
    if batch.status != EntryBatch.Status.OPEN or context["pass_no"] is None:
        return render(request, "screening/exams/batch.html", context)
    pass_no = context["pass_no"]
    seq = entry.next_seq(batch, pass_no)
    find = FindForm(initial={"seq": seq})
    result = None
    person = None
    if request.method == "POST" and request.POST.get("step") == "find":
        find = FindForm(request.POST)
        if find.is_valid():
            d = find.cleaned_data
            try:
                people = entry.find_people(
                    request, number=d["number"], kana=d["kana"], birth_date=d["birth"],
                    programme=_programme_of(batch.method),
                )  # fmt: skip
            except entry.EntryError as exc:
                find.add_error(None, str(exc))
                people = []
            if not people and not find.errors:
                find.add_error(None, "当てはまる住民がいません。カナと生年月日を見直してください")
            context["candidates"] = _candidates(request, people, batch)
            if len(people) == 1:
                person = context["candidates"][0]
                result = _result_form(batch, initial={
                    "seq": d["seq"], "ref": person["ref"],
                    "voucher_no": d["number"] if people[0].found_by == "受診券番号" else "",
                    "coupon_no": d["number"] if people[0].found_by == "クーポン番号" else "",
                })  # fmt: skip
    elif request.method == "POST" and request.POST.get("step") == "choose":
        ref = request.POST.get("ref", "")
        found = residents.person_of_ref(request.session, ref)
        if not found:
            find.add_error(None, "受診者をもう一度探してください（画面の有効期限が切れました）")
        else:
            people = _people_from_refs(request, [ref])
            context["candidates"] = _candidates(request, people, batch)
            person = context["candidates"][0] if context["candidates"] else None
            result = _result_form(batch, initial={"seq": request.POST.get("seq"), "ref": ref})
    elif request.method == "POST" and request.POST.get("step") == "save":
        result = _result_form(batch, data=request.POST)
        found = residents.person_of_ref(request.session, request.POST.get("ref", ""))
        if found is None:
            result.add_error(None, "受診者をもう一度探してください（画面の有効期限が切れました）")
        else:
            person_list = _people_from_refs(request, [request.POST.get("ref", "")])
            cands = _candidates(request, person_list, batch)
            person = cands[0] if cands else None
        if found is not None and result.is_valid():
            d = result.cleaned_data
            data = exam_actions.ExamInput(
                atena_no=found[0], method=batch.method, exam_date=d["exam_date"],
                setting=batch.setting, institution_code=batch.institution_code,
                results=result.results(), voucher_no=d.get("voucher_no") or "",
                coupon_no=d.get("coupon_no") or "", place=d.get("place") or "",
                smoking_index=d.get("smoking_index"),
                hpv_follow_up=bool(d.get("hpv_follow_up")),
                complication=d.get("complication") or "",
                billing_month=batch.billing_month,
            )  # fmt: skip
            try:
                keyed = entry.key_form(request, batch.pk, d["seq"], data)
            except exam_actions.ExamRecordError as exc:
                result.add_error(None, str(exc))
            else:
                text = f"No.{d['seq']} を" + (
                    "登録しました" if keyed.exam_recorded else "保存しました"
                )
                if keyed.opens_case:
                    text += "（要精検: 精密検査の追跡を始めます）"
                messages.success(request, text + "。次の受診票をどうぞ。")
                return redirect("exams:key", batch_id=batch.pk)
        find = None
    if result is not None:
        find = None  # the person is found: the page now asks only to confirm and enter
        result.fields["exam_date"].widget.attrs["autofocus"] = True
    elif find is not None:
        find.fields["number"].widget.attrs["autofocus"] = True
    context.update({"find": find, "result": result, "person": person, "seq": seq})
    return render(request, "screening/exams/key.html", context)


def _programme_of(method: str) -> str:
    fy = fiscal_year_of(clock.today())
    try:
        return programs.catalogue(fy).methods_by_code[method].programme
    except (programs.CatalogueMissing, KeyError):
        return ""


def _result_form(batch: EntryBatch, **kwargs: Any) -> ResultForm:
    return ResultForm(method=batch.method, setting=batch.setting, **kwargs)


def _people_from_refs(request: HttpRequest, refs: list[str]) -> list[entry.Candidate]:
    out = []
    for ref in refs:
        found = residents.person_of_ref(request.session, ref)
        r = residents.get_resident(found[0]) if found else None
        if r is not None:
            out.append(entry.candidate_of(r, "選択"))
    return out


def _candidates(request: HttpRequest, people: list[entry.Candidate],
                batch: EntryBatch) -> list[dict[str, Any]]:  # fmt: skip
    """The people with a reference each and their roster line for the batch's method."""
    refs = residents.person_refs(request.session, [p.atena_no for p in people],
                                 Purpose.RESULT_ENTRY)  # fmt: skip
    fy = fiscal_year_of(clock.today())
    roster = {
        r["atena_no"]: r
        for r in RosterEntry.objects.filter(
            municipality_code=batch.municipality_code, fiscal_year=fy, method=batch.method,
            atena_no__in=[p.atena_no for p in people],
        ).values("atena_no", "eligible", "reason")
    }  # fmt: skip
    out = []
    for p in people:
        r = roster.get(p.atena_no)
        if r is None:
            line = "名簿にありません"
        else:
            verdict = "対象" if r["eligible"] else "対象外"
            line = f"{verdict}（{programs.REASONS.get(r['reason'], r['reason'])}）"
        out.append({"p": p, "ref": refs[p.atena_no], "roster": line,
                    "warn": r is None or not r["eligible"]})  # fmt: skip
    return out


@requires(ENTER_RESULT)
@require_http_methods(["GET", "POST"])
def batch(request: HttpRequest, batch_id: int) -> HttpResponse:
    """A batch's forms, the differences of a double entry, and its recording."""
    b = _batch_or_404(batch_id)
    if request.method == "POST":
        try:
            n = entry.commit_batch(request, b.pk)
        except entry.EntryError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{n} 件の受診を登録しました。")
        return redirect("exams:batch", batch_id=b.pk)
    return render(request, "screening/exams/batch.html", _batch_context(request, b))


# ------------------------------------------------------------------------------ the ledger


def _person_or_404(request: HttpRequest, ref: str) -> tuple[str, str]:
    found = residents.person_of_ref(request.session, ref)
    if not found:
        raise Http404(NOT_FOUND)
    return found


def _ledger_page(request: HttpRequest, ref: str, atena_no: str, purpose: str,
                 errors: dict[str, Any] | None = None) -> HttpResponse:  # fmt: skip
    book = ledger.open_ledger(request, atena_no, purpose=purpose)
    if book is None:
        raise Http404(NOT_FOUND)
    errors = errors or {}
    can_edit = request.user.has_perm(FOLLOW_UP)
    editing = request.GET.get("case", "")
    if can_edit:
        for line in _case_lines(book):
            c = line.case
            # Forms for the cases still being chased, and for a settled one only when asked:
            # each pair is some twenty widgets, and a long history has many settled cases.
            if (
                c.status == "attended"
                and editing != str(c.pk)
                and not (("case", c.pk) in errors or ("report", c.pk) in errors)
            ):
                continue
            case_form = errors.get(("case", c.pk)) or CaseForm(
                instance=c, initial={"version": c.version, "case_id": c.pk}, prefix=f"c{c.pk}",
            )  # fmt: skip
            report_form = errors.get(("report", c.pk)) or ReportForm(
                methods=line.method_choices, results=line.result_choices,
                initial={"version": c.version, "case_id": c.pk, "from_institution": "1"},
                prefix=f"r{c.pk}",
            )  # fmt: skip
            line.forms = (case_form, report_form)
    return render(request, "screening/exams/ledger.html", {
        "ref": ref, "book": book, "purpose_label": purpose_label(purpose),
        "can_edit": can_edit, "flagged": bool(residents.flags_of(atena_no)),
    })  # fmt: skip


def _case_lines(book: ledger.Ledger):
    for p in book.programmes:
        for y in p.years:
            for e in y.exams:
                if e.case is not None:
                    yield e.case


@requires(VIEW_EXAMS)
@require_http_methods(["GET", "POST"])
def person_ledger(request: HttpRequest, ref: str) -> HttpResponse:
    """個人別受診台帳. A reference without a purpose asks for one; POST changes the purpose."""
    atena_no, purpose = _person_or_404(request, ref)
    if request.method == "POST":
        form = PurposeForm(request.POST)
        if form.is_valid():
            residents.person_ref(request.session, atena_no, form.cleaned_data["purpose"])
            return redirect("exams:ledger", ref=ref)
        return render(request, "screening/exams/purpose.html", {"form": form, "ref": ref},
                      status=400)  # fmt: skip
    if not purpose:
        return render(request, "screening/exams/purpose.html", {"form": PurposeForm(), "ref": ref})
    return _ledger_page(request, ref, atena_no, purpose)


@requires(VIEW_EXAMS)
@require_GET
@never_cache
def ledger_pdf(request: HttpRequest, ref: str) -> HttpResponse:
    """The ledger as a PDF (A4, for the file or the person's disclosure request)."""
    from weasyprint import HTML  # imported here: it loads pango, which only this view needs

    atena_no, purpose = _person_or_404(request, ref)
    if not purpose:
        return redirect("exams:ledger", ref=ref)
    book = ledger.open_ledger(request, atena_no, purpose=purpose, printed=True)
    if book is None:
        raise Http404(NOT_FOUND)
    html = render_to_string("screening/exams/ledger_pdf.html", {
        "book": book, "printed_at": clock.now(), "printed_by": request.user.get_username(),
        "purpose_label": purpose_label(purpose),
    })  # fmt: skip
    pdf = HTML(string=html, base_url=request.build_absolute_uri("/")).write_pdf()
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = 'inline; filename="ledger.pdf"'
    return response


def _after_case_error(request, ref, atena_no, purpose, key, form, exc=None):
    if exc is not None:
        form.add_error(None, str(exc))
    return _ledger_page(request, ref, atena_no, purpose, errors={key: form})


def _posted_case(request: HttpRequest, ref: str):
    """(宛名番号, purpose, case) of a case form's POST — the person's own case only — or the
    redirect to the ledger when the reference has no purpose yet."""
    if not request.user.has_perm(VIEW_EXAMS):  # the answer shows the ledger
        raise PermissionDenied(VIEW_EXAMS)
    atena_no, purpose = _person_or_404(request, ref)
    if not purpose:
        return redirect("exams:ledger", ref=ref)
    try:
        case_id = int(request.POST.get("case_id", ""))
    except ValueError:
        raise Http404(NOT_FOUND) from None
    case = ledger.case_of(atena_no, case_id)
    if case is None:
        raise Http404(NOT_FOUND)
    return atena_no, purpose, case


@requires(FOLLOW_UP)
@require_POST
def case_update(request: HttpRequest, ref: str) -> HttpResponse:
    """Change a case (紹介先, 連絡票, 状況調査, 追跡調査) under the optimistic lock."""
    found = _posted_case(request, ref)
    if isinstance(found, HttpResponse):
        return found
    atena_no, purpose, case = found
    case_id = case.pk
    form = CaseForm(request.POST, instance=case, prefix=f"c{case_id}")
    form.data = form.data.copy()
    form.data.setdefault(f"c{case_id}-case_id", str(case_id))
    key = ("case", case_id)
    if not form.is_valid():
        return _after_case_error(request, ref, atena_no, purpose, key, form)
    case.refresh_from_db()
    changes = form.changes(case)
    if not changes:
        messages.info(request, "変更はありませんでした。")
        return redirect(reverse("exams:ledger", kwargs={"ref": ref}) + f"#case-{case_id}")
    try:
        exam_actions.update_case(request, case_id, form.cleaned_data["version"], changes,
                                 purpose=purpose)  # fmt: skip
    except exam_actions.ExamRecordError as exc:
        fresh = ledger.case_of(atena_no, case_id)
        keep = CaseForm(request.POST, instance=fresh, prefix=f"c{case_id}")
        keep.is_valid()
        return _after_case_error(request, ref, atena_no, purpose, key, keep, exc)
    messages.success(request, "精密検査の記録を更新しました。")
    return redirect(reverse("exams:ledger", kwargs={"ref": ref}) + f"#case-{case_id}")


@requires(FOLLOW_UP)
@require_POST
def case_report(request: HttpRequest, ref: str) -> HttpResponse:
    """Add a 精検 report (連絡票 or the person's account); the status is re-derived."""
    found = _posted_case(request, ref)
    if isinstance(found, HttpResponse):
        return found
    atena_no, purpose, case = found
    case_id = case.pk
    spec = programs.seiken_of(case.programme)
    labels = programs.seiken_result_labels()
    form = ReportForm(
        request.POST, prefix=f"r{case_id}",
        methods=[(m.code, m.label) for m in spec.methods] if spec else [],
        results=[(c, labels.get(c, c)) for c in spec.results] if spec else [],
    )  # fmt: skip
    key = ("report", case_id)
    if not form.is_valid():
        return _after_case_error(request, ref, atena_no, purpose, key, form)
    d = form.cleaned_data
    try:
        exam_actions.add_seiken_report(
            request, case_id, d["version"], from_institution=d["from_institution"],
            exam_date=d["exam_date"], institution=d["institution"], method=d["method"],
            result=d["result"], pathology=d["pathology"], stage=d["stage"],
            early_cancer=d["early_cancer"], complication=d["complication"], purpose=purpose,
        )  # fmt: skip
    except exam_actions.ExamRecordError as exc:
        return _after_case_error(request, ref, atena_no, purpose, key, form, exc)
    messages.success(request, "精検の報告を登録しました。")
    return redirect(reverse("exams:ledger", kwargs={"ref": ref}) + f"#case-{case_id}")
