from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "kenshin.web"
    label = "web"
    verbose_name = "画面"
