from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "kenshin.core"
    label = "core"
    verbose_name = "共通"
