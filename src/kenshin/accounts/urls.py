"""Accounts URLs: sign-in and own account (urls_auth) and administration (urls_admin)."""

from kenshin.accounts import urls_admin, urls_auth

app_name = "accounts"
urlpatterns = urls_auth.urlpatterns + urls_admin.urlpatterns
