"""Seed the standard roles (accounts.roles.STANDARD_ROLES)."""

from django.db import migrations


def seed(apps, schema_editor):
    from kenshin.accounts.roles import STANDARD_ROLES

    Role = apps.get_model("accounts", "Role")
    for spec in STANDARD_ROLES:
        Role.objects.update_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "functions": spec["functions"],
                "is_emergency": spec.get("is_emergency", False),
                "builtin": True,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_role_user_department_user_must_change_password_and_more")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
