"""請求区分・請求月 on exams, 請求月 on batches of paper 受診票.

The NOT NULL column with a database default is added with one ALTER TABLE … ADD COLUMN, as in
0004: Django's SQLite backend would otherwise copy a city's whole exam history to add it.
"""

from django.db import migrations, models


def add_billing_category(apps, schema_editor):
    schema_editor.execute(
        'ALTER TABLE "screening_exam" ADD COLUMN "billing_category" varchar(20) '
        "DEFAULT '' NOT NULL"
    )


def drop_billing_category(apps, schema_editor):
    schema_editor.execute('ALTER TABLE "screening_exam" DROP COLUMN "billing_category"')


class Migration(migrations.Migration):
    dependencies = [("screening", "0005_vouchers_and_entry_batches")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="exam",
                    name="billing_category",
                    field=models.CharField(
                        blank=True, db_default="", max_length=20, verbose_name="請求区分"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(add_billing_category, drop_billing_category),
            ],
        ),
        migrations.AddField(
            model_name="exam",
            name="billing_month",
            field=models.DateField(blank=True, null=True, verbose_name="請求月（その月の1日）"),
        ),
        migrations.AddField(
            model_name="entrybatch",
            name="billing_month",
            field=models.DateField(blank=True, null=True, verbose_name="請求月（その月の1日）"),
        ),
    ]
