"""The roster is keyed by (団体コード, 年度, 検査方法, 宛名番号) itself: no surrogate id.

Why: at a million residents a build writes 4–5 million rows; with a surrogate id every row
was written twice (the table and the unique index). Keyed by the natural key the row is
written once, in key order — on SQLite as a WITHOUT ROWID table, which Django cannot declare,
so the table is made here by hand (a test checks it stays that way: a later AlterField on
SQLite rebuilds the table from the model and would silently lose the form).
Existing rows are kept. Irreversible (no reverse step): going back would need new ids.
"""

from django.db import migrations, models

_SQLITE_TABLE = (
    'CREATE TABLE "screening_rosterentry__new" ('
    '"municipality_code" varchar(6) NOT NULL, '
    '"fiscal_year" smallint unsigned NOT NULL CHECK ("fiscal_year" >= 0), '
    '"programme" varchar(20) NOT NULL, '
    '"method" varchar(30) NOT NULL, '
    '"atena_no" varchar(15) NOT NULL, '
    '"sex" smallint unsigned NOT NULL CHECK ("sex" >= 0), '
    '"age" smallint NOT NULL, '
    '"computed_eligible" bool NOT NULL, '
    '"computed_reason" varchar(20) NOT NULL, '
    '"eligible" bool NOT NULL, '
    '"reason" varchar(20) NOT NULL, '
    '"override_eligible" bool NULL, '
    '"override_note" varchar(200) NOT NULL, '
    '"override_by" varchar(150) NOT NULL, '
    '"override_at" datetime NULL, '
    '"exclusion" varchar(20) NOT NULL, '
    '"exemption" varchar(20) NOT NULL, '
    '"exemption_early" varchar(20) NOT NULL, '
    '"coupon_no" varchar(16) NOT NULL, '
    '"changed_build" integer unsigned NOT NULL CHECK ("changed_build" >= 0), '
    '"build_id" bigint NOT NULL, '
    'PRIMARY KEY ("municipality_code", "fiscal_year", "method", "atena_no")'
    ") WITHOUT ROWID"
)
_COLUMNS = (
    '"municipality_code", "fiscal_year", "programme", "method", "atena_no", "sex", "age", '
    '"computed_eligible", "computed_reason", "eligible", "reason", "override_eligible", '
    '"override_note", "override_by", "override_at", "exclusion", "exemption", '
    '"exemption_early", "coupon_no", "changed_build", "build_id"'
)


def forward(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "sqlite":
        run(_SQLITE_TABLE)
        run(
            f'INSERT INTO "screening_rosterentry__new" ({_COLUMNS}) '  # noqa: S608  # nosec B608
            f'SELECT {_COLUMNS} FROM "screening_rosterentry" '
            'ORDER BY "municipality_code", "fiscal_year", "method", "atena_no"'
        )
        run('DROP TABLE "screening_rosterentry"')
        run('ALTER TABLE "screening_rosterentry__new" RENAME TO "screening_rosterentry"')
    else:
        run('ALTER TABLE "screening_rosterentry" DROP CONSTRAINT "screening_roster_once"')
        run('ALTER TABLE "screening_rosterentry" DROP COLUMN "id"')  # and its primary key
        run(
            'ALTER TABLE "screening_rosterentry" ADD CONSTRAINT "screening_rosterentry_pkey" '
            'PRIMARY KEY ("municipality_code", "fiscal_year", "method", "atena_no")'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("screening", "0002_rostercount"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="rosterentry",
                    name="screening_roster_once",
                ),
                migrations.RemoveField(
                    model_name="rosterentry",
                    name="id",
                ),
                migrations.AddField(
                    model_name="rosterentry",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "municipality_code",
                        "fiscal_year",
                        "method",
                        "atena_no",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forward, elidable=False)],
        ),
    ]
