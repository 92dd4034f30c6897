"""Why a person is (not) eligible: every method's decision, recomputed and as stored.

The reference statement of the rules is :func:`kenshin.programs.rules.decide`; this module hands
it the facts of one person (:mod:`kenshin.screening.facts`, the same predicates the set-based
build uses) and sets the answer beside the roster entry the build stored, so staff see at once
whether the stored row still agrees — after a 異動 since the build, a 受診 entered later, or a
staff override, it may not, and the page says which.

Reading this is reading personal data: the callers (the person page, ``kenshin roster
explain``) record the read with its purpose through :func:`kenshin.screening.services.
explain_for`; :func:`explain` itself records nothing (tests and other services use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.conf import settings

from kenshin.core.fiscal import fiscal_year_bounds, fy_end_age
from kenshin.programs import services as programs
from kenshin.programs.catalogue import EXEMPTIONS, SETTINGS, Method
from kenshin.programs.rules import OVERRIDE_REASON, REASONS, Decision, decide, exemption
from kenshin.programs.rules import copay as copay_of
from kenshin.screening.actions import ExclusionInfo, exclusion_info
from kenshin.screening.facts import history_of, person_facts
from kenshin.screening.models import Exclusion, ExclusionReason, RosterBuild, RosterEntry

SEX_LABELS = {1: "男", 2: "女"}
STATUS_LABELS = {
    "resident": "住民",
    "moved_out": "転出",
    "deceased": "死亡",
    "non_resident": "住登外",
    None: "基準日に記録なし",
}
EXCLUSION_LABELS = dict(ExclusionReason.choices)


def reason_label(code: str) -> str:
    return REASONS.get(code, code)


def exemption_label(code: str) -> str:
    return EXEMPTIONS.get(code, code) if code else "なし"


@dataclass(frozen=True)
class StoredEntry:
    """The roster entry as the last build (and staff) left it."""

    eligible: bool
    reason: str
    reason_label: str
    computed_eligible: bool
    computed_reason: str
    computed_reason_label: str
    override_eligible: bool | None
    override_note: str
    override_by: str
    override_at: object
    exclusion: str
    exclusion_label: str
    exemption: str
    exemption_label: str
    exemption_early: str
    exemption_early_label: str
    coupon_no: str
    age: int


@dataclass(frozen=True)
class Copay:
    """What the person pays in one setting (個別/集団), from July and in April–June."""

    setting: str
    setting_label: str
    amount: int
    amount_early: int | None  # None: the same in April–June


@dataclass(frozen=True)
class MethodExplanation:
    programme: str
    programme_name: str
    method: str
    method_name: str
    rostered: bool
    decision: Decision
    label: str
    entry: StoredEntry | None
    agrees: bool | None  # stored computed decision == recomputed (None: no entry)
    copays: tuple[Copay, ...]
    exclusion: ExclusionInfo | None

    @property
    def eligible(self) -> bool:
        """The decision that counts: the stored one (overrides included), else the rules'."""
        return self.entry.eligible if self.entry is not None else self.decision.eligible


@dataclass(frozen=True)
class Explanation:
    """One person's explanation for a fiscal year (the header and one item per method)."""

    fiscal_year: int
    atena_no: str
    as_of: date
    catalogue_version: int
    found: bool  # the 宛名番号 is in the register at all
    sex: int | None = None
    sex_label: str = ""
    fy_end_age: int | None = None
    status: str | None = None
    status_label: str = ""
    build_id: int | None = None
    build_as_of: date | None = None
    methods: tuple[MethodExplanation, ...] = field(default_factory=tuple)


def default_as_of(fiscal_year: int) -> date:
    """The base date of the last build of the year, else 1 April (what a build would use)."""
    last = last_build(fiscal_year)
    return last.as_of if last is not None else fiscal_year_bounds(fiscal_year)[0]


def last_build(fiscal_year: int) -> RosterBuild | None:
    return (
        RosterBuild.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE,
            fiscal_year=fiscal_year,
            finished_at__isnull=False,
        )
        .order_by("-pk")
        .first()
    )


def _stored(e: RosterEntry) -> StoredEntry:
    return StoredEntry(
        eligible=e.eligible,
        reason=e.reason,
        reason_label=reason_label(e.reason),
        computed_eligible=e.computed_eligible,
        computed_reason=e.computed_reason,
        computed_reason_label=reason_label(e.computed_reason),
        override_eligible=e.override_eligible,
        override_note=e.override_note,
        override_by=e.override_by,
        override_at=e.override_at,
        exclusion=e.exclusion,
        exclusion_label=EXCLUSION_LABELS.get(e.exclusion, e.exclusion),
        exemption=e.exemption,
        exemption_label=exemption_label(e.exemption),
        exemption_early=e.exemption_early,
        exemption_early_label=exemption_label(e.exemption_early),
        coupon_no=e.coupon_no,
        age=e.age,
    )


def _copays(method: Method, *, eligible: bool, exemption_code: str, early_code: str):
    out = []
    for setting in method.settings:
        amount = copay_of(method, setting, eligible=eligible, exemption_code=exemption_code)
        early = copay_of(method, setting, eligible=eligible, exemption_code=early_code)
        out.append(Copay(setting, SETTINGS[setting], amount, early if early != amount else None))
    return tuple(out)


def explain_person(fiscal_year: int, atena_no: str, as_of: date | None = None) -> Explanation:
    """Every method's decision for one person, with the stored entry beside it.

    A handful of queries whatever the catalogue's size: the register facts, the exam history,
    the person's roster entries and 受診不要 of the year, the last build.
    """
    version, catalogue = programs.catalogue_version(fiscal_year)
    build = last_build(fiscal_year)
    base = as_of or (build.as_of if build is not None else fiscal_year_bounds(fiscal_year)[0])
    header = {
        "fiscal_year": fiscal_year,
        "atena_no": atena_no,
        "as_of": base,
        "catalogue_version": version,
        "build_id": build.pk if build else None,
        "build_as_of": build.as_of if build else None,
    }
    facts = person_facts(atena_no, fiscal_year, base)
    if facts is None:
        return Explanation(found=False, **header)
    history, _smoking = history_of(atena_no, fiscal_year, base)
    mc = settings.MUNICIPALITY_CODE
    entries = {
        e.method: e
        # method IN (…): one probe per method into the roster's key, which is the
        # only index the roster carries (a second one cost ~25% of every build).
        for e in RosterEntry.objects.filter(
            municipality_code=mc,
            fiscal_year=fiscal_year,
            method__in=[m.code for m in catalogue.methods],
            atena_no=atena_no,
        )
    }
    exclusions = {
        x.programme: exclusion_info(x)
        for x in Exclusion.objects.filter(
            municipality_code=mc, fiscal_year=fiscal_year, atena_no=atena_no
        )
    }
    items = []
    for programme in catalogue.programmes:
        for method in programme.methods:
            decision = decide(catalogue, method, facts, history, base)
            row = entries.get(method.code)
            stored = _stored(row) if row is not None else None
            if stored is not None:
                eligible = stored.eligible
                code, early = stored.exemption, stored.exemption_early
                agrees = (stored.computed_eligible, stored.computed_reason) == (
                    decision.eligible,
                    decision.reason,
                )
            else:
                eligible = decision.eligible
                has_coupon = decision.reason == "coupon"
                code = exemption(catalogue, facts, has_coupon=has_coupon, early=False)
                early = exemption(catalogue, facts, has_coupon=has_coupon, early=True)
                agrees = None
            items.append(
                MethodExplanation(
                    programme=programme.code,
                    programme_name=programme.name,
                    method=method.code,
                    method_name=method.name,
                    rostered=method.rostered,
                    decision=decision,
                    label=decision.label,
                    entry=stored,
                    agrees=agrees,
                    copays=_copays(
                        method, eligible=eligible, exemption_code=code, early_code=early
                    ),
                    exclusion=exclusions.get(programme.code),
                )
            )
    return Explanation(
        found=True,
        sex=facts.sex,
        sex_label=SEX_LABELS.get(facts.sex, str(facts.sex)),
        fy_end_age=fy_end_age(facts.birth_date, fiscal_year),
        status=facts.status,
        status_label=STATUS_LABELS.get(facts.status, facts.status or ""),
        methods=tuple(items),
        **header,
    )


def explain(fiscal_year: int, atena_no: str, as_of: date | None = None) -> list[MethodExplanation]:
    """The per-method explanations of :func:`explain_person` (empty if never registered)."""
    return list(explain_person(fiscal_year, atena_no, as_of).methods)


def describe(x: MethodExplanation) -> str:
    """One line of plain text for a method (the CLI), with the rule's code and label."""
    mark = "○ 対象" if x.eligible else "× 対象外"
    text = f"{x.method_name}: {mark}  [{x.decision.reason}] {x.label}"
    if x.entry is not None and x.entry.reason == OVERRIDE_REASON:
        text += f"（職員の判断: {'対象' if x.entry.override_eligible else '対象外'}）"
    return text
