from django.urls import path

from kenshin.residents import views

app_name = "residents"
urlpatterns = [
    path("", views.search, name="search"),
    path("view/<str:ref>/", views.person, name="person"),
    path("flags/", views.flags, name="flags"),
]
