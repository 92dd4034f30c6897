from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "kenshin.core"
    label = "core"
    verbose_name = "共通"

    def ready(self) -> None:
        # Each app declares its functions in permissions.py; import them all so the registry
        # is complete before the first request (and before the ACL-01 walk in the tests).
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("permissions")
