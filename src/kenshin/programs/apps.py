from django.apps import AppConfig


class ProgramsConfig(AppConfig):
    name = "kenshin.programs"
    label = "programs"
    verbose_name = "検診事業の定義"
