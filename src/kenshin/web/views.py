"""The home page: where each day's work starts."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kenshin.core import clock
from kenshin.residents import services as residents


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Counts of the register and the menu."""
    return render(
        request,
        "web/home.html",
        {"counts": residents.count_current(), "today": clock.today()},
    )
