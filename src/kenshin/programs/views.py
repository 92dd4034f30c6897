"""Staff UI of the programme catalogue: the years, one year's rules, copy forward, adjust.

Reading is programs.view (every role that builds or reads rosters must be able to see the rules
behind them); changing is programs.edit with a fresh TOTP code in the same POST. A change is
always a new version of the year (actions.save_version) — the version a roster was built from
stays readable here, with what changed and why.

No personal data on these pages: the catalogue is the city's rules, not anybody's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kenshin.accounts import stepup
from kenshin.core import audit
from kenshin.core.permissions import requires
from kenshin.programs import actions, services
from kenshin.programs.catalogue import CatalogueError, adjusted, describe, describe_fees
from kenshin.programs.forms import CopyForwardForm, MethodAdjustForm
from kenshin.programs.permissions import EDIT, VIEW


@dataclass(frozen=True)
class YearRow:
    """One fiscal year on the index: its latest version and the versions before it."""

    fiscal_year: int
    current: services.VersionInfo
    earlier: list[services.VersionInfo]


@requires(VIEW)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Fiscal years with their current version and the version history (one query)."""
    years = []
    for fy, versions in groupby(services.history(), key=lambda v: v.fiscal_year):
        listed = list(versions)
        years.append(YearRow(fy, listed[0], listed[1:]))
    return render(request, "programs/index.html", {"years": years})


def _stored_or_404(fiscal_year: int, version: int | None = None) -> services.StoredVersion:
    try:
        return services.stored_version(fiscal_year, version)
    except services.CatalogueMissing as exc:
        raise Http404(str(exc)) from None


def _year_context(request: HttpRequest, fiscal_year: int, version: int | None = None) -> dict:
    """Everything the year page shows, in a fixed number of queries whatever the catalogue."""
    stored = _stored_or_404(fiscal_year, version)
    cat = stored.catalogue
    versions = services.history(fiscal_year)
    latest = versions[0].version
    years = services.fiscal_years()
    names = {p.code: p.name for p in cat.programmes}
    programmes = [(p, [(m, describe(m, names)) for m in p.methods]) for p in cat.programmes]
    exemptions, early_months = describe_fees(cat.fees)
    previous_year = None
    if fiscal_year - 1 in years:
        before = services.stored_version(fiscal_year - 1)
        previous_year = (before.info, services.changes(before.catalogue, cat))
    previous_version = None
    if stored.info.version > 1:
        before = services.stored_version(fiscal_year, stored.info.version - 1)
        previous_version = (before.info, services.changes(before.catalogue, cat))
    is_latest = stored.info.version == latest
    can_edit = is_latest and request.user.has_perm(EDIT)
    return {
        "stored": stored,
        "info": stored.info,
        "cat": cat,
        "programmes": programmes,
        "exemptions": exemptions,
        "early_months": early_months,
        "versions": versions,
        "latest": latest,
        "is_latest": is_latest,
        "can_edit": can_edit,
        "next_exists": fiscal_year + 1 in years,
        "prev_exists": fiscal_year - 1 in years,
        "next_year": fiscal_year + 1,
        "prev_year": fiscal_year - 1,
        "previous_year": previous_year,
        "previous_version": previous_version,
        "copy_form": CopyForwardForm() if can_edit and fiscal_year + 1 not in years else None,
    }


@requires(VIEW)
@require_GET
def year(request: HttpRequest, fiscal_year: int) -> HttpResponse:
    """The year's rules in force (its latest version) and what changed from the year before."""
    return render(request, "programs/year.html", _year_context(request, fiscal_year))


@requires(VIEW)
@require_GET
def version(request: HttpRequest, fiscal_year: int, version: int) -> HttpResponse:
    """An earlier (or the latest) version of a year, as it was stored — read only."""
    return render(request, "programs/year.html", _year_context(request, fiscal_year, version))


@requires(VIEW)
@require_GET
def export(request: HttpRequest, fiscal_year: int) -> HttpResponse:
    """The year's latest version as a TOML file, to review or keep under version control."""
    stored = _stored_or_404(fiscal_year)
    text = services.export_toml(fiscal_year, stored.info.version)
    audit.record(
        audit.Event.EXPORT,
        request,
        audit.Subject("catalogue", f"{fiscal_year}:{stored.info.version}"),
        function=VIEW,
        format="toml",
    )
    response = HttpResponse(text, content_type="application/toml; charset=utf-8")
    name = f"programs-{fiscal_year}-v{stored.info.version}.toml"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@requires(EDIT)
@require_POST
def copy_forward(request: HttpRequest, fiscal_year: int) -> HttpResponse:
    """翌年度へ複写: a fresh code, then the next year's first version (refused if it exists)."""
    context = _year_context(request, fiscal_year)
    form = CopyForwardForm(request.POST)
    context["copy_form"] = form
    if not form.is_valid():
        return render(request, "programs/year.html", context)
    if not stepup.verify(request, form.cleaned_data["code"], function=EDIT):
        form.add_error("code", stepup.STEP_UP_ERROR)
        return render(request, "programs/year.html", context)
    try:
        new = services.copy_forward(request, fiscal_year, note=form.cleaned_data["note"])
    except CatalogueError as exc:
        form.add_error(None, str(exc))
        return render(request, "programs/year.html", context)
    messages.success(
        request,
        f"{fiscal_year}年度の定義を{new.fiscal_year}年度の第1版として複写しました。"
        "必要な調整をしてください。",
    )
    return redirect("programs:year", fiscal_year=new.fiscal_year)


@requires(EDIT)
@require_http_methods(["GET", "POST"])
def adjust(request: HttpRequest, fiscal_year: int, method: str) -> HttpResponse:
    """調整: one method's ages, interval details, settings and prices — saved as a new version.

    The form carries the version it was opened on; a save on top of a newer version is
    refused. The new document is validated before the code is checked, so a rule error does
    not use up a code; nothing is stored unless the whole catalogue is valid.
    """
    if request.method == "POST":
        form = MethodAdjustForm(request.POST)
        based_on = form.data.get("based_on", "")
        stored = _stored_or_404(fiscal_year, int(based_on) if based_on.isdigit() else None)
    else:
        stored = _stored_or_404(fiscal_year)
        form = None
    m = stored.catalogue.methods_by_code.get(method)
    if m is None:
        raise Http404("この年度にその検査方法はありません")
    if form is None:
        form = MethodAdjustForm(initial=MethodAdjustForm.initial_for(m, stored.info.version))
    elif form.is_valid():
        values = form.values()
        try:
            adjusted(stored.document, method, values)
        except CatalogueError as exc:
            form.add_catalogue_error(str(exc))
        else:
            if not stepup.verify(request, form.cleaned_data["code"], function=EDIT):
                form.add_error("code", stepup.STEP_UP_ERROR)
            else:
                try:
                    row, _ = actions.adjust_method(
                        request, stored.document, method, values,
                        note=form.cleaned_data["note"], based_on=stored.info.version,
                    )  # fmt: skip
                except CatalogueError as exc:
                    form.add_catalogue_error(str(exc))
                else:
                    messages.success(
                        request,
                        f"{m.name}を調整し、{fiscal_year}年度の第{row.version}版として保存しました。",
                    )
                    return redirect("programs:year", fiscal_year=fiscal_year)
    names = {p.code: p.name for p in stored.catalogue.programmes}
    return render(
        request,
        "programs/adjust.html",
        {
            "form": form,
            "info": stored.info,
            "cat": stored.catalogue,
            "method": m,
            "summary": describe(m, names),
            "programme_name": names.get(m.programme, m.programme),
        },
    )
