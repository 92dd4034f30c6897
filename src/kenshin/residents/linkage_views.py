"""Staff pages for 団体内統合宛名番号: suspected duplicates, merge requests, decisions, history.

Why in the residents app and not in kenshin.linkage: the linkage server runs as its own
service and knows nothing of the health system (pyproject import contract); these pages are the
health system's side — they show this system's residents and call the server through its client
(linkage.services), in-process or over HTTP alike. Mounted at /linkage/.

Four eyes: one person requests a merge or an unmerge with a reason; a different person
approves or rejects it with a fresh code (ACL-05). The engine refuses a decision by the
requester; its Japanese message is shown as it is. Every page that shows residents records a
view of each (purpose 記録の訂正), and every request and decision is recorded in the audit log
here, besides the linkage server's own log. Ids in URLs are the server's request and candidate
ids, never a person's number.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from kenshin.accounts import stepup
from kenshin.core import audit
from kenshin.core.permissions import requires
from kenshin.core.purposes import Purpose
from kenshin.linkage import services as linkage
from kenshin.linkage.contract import CandidateView, LinkageError, MergeView
from kenshin.residents import services
from kenshin.residents.linkage_forms import DecideForm, MergeRequestForm, UnmergeForm

MERGE = "linkage.merge"
PURPOSE = Purpose.DATA_CORRECTION
STATUS_LABELS = {"pending": "承認待ち", "applied": "実行済み", "rejected": "却下"}
KIND_LABELS = {"merge": "統合", "unmerge": "統合の取消"}
BASIS_LABELS = {
    "my_number": "個人番号が同じ",
    "five_items": "5項目（漢字氏名・カナ氏名・生年月日・性別・住所）が同じ",
}


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


def _side(request: HttpRequest, unified: str) -> dict:
    """One number's column: its residents in this system, each recorded as viewed."""
    residents = services.linked_residents(unified, actor=_actor(request))
    for r in residents:
        audit.record(audit.Event.VIEW, request, r.atena_no, PURPOSE, function=MERGE)
    return {"unified": unified, "residents": residents}


def _label_merge(m: MergeView) -> dict:
    return {
        "m": m,
        "kind_label": KIND_LABELS.get(m.kind, m.kind),
        "status_label": STATUS_LABELS.get(m.status, m.status),
    }


@requires(MERGE)
@require_GET
def candidates(request: HttpRequest) -> HttpResponse:
    """Open suspected duplicates (numbers only; the comparison page shows the people)."""
    error = ""
    found: list[CandidateView] = []
    try:
        found = linkage.client().duplicate_candidates(actor=_actor(request))
    except LinkageError as exc:
        error = str(exc)
    audit.record(
        audit.Event.VIEW, request, audit.Subject("linkage_report", "duplicate_candidates"),
        PURPOSE, function=MERGE, count=len(found),
    )  # fmt: skip
    rows = [{"c": c, "basis_label": BASIS_LABELS.get(c.basis, c.basis)} for c in found]
    return render(request, "residents/linkage/candidates.html", {"rows": rows, "error": error})


def _find_candidate(request: HttpRequest, candidate_id: int) -> CandidateView:
    """The open candidate with this id. The contract has no look-up by id, so the open list
    is fetched (one call, logged once by the server); open candidates are few."""
    for c in linkage.client().duplicate_candidates(actor=_actor(request)):
        if c.id == candidate_id:
            return c
    raise Http404("この重複候補は見つかりません（処理済みの可能性があります）")


@requires(MERGE)
@require_http_methods(["GET", "POST"])
def candidate(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """Two numbers side by side (their residents' five items) and the merge request form."""
    c = _find_candidate(request, candidate_id)
    form = MergeRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        survivor, absorbed = (
            (c.unified_a, c.unified_b)
            if form.cleaned_data["survivor"] == "a"
            else (c.unified_b, c.unified_a)
        )
        try:
            m = services.request_merge(
                request, survivor, absorbed, reason=form.cleaned_data["reason"],
                candidate_id=c.id,
            )  # fmt: skip
        except LinkageError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "統合を申請しました。別の職員が承認すると統合されます。")
            return redirect("linkage:merge", merge_id=m.id)
    with transaction.atomic():
        a, b = _side(request, c.unified_a), _side(request, c.unified_b)
    return render(
        request,
        "residents/linkage/candidate.html",
        {"c": c, "basis_label": BASIS_LABELS.get(c.basis, c.basis), "a": a, "b": b,
         "form": form},
    )  # fmt: skip


@requires(MERGE)
@require_GET
def merges(request: HttpRequest) -> HttpResponse:
    """Merge and unmerge requests, newest first: pending ones to decide, and the history."""
    error = ""
    found: list[MergeView] = []
    try:
        found = linkage.client().merges(actor=_actor(request))
    except LinkageError as exc:
        error = str(exc)
    audit.record(
        audit.Event.VIEW, request, audit.Subject("linkage_report", "merges"), PURPOSE,
        function=MERGE, count=len(found),
    )  # fmt: skip
    return render(
        request,
        "residents/linkage/merges.html",
        {"rows": [_label_merge(m) for m in found], "error": error},
    )


def _find_merge(request: HttpRequest, merge_id: int) -> MergeView:
    """The request with this id. The contract has no look-up by id and the URL carries no
    number to filter ``merges(unified_atena_no=…)`` by, so the history is fetched (one call,
    logged once by the server); a by-id call in the contract would make this one row."""
    for m in linkage.client().merges(actor=_actor(request)):
        if m.id == merge_id:
            return m
    raise Http404("この申請は見つかりません")


@requires(MERGE)
@require_http_methods(["GET", "POST"])
def merge(request: HttpRequest, merge_id: int) -> HttpResponse:
    """One request: the two numbers side by side; decide it (pending) or ask to undo it."""
    m = _find_merge(request, merge_id)
    decide_form = DecideForm(request.POST if "decision" in request.POST else None)
    unmerge_form = UnmergeForm(request.POST if "reason" in request.POST else None)
    if request.method == "POST" and m.status == "pending" and decide_form.is_bound:
        done = _decide(request, m, decide_form)
        if done is not None:
            return done
    elif (
        request.method == "POST"
        and m.status == "applied"
        and m.kind == "merge"
        and unmerge_form.is_bound
        and unmerge_form.is_valid()
    ):
        try:
            u = services.request_unmerge(request, m.id, reason=unmerge_form.cleaned_data["reason"])
        except LinkageError as exc:
            unmerge_form.add_error(None, str(exc))
        else:
            messages.success(
                request, "統合の取消を申請しました。別の職員が承認すると取り消されます。"
            )
            return redirect("linkage:merge", merge_id=u.id)
    with transaction.atomic():
        survivor, absorbed = _side(request, m.survivor), _side(request, m.absorbed)
    return render(
        request,
        "residents/linkage/merge.html",
        {
            **_label_merge(m),
            "survivor": survivor,
            "absorbed": absorbed,
            "decide_form": decide_form if m.status == "pending" else None,
            "unmerge_form": (unmerge_form if m.status == "applied" and m.kind == "merge" else None),
        },
    )


def _decide(request: HttpRequest, m: MergeView, form: DecideForm) -> HttpResponse | None:
    """Approve or reject with a fresh code; the engine refuses the requester (its message)."""
    if not form.is_valid():
        return None
    if not stepup.verify(request, form.cleaned_data["code"], function=MERGE):
        form.add_error("code", stepup.STEP_UP_ERROR)
        return None
    approve = form.cleaned_data["decision"] == "approve"
    try:
        # Audited (a refusal as denied); on approval this system's links follow the merge.
        decided = services.decide_merge(request, m.id, approve=approve)
    except LinkageError as exc:
        form.add_error(None, str(exc))
        return None
    if decided.status == "applied":
        messages.success(request, "承認し、実行しました。")
    else:
        messages.success(request, "却下しました。")
    return redirect("linkage:merge", merge_id=m.id)
