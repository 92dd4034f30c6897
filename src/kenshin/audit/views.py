"""Access review screens for the 課長 and auditors (LOG-06, LOG-07), all under audit.review.

Every screen that shows log content is itself audited (purpose 監査・アクセス点検), so the
reviewers' own looking is reviewable. A 宛名番号 is entered by POST and never appears in a URL.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kenshin.audit import review
from kenshin.audit.forms import AnomalyForm, CloseTaskForm, HistoryForm
from kenshin.audit.models import ReviewStatus
from kenshin.core import audit
from kenshin.core.permissions import requires
from kenshin.core.purposes import Purpose

REVIEW = "audit.review"


def _report(name: str) -> audit.Subject:
    return audit.Subject("audit_report", name)


@requires(REVIEW)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Menu of the review tools with the number of open tasks."""
    return render(request, "audit/index.html", {"open_tasks": review.open_task_count()})


@requires(REVIEW)
@require_http_methods(["GET", "POST"])
def history(request: HttpRequest) -> HttpResponse:
    """ "Who looked at this person, when and why": every event with the resident as subject."""
    form = HistoryForm(request.POST or None)
    rows = None
    total = 0
    atena_no = ""
    if request.method == "POST" and form.is_valid():
        atena_no = form.cleaned_data["atena_no"]
        audit.record(
            audit.Event.VIEW, request, atena_no, Purpose.AUDIT,
            function=REVIEW, report="access_history",
        )  # fmt: skip
        rows, total = review.access_history(atena_no)
    return render(
        request,
        "audit/history.html",
        {"form": form, "rows": rows, "total": total, "atena_no": atena_no},
    )


@requires(REVIEW)
@require_GET
def anomalies(request: HttpRequest) -> HttpResponse:
    """The four anomaly reports over a period (default: the last 30 days)."""
    form = AnomalyForm(request.GET)  # always bound: no parameters means the default period
    reports = None
    period = None
    if form.is_valid():
        period = form.cleaned_data["period"]
        threshold = form.cleaned_data["threshold"]
        reports = review.anomalies(period, threshold=threshold)
        audit.record(
            audit.Event.VIEW, request, _report("anomalies"), Purpose.AUDIT,
            function=REVIEW, start=period.start.isoformat(), end=period.end.isoformat(),
            threshold=threshold, counts={r.key: r.count for r in reports},
        )  # fmt: skip
    return render(
        request, "audit/anomalies.html", {"form": form, "reports": reports, "period": period}
    )


@requires(REVIEW)
@require_GET
def tasks(request: HttpRequest) -> HttpResponse:
    """Review tasks, open (default) or closed."""
    status = ReviewStatus.CLOSED if request.GET.get("status") == "closed" else ReviewStatus.OPEN
    rows = review.review_tasks(status)
    audit.record(
        audit.Event.VIEW, request, _report("review_tasks"), Purpose.AUDIT,
        function=REVIEW, status=str(status), shown=len(rows),
    )  # fmt: skip
    return render(
        request,
        "audit/tasks.html",
        {"rows": rows, "status": str(status), "form": CloseTaskForm()},
    )


@requires(REVIEW)
@require_POST
def close_task(request: HttpRequest, task_id: int) -> HttpResponse:
    """Close one task with the reviewer's finding (audited by review.close_task)."""
    form = CloseTaskForm(request.POST)
    if not form.is_valid():
        messages.error(request, "確認結果を入力してください。")
        return redirect("audit:tasks")
    try:
        review.close_task(request, task_id, form.cleaned_data["note"])
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "点検タスクを確認済みにしました。")
    return redirect("audit:tasks")
