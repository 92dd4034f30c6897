"""Staff UI for the register: search and the person page.

Search terms are personal data, so the form is POSTed (never in a URL, never in access logs),
and result links carry a random per-session reference instead of the 宛名番号.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from kenshin.residents import services
from kenshin.residents.forms import ResidentSearchForm

_REFS = "residents_refs"
_MAX_REFS = 500


def _ref_for(request: HttpRequest, atena_no: str) -> str:
    """A random token standing for one person within this staff session."""
    refs: dict[str, str] = request.session.get(_REFS, {})
    for ref, value in refs.items():
        if value == atena_no:
            return ref
    if len(refs) >= _MAX_REFS:
        refs.pop(next(iter(refs)))
    ref = secrets.token_urlsafe(9)
    refs[ref] = atena_no
    request.session[_REFS] = refs
    return ref


@login_required
@require_http_methods(["GET", "POST"])
def search(request: HttpRequest) -> HttpResponse:
    """Search form and results (POST)."""
    form = ResidentSearchForm(request.POST or None)
    results = None
    more = False
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            found = services.search_residents(**form.cleaned_data, limit=services.SEARCH_LIMIT + 1)
        except ValueError as exc:  # SearchRejected or an unreadable date
            error = str(exc)
        else:
            more = len(found) > services.SEARCH_LIMIT
            results = [(r, _ref_for(request, r.atena_no)) for r in found[: services.SEARCH_LIMIT]]
    return render(
        request,
        "residents/search.html",
        {
            "form": form,
            "results": results,
            "more": more,
            "error": error,
            "limit": services.SEARCH_LIMIT,
        },
    )


@login_required
@require_http_methods(["GET"])
def person(request: HttpRequest, ref: str) -> HttpResponse:
    """Current attributes, household, fiscal-year categories and 異動 history of one person."""
    atena_no = request.session.get(_REFS, {}).get(ref)
    record = services.get_resident(atena_no) if atena_no else None
    if record is None:
        raise Http404("検索結果から開いてください")
    household = [
        (m, _ref_for(request, m.atena_no)) for m in services.household_members(record.household_no)
    ]
    return render(
        request,
        "residents/person.html",
        {
            "r": record,
            "household": household,
            "history": services.history(record.atena_no),
            "categories": services.fiscal_categories(record.atena_no),
        },
    )
