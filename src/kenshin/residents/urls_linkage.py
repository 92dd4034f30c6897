"""Staff pages for 統合宛名 duplicates and merges, mounted at /linkage/ (see linkage_views)."""

from django.urls import path

from kenshin.residents import linkage_views as views

app_name = "linkage"
urlpatterns = [
    path("", views.candidates, name="candidates"),
    path("candidates/<int:candidate_id>/", views.candidate, name="candidate"),
    path("merges/", views.merges, name="merges"),
    path("merges/<int:merge_id>/", views.merge, name="merge"),
]
