"""URLs of the programs app (mounted at /programs/)."""

from django.urls import path

from kenshin.programs import views

app_name = "programs"
urlpatterns = [
    path("", views.index, name="index"),
    path("<int:fiscal_year>/", views.year, name="year"),
    path("<int:fiscal_year>/versions/<int:version>/", views.version, name="version"),
    path("<int:fiscal_year>/export/", views.export, name="export"),
    path("<int:fiscal_year>/copy/", views.copy_forward, name="copy_forward"),
    path("<int:fiscal_year>/methods/<str:method>/adjust/", views.adjust, name="adjust"),
]
