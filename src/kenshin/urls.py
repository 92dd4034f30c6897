"""Root URL map: each app mounts its own urls.py. Every view declares its access
(core.permissions); the gate middleware refuses any that does not."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("kenshin.accounts.urls")),
    path("audit/", include("kenshin.audit.urls")),
    path("residents/", include("kenshin.residents.urls")),
    path("", include("kenshin.web.urls")),
]
