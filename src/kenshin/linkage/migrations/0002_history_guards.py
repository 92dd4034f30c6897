"""Triggers on the linkage database: the access log is append-only, 統合宛名番号 are never
deleted, the number counter only counts up (linkage/schema.py). Applied on the linkage alias
only (the router sends this app's migrations there)."""

from django.db import migrations


def _install(apps, schema_editor):
    from kenshin.linkage import schema

    schema.install(schema_editor.connection)


def _remove(apps, schema_editor):
    from kenshin.linkage import schema

    schema.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("linkage", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(_install, _remove),
    ]
