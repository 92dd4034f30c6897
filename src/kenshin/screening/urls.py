"""URLs of the screening app (mounted at /roster/). Only codes travel in paths and queries —
fiscal year, method, sex, age band, a job id, residents' random person references — never a
宛名番号 or a name."""

from django.urls import path

from kenshin.screening import views

app_name = "screening"
urlpatterns = [
    path("", views.index, name="index"),
    path("build/", views.build, name="build"),
    path("person/<str:ref>/", views.person_current, name="person_current"),
    path("<int:fiscal_year>/", views.counts, name="counts"),
    path("<int:fiscal_year>/<str:method>/list/", views.roster_list, name="list"),
    path("<int:fiscal_year>/<str:method>/export/", views.export, name="export"),
    path("<int:fiscal_year>/person/<str:ref>/", views.person, name="person"),
    path("<int:fiscal_year>/person/<str:ref>/exclude/", views.exclude, name="exclude"),
    path("<int:fiscal_year>/person/<str:ref>/override/", views.override, name="override"),
]
