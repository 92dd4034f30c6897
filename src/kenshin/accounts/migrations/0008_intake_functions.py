"""Give the standard roles the result-intake functions (issue 7).

Only the new codes are added, and taken back on reverse (migrations/_grants.py says why).
"""

from django.db import migrations

from kenshin.accounts.migrations._grants import grant_functions

ALL = ["intake.import", "intake.resolve", "intake.commit", "intake.profiles"]
GRANTS = {
    "kacho": ALL,
    "jimu": ALL,
    "hokenshi": ["intake.import", "intake.resolve", "intake.commit"],
}


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_exam_functions")]
    operations = [grant_functions(GRANTS)]
