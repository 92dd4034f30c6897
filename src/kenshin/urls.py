"""Root URL map: each app mounts its own urls.py. Every view declares its access
(core.permissions); the gate middleware refuses any that does not."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("kenshin.accounts.urls")),
    path("audit/", include("kenshin.audit.urls")),
    path("residents/", include("kenshin.residents.urls")),
    path("programs/", include("kenshin.programs.urls")),
    path("roster/", include("kenshin.screening.urls")),
    # Exam records: worklists, batch entry of paper 受診票, the person's ledger.
    path("exams/", include("kenshin.screening.urls_exams")),
    # Result files from clinics: upload, check, match, preview, commit.
    path("intake/", include("kenshin.intake.urls")),
    # 統合宛名 duplicates and merges: the health system's side of the 番号連携サーバ.
    path("linkage/", include("kenshin.residents.urls_linkage")),
    path("", include("kenshin.web.urls")),
]
