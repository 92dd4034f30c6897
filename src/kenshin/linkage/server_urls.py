"""URLs of the 番号連携サーバ process: the API and a health check, nothing else."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET

from kenshin.linkage.api import api

logger = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the linkage database answers (for the service manager and load balancer)."""
    try:
        with connections["linkage"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("番号連携データベースに接続できません: %s", type(exc).__name__)
        response = JsonResponse({"status": "unavailable"}, status=503)
    else:
        response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("api/linkage/v1/", api.urls),
    path("healthz", healthz, name="healthz"),
]
