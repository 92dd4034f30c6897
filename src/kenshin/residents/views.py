"""Staff UI for the register: search and the person page, always with a purpose (ACL-04).

Search terms are personal data, so the form is POSTed (never in a URL, never in access logs),
and result links carry a random per-session reference instead of the 宛名番号. Each reference
remembers the 利用目的 chosen for the search, so that opening the person records why (LOG-01);
a reference without a purpose leads to a purpose question, never to the record.

A list is itself a disclosure: the search results show name, birth date and address, the
household list names the family. So every person shown in a list gets a listing event of their
own (Event.SEARCH with the person as subject, detail {"listed": true}) — "who looked at this
person" then includes everyone who saw them in a list, and a flagged person shown in a list is a
finding in the access review. Flagged people are marked 閲覧注意 in the lists too.

個人番号 (issue 4): the person page shows the 団体内統合宛名番号 and never the 個人番号. A POST
button fetches the masked number from the 番号連携サーバ on demand (audited here, logged there);
a user with linkage.reveal_mynumber can reveal it in full once, with a purpose and a fresh code,
on a page marked shows_mynumber (15-minute idle limit) and never cached.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from kenshin.accounts import stepup
from kenshin.core import audit
from kenshin.core.permissions import requires
from kenshin.core.purposes import label as purpose_label
from kenshin.linkage import services as linkage
from kenshin.linkage.contract import LinkageError
from kenshin.residents import services
from kenshin.residents.forms import FlagForm, PurposeForm, ResidentSearchForm, RevealForm

NOT_FOUND = "検索結果から開いてください"


def _ref_for(request: HttpRequest, atena_no: str, purpose: str) -> str:
    """A random token standing for one person and the purpose (services.person_ref)."""
    return services.person_ref(request.session, atena_no, purpose)


def _lookup(request: HttpRequest, ref: str) -> tuple[str, str]:
    found = services.person_of_ref(request.session, ref)
    if not found:
        raise Http404(NOT_FOUND)
    return found


def _record_listed(
    request: HttpRequest, atena_nos: Iterable[str], purpose: str, function: str
) -> None:
    """One listing event per person shown in a list, under the purpose in use.

    Event.SEARCH, not VIEW: the person appeared in a list, the record was not opened (the
    access review counts openings for bursts). The detail only says "listed" — no personal data.
    Called inside the request's transaction with the summary event, so a list is recorded whole
    or not at all (one commit for up to 51 appends).
    """
    for atena_no in atena_nos:
        audit.record(
            audit.Event.SEARCH, request, audit.Subject.resident(atena_no), purpose,
            function=function, listed=True,
        )  # fmt: skip


def _flagged_among(atena_nos: set[str]) -> set[str]:
    """Which of these people are flagged (閲覧注意) today — one query for the whole list."""
    return services.flagged_atena_nos() & atena_nos if atena_nos else set()


def criteria_kind(data: dict[str, str]) -> str:
    """Which kind of criteria a search used ("kana+birth", "atena_no" …) — never the terms.

    Follows services.search_residents' precedence: 宛名番号, then 世帯番号, then names.
    """
    if (data.get("atena_no") or "").strip():
        return "atena_no"
    if (data.get("household_no") or "").strip():
        return "household_no"
    used = [key for key, field in (("kana", "kana"), ("name", "name"), ("birth", "birth_date"))
            if (data.get(field) or "").strip()]  # fmt: skip
    return "+".join(used) or "none"


@requires("residents.search")
@require_http_methods(["GET", "POST"])
def search(request: HttpRequest) -> HttpResponse:
    """Search form and results (POST). Each search is audited with its purpose and hit count."""
    form = ResidentSearchForm(request.POST or None)
    results = None
    more = False
    error = ""
    if request.method == "POST" and form.is_valid():
        purpose = form.cleaned_data["purpose"]
        by = criteria_kind(form.criteria())
        try:
            found = services.search_residents(**form.criteria(), limit=services.SEARCH_LIMIT + 1)
        except ValueError as exc:  # SearchRejected or an unreadable date
            error = str(exc)
            audit.record(
                audit.Event.SEARCH, request, None, purpose,
                function="residents.search", result=audit.Result.FAILURE, by=by, hits=0,
            )  # fmt: skip
        else:
            more = len(found) > services.SEARCH_LIMIT
            shown = found[: services.SEARCH_LIMIT]
            with transaction.atomic():
                audit.record(
                    audit.Event.SEARCH, request, None, purpose,
                    function="residents.search", by=by, hits=len(shown), more=more,
                )  # fmt: skip
                _record_listed(request, [r.atena_no for r in shown], purpose, "residents.search")
            flagged = _flagged_among({r.atena_no for r in shown})
            results = [
                (r, _ref_for(request, r.atena_no, purpose), r.atena_no in flagged) for r in shown
            ]
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


@requires("residents.view")
@require_http_methods(["GET", "POST"])
def person(request: HttpRequest, ref: str) -> HttpResponse:
    """One person's record, opened for the purpose carried by the reference.

    GET shows the record and records Event.VIEW with the 宛名番号 and the purpose, and a listing
    event for each other member of the household shown (the person themselves has the VIEW);
    a reference without a purpose shows only the purpose question. POST changes the purpose,
    then shows the record again (a new VIEW under the new purpose).
    """
    atena_no, purpose = _lookup(request, ref)
    if request.method == "POST":
        form = PurposeForm(request.POST)
        if form.is_valid():
            _ref_for(request, atena_no, form.cleaned_data["purpose"])
            return redirect("residents:person", ref=ref)
        return render(request, "residents/purpose.html", {"form": form, "ref": ref}, status=400)
    if not purpose:
        return render(request, "residents/purpose.html", {"form": PurposeForm(), "ref": ref})
    record = services.get_resident(atena_no)
    if record is None:
        raise Http404(NOT_FOUND)
    members = services.household_members(record.household_no)
    with transaction.atomic():
        audit.record(audit.Event.VIEW, request, atena_no, purpose, function="residents.view")
        _record_listed(
            request,
            [m.atena_no for m in members if m.atena_no != atena_no],
            purpose,
            "residents.view",
        )
    flagged = _flagged_among({m.atena_no for m in members})
    household = [
        (m, _ref_for(request, m.atena_no, purpose), m.atena_no in flagged) for m in members
    ]
    return render(
        request,
        "residents/person.html",
        {
            "r": record,
            "ref": ref,
            "purpose": purpose,
            "purpose_label": purpose_label(purpose),
            "purpose_form": PurposeForm(),
            "flags": services.flags_of(atena_no),
            "household": household,
            "history": services.history(record.atena_no),
            "categories": services.fiscal_categories(record.atena_no),
            "unified_atena_no": services.unified_atena_no_of(atena_no),
        },
    )


VIEW_MYNUMBER = "linkage.view_mynumber"
REVEAL_MYNUMBER = "linkage.reveal_mynumber"
NOT_LINKED = (
    "この方にはまだ統合宛名番号がありません（番号連携サーバに未登録）。"
    "システム管理者に「kenshin residents link」の実行を依頼してください。"
)


def _number_context(request: HttpRequest, ref: str) -> tuple[str, str, str | None, dict]:
    """The person behind a reference, for the 個人番号 pages: 宛名番号, purpose, 統合宛名番号."""
    atena_no, purpose = _lookup(request, ref)
    record = services.get_resident(atena_no) if purpose else None
    if record is None:
        raise Http404(NOT_FOUND)
    context = {"r": record, "ref": ref, "purpose_label": purpose_label(purpose)}
    return atena_no, purpose, services.unified_atena_no_of(atena_no), context


@requires(VIEW_MYNUMBER)
@require_POST
def my_number(request: HttpRequest, ref: str) -> HttpResponse:
    """The masked 個人番号 (``**** **** 3214``), fetched from the linkage server on request.

    Recorded here (Event.VIEW, the person, the purpose of the open record) and by the linkage
    server in its own log. Users who may reveal get the reveal form on the same page.
    """
    atena_no, purpose, unified, context = _number_context(request, ref)
    masked = None
    error = ""
    if unified is None:
        error = NOT_LINKED
    else:
        try:
            masked = services.masked_my_number(unified, actor=request.user.get_username())
        except LinkageError as exc:
            error = f"番号連携サーバから取得できませんでした（{exc}）"
    audit.record(
        audit.Event.VIEW, request, atena_no, purpose, function=VIEW_MYNUMBER,
        result=audit.Result.FAILURE if error else audit.Result.SUCCESS, masked=True,
    )  # fmt: skip
    context.update(
        unified_atena_no=unified,
        masked=masked,
        error=error,
        reveal_form=RevealForm() if request.user.has_perm(REVEAL_MYNUMBER) else None,
    )
    return render(request, "residents/mynumber.html", context)


@requires(REVEAL_MYNUMBER, shows_mynumber=True)
@require_POST
@never_cache
def reveal_my_number(request: HttpRequest, ref: str) -> HttpResponse:
    """The 個人番号 in full, once: purpose and a fresh TOTP code in the same POST.

    A wrong code is refused and recorded (the step-up failure, and a denied reveal of this
    person). Refusals re-render the form with status 200: the page names the person, and an
    error status would put it among the error pages the leak guard scans. The number is only
    in this response's body — never in a URL, a title, the session or a log — and the page is
    not cached; to see it again, ask again.
    """
    atena_no, _purpose, unified, context = _number_context(request, ref)
    form = RevealForm(request.POST)
    context.update(unified_atena_no=unified, masked=None, error="", reveal_form=form)
    if unified is None:
        context["error"] = NOT_LINKED
        return render(request, "residents/mynumber.html", context)
    if not form.is_valid():
        return render(request, "residents/mynumber.html", context)
    purpose = form.cleaned_data["purpose"]
    if not stepup.verify(request, form.cleaned_data["code"], function=REVEAL_MYNUMBER):
        audit.record(
            audit.Event.VIEW, request, atena_no, purpose,
            function=REVEAL_MYNUMBER, result=audit.Result.DENIED, reason="step_up",
        )  # fmt: skip
        form.add_error("code", stepup.STEP_UP_ERROR)
        return render(request, "residents/mynumber.html", context)
    try:
        number = services.reveal_my_number(
            unified, actor=request.user.get_username(), purpose=purpose
        )
    except LinkageError as exc:
        audit.record(
            audit.Event.VIEW, request, atena_no, purpose,
            function=REVEAL_MYNUMBER, result=audit.Result.FAILURE,
        )  # fmt: skip
        context["error"] = f"番号連携サーバから取得できませんでした（{exc}）"
        return render(request, "residents/mynumber.html", context)
    audit.record(
        audit.Event.VIEW, request, atena_no, purpose,
        function=REVEAL_MYNUMBER, revealed=number is not None,
    )  # fmt: skip
    grouped = linkage.group_my_number(number) if number else None
    context.update(number=grouped, reveal_purpose=purpose_label(purpose))
    return render(request, "residents/reveal.html", context)


@requires("residents.flag")
@require_http_methods(["GET", "POST"])
def flags(request: HttpRequest) -> HttpResponse:
    """閲覧注意の住民の設定 (課長). The list is not shown: it would be a list of DV victims."""
    form = FlagForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.set_flag(
                request, data["atena_no"], data["kind"], data["valid_from"], data["note"],
                valid_to=data["valid_to"],
            )  # fmt: skip
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "閲覧注意を設定しました。")
            return redirect("residents:flags")
    return render(request, "residents/flags.html", {"form": form})
