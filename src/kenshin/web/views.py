"""The home page, where each day's work starts, and the progress of background jobs."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from kenshin.audit import services as audit
from kenshin.core import audit as core_audit
from kenshin.core import clock, jobs
from kenshin.core.permissions import signed_in
from kenshin.residents import services as residents


@signed_in("ホーム画面（住民の件数のみ。個人の情報は表示しない）")
def home(request: HttpRequest) -> HttpResponse:
    """Counts of the register, and for reviewers the review tasks waiting for them."""
    open_tasks = audit.open_review_task_count() if request.user.has_perm("audit.review") else None
    return render(
        request,
        "web/home.html",
        {"counts": residents.count_current(), "today": clock.today(), "open_tasks": open_tasks},
    )


@signed_in(
    "ジョブの進み具合（段階と件数だけ。見られるのは依頼した本人と、その種類の処理の機能を"
    "持つ人。ほかの人には core.jobs.can_view が拒否する）"
)
def job_progress(request: HttpRequest, job_id: str) -> HttpResponse:
    """A job's progress block (htmx polls it every second), or a page around it.

    Who may look is decided per run (core.jobs.can_view), so the route itself is only
    "signed in"; a refusal is recorded like any other. An unknown id is 404.
    """
    run = jobs.get_run(job_id)
    if run is None:
        raise Http404("そのジョブはありません")
    if not jobs.can_view(request.user, run):
        core_audit.record(
            core_audit.Event.ACCESS_DENIED,
            request,
            core_audit.Subject("job", str(run.pk)),
            function=f"jobs.view:{run.kind}",
            result=core_audit.Result.DENIED,
        )
        raise PermissionDenied("job")
    partial = request.headers.get("HX-Request") == "true"
    return render(request, "web/_job_progress.html" if partial else "web/job.html", {"job": run})
