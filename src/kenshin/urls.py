"""Root URL map: each app mounts its own urls.py."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("residents/", include("kenshin.residents.urls")),
    path("", include("kenshin.web.urls")),
]
