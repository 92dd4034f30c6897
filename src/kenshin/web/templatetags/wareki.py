"""Template filters for Japanese dates."""

from datetime import date

from django import template

from kenshin.core.wareki import to_wareki

register = template.Library()


@register.filter(name="wareki")
def wareki_filter(value: date | None) -> str:
    """令和7年4月1日 style; empty for no date."""
    return to_wareki(value) if value else ""


@register.filter
def fiscal_year_label(fy: int) -> str:
    """2025 → 令和7年度 (2025年度)."""
    era = to_wareki(date(fy, 4, 1))
    return f"{era.split('年')[0]}年度（{fy}年度）"
