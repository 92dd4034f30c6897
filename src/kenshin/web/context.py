"""Template context shared by every page."""

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    """Municipality name and demo flag for the header."""
    return {
        "municipality_name": settings.MUNICIPALITY_NAME,
        "demo_mode": settings.DEMO_MODE,
    }
