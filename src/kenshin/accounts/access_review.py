"""The role-by-role access review (ACL-06): who holds what, since when, granted by whom.

Why a periodic review: grants outlive the reason they were made (a transfer, a covered
colleague, an ended contract). The 課長 reads, per role, every holder with scope, dates, who
granted it, last sign-in and whether the account is still active; accounts with no role; and
grants ending within 30 days. Three queries, whatever the number of users.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Q

from kenshin.accounts.models import Role, RoleAssignment, ScopeKind
from kenshin.core import clock
from kenshin.core.csvfile import csv_cell as _csv_cell

ENDING_WITHIN = timedelta(days=30)


@dataclass
class Holder:
    assignment_id: int
    user_id: int
    username: str
    display_name: str
    scope: str
    valid_from: date
    valid_to: date | None
    expires_at: datetime | None
    granted_by: str
    last_login: datetime | None
    account_active: bool
    started: bool


@dataclass
class RoleSection:
    code: str
    name: str
    is_emergency: bool
    holders: list[Holder] = field(default_factory=list)


@dataclass
class Report:
    on: date
    roles: list[RoleSection]
    without_role: list[tuple[int, str, str, datetime | None, bool]]
    ending_soon: list[tuple[str, Holder]]


def scope_label(kind: str, value: str) -> str:
    """ "全体" or "医療機関:3410000001"."""
    if not kind:
        return ScopeKind.ALL.label
    return f"{ScopeKind(kind).label}:{value}" if kind in ScopeKind.values else f"{kind}:{value}"


def build() -> Report:
    """The report as of now: current and future grants (not ended, not revoked, not expired)."""
    today = clock.today()
    now = clock.now()
    current = (
        RoleAssignment.objects.filter(revoked_at__isnull=True)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=today))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("user", "role", "granted_by")
        .order_by("role_id", "user__username", "valid_from")
    )
    sections = {r.pk: RoleSection(r.code, r.name, r.is_emergency) for r in Role.objects.all()}
    ending: list[tuple[str, Holder]] = []
    held_now: set[int] = set()
    for a in current:
        u = a.user
        holder = Holder(
            assignment_id=a.pk,
            user_id=u.pk,
            username=u.username,
            display_name=u.display_name,
            scope=scope_label(a.scope_kind, a.scope_value),
            valid_from=a.valid_from,
            valid_to=a.valid_to,
            expires_at=a.expires_at,
            granted_by=a.granted_by.username if a.granted_by else "（初期設定）",
            last_login=u.last_login,
            account_active=u.is_active,
            started=a.valid_from <= today,
        )
        sections[a.role_id].holders.append(holder)
        if holder.started:
            held_now.add(u.pk)
        if (a.valid_to and a.valid_to <= today + ENDING_WITHIN) or (
            a.expires_at and a.expires_at <= now + ENDING_WITHIN
        ):
            ending.append((sections[a.role_id].name, holder))
    without = [
        (u.pk, u.username, u.display_name, u.last_login, u.is_active)
        for u in get_user_model()
        .objects.exclude(pk__in=held_now)
        .order_by("username")
        .only("username", "display_name", "last_login", "is_active")
    ]
    ending.sort(key=lambda item: (item[1].valid_to or item[1].expires_at.date(), item[1].username))
    return Report(today, list(sections.values()), without, ending)


def csv_cell(value: object) -> str:
    """A cell that a spreadsheet will show, not evaluate (CSV formula injection, OWASP)."""
    return _csv_cell(clock_text(value) if isinstance(value, datetime) else value)


def clock_text(moment: datetime) -> str:
    return moment.astimezone(clock.JST).strftime("%Y-%m-%d %H:%M")


CSV_HEADER = [
    "ロールコード",
    "ロール",
    "利用者ID",
    "ユーザー名",
    "表示名",
    "範囲",
    "開始日",
    "終了日",
    "失効日時",
    "付与者",
    "最終ログイン",
    "アカウント",
]


def to_csv(report: Report) -> str:
    """The report as CSV (UTF-8 with BOM for Excel), one row per grant, then users with none."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for section in report.roles:
        for h in section.holders:
            writer.writerow(
                [
                    csv_cell(v)
                    for v in (
                        section.code,
                        section.name,
                        h.user_id,
                        h.username,
                        h.display_name,
                        h.scope,
                        h.valid_from.isoformat(),
                        h.valid_to.isoformat() if h.valid_to else "",
                        h.expires_at,
                        h.granted_by,
                        h.last_login,
                        "有効" if h.account_active else "無効",
                    )
                ]
            )
    for user_id, username, display_name, last_login, active in report.without_role:
        writer.writerow(
            [
                csv_cell(v)
                for v in (
                    "",
                    "（ロールなし）",
                    user_id,
                    username,
                    display_name,
                    "",
                    "",
                    "",
                    "",
                    "",
                    last_login,
                    "有効" if active else "無効",
                )
            ]
        )
    return out.getvalue()


def row_count(report: Report) -> int:
    return sum(len(s.holders) for s in report.roles) + len(report.without_role)
