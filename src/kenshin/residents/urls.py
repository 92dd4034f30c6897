from django.urls import path

from kenshin.residents import views

app_name = "residents"
urlpatterns = [
    path("", views.search, name="search"),
    path("view/<str:ref>/", views.person, name="person"),
    path("view/<str:ref>/mynumber/", views.my_number, name="my_number"),
    path("view/<str:ref>/mynumber/reveal/", views.reveal_my_number, name="reveal_my_number"),
    path("flags/", views.flags, name="flags"),
]
