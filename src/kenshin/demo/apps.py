from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "kenshin.demo"
    label = "demo"
    verbose_name = "デモ"
