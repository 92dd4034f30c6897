"""Triggers on the chain's head row: it may only step forward; DELETE/TRUNCATE refused (LOG-02).

``schema.install`` is idempotent and installs every guard, so this re-runs it for databases
that already applied 0003 before the head had guards.
"""

from django.db import migrations


def _install(apps, schema_editor):
    from kenshin.audit import schema

    schema.install(schema_editor.connection)


def _noop(apps, schema_editor):
    """Reverse to 0003: the log's guards must stay; the head guards go with 0003's reverse."""


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_append_only_guards"),
    ]

    operations = [
        migrations.RunPython(_install, _noop),
    ]
