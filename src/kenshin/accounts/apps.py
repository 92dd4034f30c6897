from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "kenshin.accounts"
    label = "accounts"
    verbose_name = "利用者"

    def ready(self) -> None:
        # Sign-in signals: session register, audit of failures, disable ends sessions.
        from kenshin.accounts import signals  # noqa: F401
