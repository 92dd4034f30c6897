from django.apps import AppConfig


class ResidentsConfig(AppConfig):
    name = "kenshin.residents"
    label = "residents"
    verbose_name = "住民記録"
