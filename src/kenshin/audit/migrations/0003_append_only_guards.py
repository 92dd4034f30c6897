"""Triggers that refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL) on the audit table (LOG-02)."""

from django.db import migrations


def _install(apps, schema_editor):
    from kenshin.audit import schema

    schema.install(schema_editor.connection)


def _remove(apps, schema_editor):
    from kenshin.audit import schema

    schema.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_chain_head"),
    ]

    operations = [
        migrations.RunPython(_install, _remove),
    ]
