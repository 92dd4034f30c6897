"""Staff UI of the roster (対象者名簿): build, the 対象者数 table, the list behind a cell, one
person's "why (not) eligible", 受診不要 and overrides, and the audited CSV export.

Personal data and URLs: the table and its links carry only codes (fiscal year, method, sex,
age band) — counts are not personal data. The list itself is a POST (with the purpose), and its
person links carry residents' random per-session references (residents.services.person_ref),
never a 宛名番号; the same reference opens the resident's record on the residents pages.

Audit: a list records a summary event and one listing event per person shown, the person page
a VIEW, an export an EXPORT with the row count (services); 受診不要 and overrides are actions
with their own events. A list page or export refused for a wrong code is answered without the
list (error pages are scanned by the leak guard, and a refusal must not show people).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kenshin.accounts import stepup
from kenshin.core import clock, jobs
from kenshin.core.fiscal import fiscal_year_of
from kenshin.core.permissions import requires
from kenshin.core.purposes import label as purpose_label
from kenshin.residents import services as residents
from kenshin.screening import services
from kenshin.screening.forms import (
    BuildForm,
    ExclusionForm,
    ExportForm,
    ListForm,
    OverrideForm,
    PurposeForm,
)
from kenshin.screening.jobs import ROSTER_BUILD, label_for
from kenshin.screening.permissions import (
    BUILD_ROSTER,
    EXCLUDE,
    EXPORT_ROSTER,
    OVERRIDE,
    VIEW_ROSTER,
)

NOT_FOUND = "対象者名簿の一覧から開いてください"


def _default_year(years: list[int]) -> int | None:
    this = fiscal_year_of(clock.today())
    if this in years:
        return this
    return years[0] if years else None


def _year_or_404(fiscal_year: int) -> dict[str, tuple[str, str, bool]]:
    methods = services.methods_of(fiscal_year)
    if not methods:
        raise Http404(f"{fiscal_year}年度の検診事業の定義がありません")
    return methods


# ------------------------------------------------------------------------------ index and build


@requires(VIEW_ROSTER)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Choose the fiscal year; the last build; the build form; a running build's progress."""
    years = services.roster_fiscal_years()
    try:
        chosen = int(request.GET.get("fy", ""))
    except ValueError:
        chosen = None
    fiscal_year = chosen if chosen in years else _default_year(years)
    run = None
    job_id = request.GET.get("job")
    if job_id:
        found = jobs.get_run(job_id)
        if found is not None and found.kind == ROSTER_BUILD and jobs.can_view(request.user, found):
            run = found
    form = None
    if request.user.has_perm(BUILD_ROSTER) and years:
        form = BuildForm(years=years, initial={"fiscal_year": fiscal_year})
    return render(
        request,
        "screening/index.html",
        {
            "years": years,
            "fiscal_year": fiscal_year,
            "build": services.last_build(fiscal_year) if fiscal_year else None,
            "form": form,
            "run": run,
        },
    )


@requires(BUILD_ROSTER)
@require_POST
def build(request: HttpRequest) -> HttpResponse:
    """Start the roster build as a background job and show its progress on the index."""
    years = services.roster_fiscal_years()
    form = BuildForm(request.POST, years=years)
    if not form.is_valid():
        context = {"years": years, "fiscal_year": _default_year(years), "form": form,
                   "build": None, "run": None}  # fmt: skip
        return render(request, "screening/index.html", context, status=400)
    fy, as_of = form.cleaned_data["fiscal_year"], form.cleaned_data["as_of"]
    params = {"fiscal_year": fy, "as_of": as_of.isoformat() if as_of else None}
    run = jobs.start_job(ROSTER_BUILD, label_for(fy, as_of), params, request)
    return redirect(f"{reverse('screening:index')}?fy={fy}&job={run.pk}")


# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Cell:
    band: services.Band
    counts: Any


@dataclass(frozen=True)
class TableLine:
    row: Any
    first_of_method: bool
    method_rows: int
    cells: list[Cell]
    ranges: list[Cell]
    total: Any


def _lines(table: services.CountTable) -> list[TableLine]:
    per_method: dict[str, int] = {}
    for r in table.rows:
        per_method[r.method] = per_method.get(r.method, 0) + 1
    lines, seen = [], set()
    for r in table.rows:
        lines.append(
            TableLine(
                row=r,
                first_of_method=r.method not in seen,
                method_rows=per_method[r.method],
                cells=[Cell(b, r.band(b)) for b in table.bands],
                ranges=[Cell(b, r.band(b)) for b in table.ranges],
                total=r.total,
            )
        )
        seen.add(r.method)
    return lines


@requires(VIEW_ROSTER)
@require_GET
def counts(request: HttpRequest, fiscal_year: int) -> HttpResponse:
    """The 対象者数 table (domain.md §11 B-6): method × sex × 5-year band, from one GROUP BY."""
    _year_or_404(fiscal_year)
    table = services.count_table(fiscal_year)
    return render(
        request,
        "screening/counts.html",
        {
            "fiscal_year": fiscal_year,
            "table": table,
            "lines": _lines(table),
            "build": services.last_build(fiscal_year),
        },
    )


# ------------------------------------------------------------------------------ lists


def _list_heading(methods, method: str, query: services.RosterQuery | None) -> str:
    name = methods[method][0]
    parts = [name]
    if query is not None:
        if query.sex:
            parts.append({1: "男", 2: "女"}[query.sex])
        if query.band is not None:
            parts.append(query.band.label)
    return "　".join(parts)


def _list_context(request, fiscal_year, method, methods, form, export_form=None, page=None):
    query = form.query(fiscal_year, method) if form.is_bound and form.is_valid() else None
    if query is None and not form.is_bound:
        band = services.Band.parse(form.initial.get("band", ""))
        query = services.RosterQuery(fiscal_year, method, form.initial.get("sex", 0), band)
    return {
        "fiscal_year": fiscal_year,
        "method": method,
        "method_name": methods[method][0],
        "heading": _list_heading(methods, method, query),
        "form": form,
        "export_form": export_form,
        "page": page,
        "purpose_label": purpose_label(form.cleaned_data["purpose"]) if page else "",
    }


def _initial(request: HttpRequest) -> dict[str, Any]:
    """Cell and filters from the table's link (codes only), as the form's starting values."""
    initial: dict[str, Any] = {"eligible": "yes", "exclusion": "any"}
    sex = request.GET.get("sex", "")
    if sex in ("1", "2"):
        initial["sex"] = int(sex)
    band = request.GET.get("band", "")
    if services.Band.parse(band) is not None:
        initial["band"] = band
    if request.GET.get("eligible") in ("yes", "no", "all"):
        initial["eligible"] = request.GET["eligible"]
    if request.GET.get("exclusion") in ("any", "none", "excluded"):
        initial["exclusion"] = request.GET["exclusion"]
    return initial


@dataclass(frozen=True)
class ListRow:
    entry: Any
    ref: str
    flagged: bool


@requires(VIEW_ROSTER)
@require_http_methods(["GET", "POST"])
def roster_list(request: HttpRequest, fiscal_year: int, method: str) -> HttpResponse:
    """GET: the filters and the purpose question (nobody shown). POST: one page of people."""
    methods = _year_or_404(fiscal_year)
    if method not in methods or not methods[method][2]:
        raise Http404("この検査方法の名簿はありません")
    if request.method == "GET":
        form = ListForm(initial=_initial(request))
        context = _list_context(request, fiscal_year, method, methods, form)
        return render(request, "screening/list.html", context)
    form = ListForm(request.POST)
    if not form.is_valid():
        context = _list_context(request, fiscal_year, method, methods, form)
        return render(request, "screening/list.html", context, status=400)
    purpose = form.cleaned_data["purpose"]
    query = form.query(fiscal_year, method)
    page = services.list_for(request, query, purpose=purpose,
                             page=form.cleaned_data.get("page") or 1)  # fmt: skip
    atena_nos = [e.atena_no for e in page.entries]
    refs = residents.person_refs(request.session, atena_nos, purpose)
    flagged = residents.flagged_atena_nos() & set(atena_nos) if atena_nos else set()
    rows = [ListRow(e, refs[e.atena_no], e.atena_no in flagged) for e in page.entries]
    export_form = None
    if request.user.has_perm(EXPORT_ROSTER):
        export_form = ExportForm(initial={**form.cleaned_data, "band": query.band.code
                                          if query.band else "", "page": None})  # fmt: skip
    context = _list_context(request, fiscal_year, method, methods, form, export_form, page)
    context["rows"] = rows
    context["hidden"] = _hidden(form.cleaned_data, query)
    return render(request, "screening/list.html", context)


def _hidden(data: dict[str, Any], query: services.RosterQuery) -> list[tuple[str, Any]]:
    """The list's criteria as hidden fields, for the paging buttons (POSTed again)."""
    return [
        ("purpose", data["purpose"]),
        ("sex", query.sex),
        ("band", query.band.code if query.band else ""),
        ("eligible", query.eligible),
        ("reason", query.reason),
        ("exclusion", query.exclusion),
    ]


@requires(EXPORT_ROSTER)
@require_POST
@never_cache
def export(request: HttpRequest, fiscal_year: int, method: str) -> HttpResponse:
    """The list as CSV: purpose and a fresh code in the same POST; recorded with the row count."""
    methods = _year_or_404(fiscal_year)
    if method not in methods or not methods[method][2]:
        raise Http404("この検査方法の名簿はありません")
    form = ExportForm(request.POST)
    ok = form.is_valid()
    if ok and not stepup.verify(request, form.cleaned_data["code"], function=EXPORT_ROSTER):
        form.add_error("code", stepup.STEP_UP_ERROR)
        ok = False
    if not ok:
        list_form = ListForm(request.POST)
        list_form.is_valid()
        context = _list_context(request, fiscal_year, method, methods, list_form, form)
        context["export_refused"] = True
        return render(request, "screening/list.html", context, status=400)
    query = form.query(fiscal_year, method)
    result = services.export_csv(
        request, query, purpose=form.cleaned_data["purpose"], encoding=form.cleaned_data["encoding"]
    )
    response = StreamingHttpResponse(result.chunks, content_type=result.content_type)
    response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    return response


# ------------------------------------------------------------------------------ one person


def _person_or_404(request: HttpRequest, ref: str) -> tuple[str, str]:
    found = residents.person_of_ref(request.session, ref)
    if not found:
        raise Http404(NOT_FOUND)
    return found


@requires(VIEW_ROSTER)
@require_GET
def person_current(request: HttpRequest, ref: str) -> HttpResponse:
    """From the resident's page: the explanation for this fiscal year (or the latest one)."""
    _person_or_404(request, ref)
    years = services.roster_fiscal_years()
    fy = _default_year(years)
    if fy is None:
        raise Http404("検診事業の定義がありません")
    return redirect("screening:person", fiscal_year=fy, ref=ref)


@dataclass(frozen=True)
class MethodLine:
    x: Any  # MethodExplanation
    first_of_programme: bool
    programme_methods: int


def _override_ids(method: str) -> str:
    """Element ids of one method's override form (a page has one form per method)."""
    safe = "".join(c for c in method if c.isascii() and (c.isalnum() or c == "_"))[:30]
    return f"id_{safe}_%s"


def _method_lines(methods) -> list[MethodLine]:
    sizes: dict[str, int] = {}
    for x in methods:
        sizes[x.programme] = sizes.get(x.programme, 0) + 1
    out, seen = [], set()
    for x in methods:
        out.append(MethodLine(x, x.programme not in seen, sizes[x.programme]))
        seen.add(x.programme)
    return out


def _person_page(
    request: HttpRequest,
    fiscal_year: int,
    ref: str,
    atena_no: str,
    purpose: str,
    *,
    forms_with_errors: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    result = services.explain_for(request, fiscal_year, atena_no, purpose=purpose)
    who = residents.names_of([atena_no]).get(atena_no)
    errors = forms_with_errors or {}
    programmes = []
    seen = set()
    for x in result.methods:
        if x.programme in seen:
            continue
        seen.add(x.programme)
        key = f"exclude:{x.programme}"
        programmes.append(
            (x, errors.get(key) or ExclusionForm(initial={"programme": x.programme}), key in errors)
        )
    override_forms = {
        x.method: errors.get(f"override:{x.method}")
        or OverrideForm(initial={"method": x.method}, auto_id=_override_ids(x.method))
        for x in result.methods
        if x.entry is not None
    }
    lines = [
        (line, override_forms.get(line.x.method), f"override:{line.x.method}" in errors)
        for line in _method_lines(result.methods)
    ]
    return render(
        request,
        "screening/person.html",
        {
            "fiscal_year": fiscal_year,
            "years": services.roster_fiscal_years(),
            "ref": ref,
            "who": who,
            "result": result,
            "lines": lines,
            "programmes": programmes,
            "purpose_label": purpose_label(purpose),
            "purpose_form": PurposeForm(),
            "flagged": atena_no in residents.flagged_atena_nos(),
        },
        status=status,
    )


@requires(VIEW_ROSTER)
@require_http_methods(["GET", "POST"])
def person(request: HttpRequest, fiscal_year: int, ref: str) -> HttpResponse:
    """Why this person is (not) eligible for each method: recomputed and as stored.

    A reference without a purpose asks for one first; POST changes the purpose.
    """
    _year_or_404(fiscal_year)
    atena_no, purpose = _person_or_404(request, ref)
    if request.method == "POST":
        form = PurposeForm(request.POST)
        if form.is_valid():
            residents.person_ref(request.session, atena_no, form.cleaned_data["purpose"])
            return redirect("screening:person", fiscal_year=fiscal_year, ref=ref)
        context = {"form": form, "ref": ref, "fiscal_year": fiscal_year}
        return render(request, "screening/purpose.html", context, status=400)
    if not purpose:
        context = {"form": PurposeForm(), "ref": ref, "fiscal_year": fiscal_year}
        return render(request, "screening/purpose.html", context)
    return _person_page(request, fiscal_year, ref, atena_no, purpose)


def _after_change(request, fiscal_year, ref, atena_no, purpose, key, form, exc=None):
    if exc is not None:
        form.add_error(None, str(exc))
    # 200, not 400: the page names the person, and error responses are scanned as error pages.
    return _person_page(request, fiscal_year, ref, atena_no, purpose,
                        forms_with_errors={key: form})  # fmt: skip


@requires(EXCLUDE)
@require_POST
def exclude(request: HttpRequest, fiscal_year: int, ref: str) -> HttpResponse:
    """受診不要の登録・変更・取消 for one programme (the person stays in the roster)."""
    _year_or_404(fiscal_year)
    atena_no, purpose = _person_or_404(request, ref)
    if not purpose:
        return redirect("screening:person", fiscal_year=fiscal_year, ref=ref)
    form = ExclusionForm(request.POST)
    key = f"exclude:{request.POST.get('programme', '')}"
    if not form.is_valid():
        return _after_change(request, fiscal_year, ref, atena_no, purpose, key, form)
    d = form.cleaned_data
    try:
        if d["remove"]:
            done = services.remove_exclusion(
                request, fiscal_year, d["programme"], atena_no, d["note"], purpose=purpose
            )
            text = "受診不要を取り消しました。" if done else "受診不要は登録されていません。"
        else:
            info = services.set_exclusion(request, fiscal_year, d["programme"], atena_no,
                                          d["reason"], d["note"], purpose=purpose)  # fmt: skip
            text = f"受診不要（{info.reason_label}）を登録しました。"
    except services.RosterActionError as exc:
        return _after_change(request, fiscal_year, ref, atena_no, purpose, key, form, exc)
    messages.success(request, text)
    return redirect("screening:person", fiscal_year=fiscal_year, ref=ref)


@requires(OVERRIDE)
@require_POST
def override(request: HttpRequest, fiscal_year: int, ref: str) -> HttpResponse:
    """職員の判断: make a person (not) eligible for a method by hand, with a fresh code."""
    _year_or_404(fiscal_year)
    atena_no, purpose = _person_or_404(request, ref)
    if not purpose:
        return redirect("screening:person", fiscal_year=fiscal_year, ref=ref)
    method = request.POST.get("method", "")
    form = OverrideForm(request.POST, auto_id=_override_ids(method))
    key = f"override:{method}"
    if not form.is_valid():
        return _after_change(request, fiscal_year, ref, atena_no, purpose, key, form)
    d = form.cleaned_data
    if not stepup.verify(request, d["code"], function=OVERRIDE):
        form.add_error("code", stepup.STEP_UP_ERROR)
        return _after_change(request, fiscal_year, ref, atena_no, purpose, key, form)
    try:
        if d["decision"] == "clear":
            services.clear_override(request, fiscal_year, d["method"], atena_no, d["note"],
                                    purpose=purpose)  # fmt: skip
            text = "職員の判断を取り消し、規則による判定に戻しました。"
        else:
            eligible = d["decision"] == "yes"
            services.override(request, fiscal_year, d["method"], atena_no, eligible, d["note"],
                              purpose=purpose)  # fmt: skip
            text = f"職員の判断で「{'対象' if eligible else '対象外'}」にしました。"
    except services.RosterActionError as exc:
        return _after_change(request, fiscal_year, ref, atena_no, purpose, key, form, exc)
    messages.success(request, text)
    return redirect("screening:person", fiscal_year=fiscal_year, ref=ref)
