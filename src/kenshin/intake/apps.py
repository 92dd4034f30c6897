from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "kenshin.intake"
    label = "intake"
    verbose_name = "検診結果の取込"
