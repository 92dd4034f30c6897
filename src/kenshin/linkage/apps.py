from django.apps import AppConfig


class LinkageConfig(AppConfig):
    """番号連携サーバ: the 個人番号 vault and 団体内統合宛名番号, in its own database."""

    name = "kenshin.linkage"
    label = "linkage"
    verbose_name = "番号連携"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from kenshin.linkage import checks  # noqa: F401  (registers the deploy checks)
