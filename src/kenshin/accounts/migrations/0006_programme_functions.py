"""Give the standard roles the programme catalogue and roster functions (issue 5).

Only the new codes are added, and taken back on reverse (migrations/_grants.py says why).
"""

from django.db import migrations

from kenshin.accounts.migrations._grants import grant_functions

GRANTS = {
    "kacho": [
        "programs.view",
        "programs.edit",
        "screening.view_roster",
        "screening.build_roster",
        "screening.exclude",
        "screening.override",
        "screening.export_roster",
    ],
    "hokenshi": [
        "programs.view",
        "screening.view_roster",
        "screening.exclude",
        "screening.override",
    ],
    "jimu": [
        "programs.view",
        "screening.view_roster",
        "screening.build_roster",
        "screening.exclude",
        "screening.export_roster",
    ],
    "etsuran": ["programs.view", "screening.view_roster"],
}


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_linkage_functions")]
    operations = [grant_functions(GRANTS)]
