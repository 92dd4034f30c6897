"""Sign-in and own-account URLs (namespace ``accounts``)."""

from django.urls import path

from kenshin.accounts import views

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/code/", views.verify_view, name="mfa_verify"),
    path("login/enrol/", views.enrol_view, name="mfa_enrol"),
    path("login/recovery-codes/", views.recovery_codes_view, name="recovery_codes"),
    path("logout/", views.logout_view, name="logout"),
    path("password/", views.password_change_view, name="password_change"),
]
