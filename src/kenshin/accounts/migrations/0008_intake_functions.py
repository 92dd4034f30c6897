"""Give the standard roles the result-intake functions (issue 7).

Why add to the stored lists instead of re-seeding: an installation may have edited its roles;
only the new codes are added (and removed again on reverse), everything else stays as it is.
"""

from django.db import migrations

ALL = ["intake.import", "intake.resolve", "intake.commit", "intake.profiles"]
GRANTS = {
    "kacho": ALL,
    "jimu": ALL,
    "hokenshi": ["intake.import", "intake.resolve", "intake.commit"],
}


def grant(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for code, functions in GRANTS.items():
        role = Role.objects.filter(code=code).first()
        if role is None:
            continue
        current = list(role.functions)
        role.functions = current + [f for f in functions if f not in current]
        role.save(update_fields=["functions"])


def revoke(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for code, functions in GRANTS.items():
        role = Role.objects.filter(code=code).first()
        if role is None:
            continue
        role.functions = [f for f in role.functions if f not in functions]
        role.save(update_fields=["functions"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_exam_functions")]
    operations = [migrations.RunPython(grant, revoke)]
