"""Intake screens: upload, the batch with its progress and preview, quarantine, commit.

The batch page is the preview (IMP-04): counts of new / updated / unchanged / error /
quarantined rows, the diff of each update, the errors with row, column, value and what was
expected, and the error file to download. Long steps run as jobs with a progress bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kenshin.core import jobs
from kenshin.core.permissions import requires
from kenshin.intake import services
from kenshin.intake.forms import CommitForm, ErrorFileForm, ProfileForm, ResolveForm, UploadForm
from kenshin.intake.permissions import COMMIT, IMPORT, PROFILES, RESOLVE
from kenshin.programs import services as programs

TABS = (
    ("error", "エラー"),
    ("quarantined", "照合保留"),
    ("updated", "更新"),
    ("new", "新規"),
    ("unchanged", "変更なし"),
    ("rejected", "取り込まない"),
    ("flagged", "注意"),
)


def _method_names(fiscal_year: int) -> dict[str, str]:
    """Method code → its name in the batch's year (staff read 便潜血検査…, not a code)."""
    try:
        return {m.code: m.name for m in programs.catalogue(fiscal_year).methods}
    except programs.CatalogueMissing:
        return {}


def _named(page, fiscal_year: int):
    """The preview page with each row's method shown by name."""
    if page is not None:
        names = _method_names(fiscal_year)
        page.object_list = [
            dataclasses.replace(r, method=names.get(r.method, r.method)) for r in page.object_list
        ]
    return page


def _batch_or_404(batch_id: int):
    try:
        return services.batch_of(batch_id)
    except services.IntakeError:
        raise Http404("この取込はありません") from None


@requires(IMPORT)
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """Upload a file (POST starts its 確認 job) and the recent batches."""
    names = [p.name for p in services.profiles()]
    form = UploadForm(request.POST or None, request.FILES or None, profiles=names)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            batch = services.receive_file(
                request, upload, upload.name,
                fiscal_year=form.cleaned_data["fiscal_year"],
                sender_institution=form.cleaned_data["sender_institution"] or "",
                profile=form.cleaned_data["profile"] or "",
            )  # fmt: skip
        except services.IntakeError as exc:
            form.add_error(None, str(exc))
        else:
            if batch.state == services.BatchState.UPLOADED:
                services.start_stage(batch, request)
            return redirect("intake:batch", batch.pk)
    context = {"form": form, "batches": services.recent_batches()}
    return render(request, "intake/index.html", context, status=400 if form.errors else 200)


@requires(IMPORT)
@require_GET
def batch(request: HttpRequest, batch_id: int) -> HttpResponse:
    """The batch: its state, the job's progress, the preview, and what can be done next."""
    b = _batch_or_404(batch_id)
    tab = request.GET.get("tab") or next(
        (code for code, _ in TABS if b.counts.get(code)), "new"
    )  # fmt: skip
    if tab not in dict(TABS):
        tab = "new"
    try:
        page_no = int(request.GET.get("page", "1"))
    except ValueError:
        page_no = 1
    run = jobs.get_run(b.job_id) if b.job_id else None
    staged = b.state == services.BatchState.STAGED
    context = {
        "batch": b,
        "run": run,
        "tabs": [(code, label, b.counts.get(code, 0)) for code, label in TABS],
        "tab": tab,
        "page": _named(services.preview_page(request, b, tab, page_no), b.fiscal_year)
        if b.counts
        else None,
        "commit_form": CommitForm() if staged else None,
        "error_form": ErrorFileForm(),
        "errors_left": services.error_count(b) if b.counts else 0,
        "needs_approval": staged and services.needs_approval(b) and not b.approved_by,
        "can_commit": request.user.has_perm(COMMIT),
        "running": run is not None and run.is_active,
    }
    return render(request, "intake/batch.html", context)


def _act_on_batch(request: HttpRequest, batch_id: int, act: Any, done: str) -> HttpResponse:
    """Run one step on a batch; its refusal (Japanese) or ``done`` as the page's message."""
    b = _batch_or_404(batch_id)
    try:
        act(b)
    except services.IntakeError as exc:
        messages.error(request, str(exc))
    else:
        if done:
            messages.success(request, done)
    return redirect("intake:batch", b.pk)


@requires(COMMIT)
@require_POST
def commit(request: HttpRequest, batch_id: int) -> HttpResponse:
    form = CommitForm(request.POST)
    if not form.is_valid():
        messages.error(request, "確定の方法を選んでください")
        return redirect("intake:batch", _batch_or_404(batch_id).pk)
    mode = form.cleaned_data["mode"]
    return _act_on_batch(request, batch_id, lambda b: services.start_commit(b, request, mode), "")


@requires(COMMIT)
@require_POST
def approve(request: HttpRequest, batch_id: int) -> HttpResponse:
    return _act_on_batch(request, batch_id, lambda b: services.approve(request, b.pk),
                         "承認しました。確定できます。")  # fmt: skip


@requires(IMPORT)
@require_POST
def discard(request: HttpRequest, batch_id: int) -> HttpResponse:
    return _act_on_batch(request, batch_id, lambda b: services.discard(request, b.pk),
                         "取込を取り消しました。")  # fmt: skip


@requires(IMPORT)
@require_POST
def errors(request: HttpRequest, batch_id: int) -> HttpResponse:
    """The error file (POST: a download of what clinics sent about people is recorded)."""
    b = _batch_or_404(batch_id)
    form = ErrorFileForm(request.POST)
    encoding = form.cleaned_data["encoding"] if form.is_valid() else "cp932"
    response = StreamingHttpResponse(
        services.error_file_chunks(request, b, encoding),
        content_type=f"text/csv; charset={'shift_jis' if encoding == 'cp932' else 'utf-8'}",
    )
    response["Content-Disposition"] = f'attachment; filename="intake-{b.pk}-errors.csv"'
    response["Cache-Control"] = "no-store"
    return response


@requires(RESOLVE)
@require_http_methods(["GET", "POST"])
def resolve(request: HttpRequest, row_id: int) -> HttpResponse:
    """A quarantined row beside its candidates; staff choose the person or not to take it in."""
    if request.method == "GET" or request.POST.get("step") != "decide":
        try:
            q = services.quarantined_row(request, row_id)
        except services.IntakeError:
            raise Http404("この行はありません") from None
        choices = [(c.atena_no, f"{c.atena_no}（{c.name}）") for c in q.candidates]
        form = ResolveForm(candidates=choices)
        return render(request, "intake/resolve.html", {"q": q, "form": form})
    try:
        q = services.quarantined_row(request, row_id)
    except services.IntakeError:
        raise Http404("この行はありません") from None
    choices = [(c.atena_no, f"{c.atena_no}（{c.name}）") for c in q.candidates]
    form = ResolveForm(request.POST, candidates=choices)
    if form.is_valid():
        accept = form.cleaned_data["decision"] == "accept"
        try:
            services.resolve_row(
                request, row_id, atena_no=form.cleaned_data["atena_no"] if accept else None,
                reason=form.cleaned_data["reason"],
            )  # fmt: skip
        except services.IntakeError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{q.row.row_no} 行目を解決しました。")
            return redirect(f"{reverse('intake:batch', args=[q.row.batch_id])}?tab=quarantined")
    return render(request, "intake/resolve.html", {"q": q, "form": form}, status=400)


@requires(PROFILES)
@require_http_methods(["GET", "POST"])
def profiles(request: HttpRequest) -> HttpResponse:
    """The saved column profiles, and a form to add or replace one (by name)."""
    form = ProfileForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.save_profile(
                request, form.cleaned_data["name"], form.cleaned_data["mapping"],
                description=form.cleaned_data["description"], values=form.cleaned_data["values"],
            )  # fmt: skip
        except services.IntakeError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"列の対応表「{form.cleaned_data['name']}」を保存しました。")
            return redirect("intake:profiles")
    context = {"form": form, "profiles": services.profile_rows()}
    return render(request, "intake/profiles.html", context, status=400 if form.errors else 200)
