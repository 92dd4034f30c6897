from django.apps import AppConfig


class ScreeningConfig(AppConfig):
    name = "kenshin.screening"
    label = "screening"
    verbose_name = "検診の対象者と受診"
