from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "kenshin.accounts"
    label = "accounts"
    verbose_name = "利用者"
