"""The home page: where each day's work starts."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kenshin.audit import services as audit
from kenshin.core import clock
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
