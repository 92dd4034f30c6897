"""Give the standard roles the 番号連携 functions (issue 4): see accounts.roles.

Only the new codes are added, and taken back on reverse (migrations/_grants.py says why).
"""

from django.db import migrations

from kenshin.accounts.migrations._grants import grant_functions

GRANTS = {
    "kacho": ["linkage.view_mynumber", "linkage.reveal_mynumber", "linkage.merge"],
    "hokenshi": ["linkage.view_mynumber"],
    "jimu": ["linkage.view_mynumber"],
}


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_user_created_by_email_unique")]
    operations = [grant_functions(GRANTS)]
