"""Give the standard roles the exam record, ledger and follow-up functions (issue 6).

Only the new codes are added, and taken back on reverse (migrations/_grants.py says why).
"""

from django.db import migrations

from kenshin.accounts.migrations._grants import grant_functions

GRANTS = {
    "kacho": ["screening.view_exams", "screening.enter_result", "screening.follow_up"],
    "hokenshi": ["screening.view_exams", "screening.enter_result", "screening.follow_up"],
    "jimu": ["screening.view_exams", "screening.enter_result", "screening.follow_up"],
    "etsuran": ["screening.view_exams"],
}


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_programme_functions")]
    operations = [grant_functions(GRANTS)]
