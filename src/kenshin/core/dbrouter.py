"""Route each app's tables to the database that owns them (settings.APP_DATABASES).

Why a router and not `using=` everywhere: the 番号連携サーバ (and later the 中間サーバ) keep their
tables in their own database with their own role (MN-01). With the router, their models and
migrations go there by construction, and no other app's tables are ever created in it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def database_of(app_label: str) -> str:
    """The alias holding ``app_label``'s tables ("default" unless the app has its own)."""
    return getattr(settings, "APP_DATABASES", {}).get(app_label, "default")


class AppDatabaseRouter:
    """Reads, writes and migrations of an app with its own database go only there."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        return database_of(model._meta.app_label)

    def db_for_write(self, model: type, **hints: Any) -> str:
        return database_of(model._meta.app_label)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # A foreign key may never cross databases: the other side could not enforce it.
        return database_of(obj1._meta.app_label) == database_of(obj2._meta.app_label)

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return database_of(app_label) == db
