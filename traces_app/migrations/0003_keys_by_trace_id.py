"""Key traces by their trace id and spans by (trace id, span id), in place (rows are kept).

Django cannot migrate a table to a composite primary key, so the tables are changed by SQL and the model
state by the operations Django would have generated.
"""

import django.db.models.deletion
from django.db import migrations, models

DROP_CONSTRAINTS = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype IN ({kinds}) LOOP
        EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', item.conname);
    END LOOP;
END $$;
"""

SQL = [
    DROP_CONSTRAINTS.format(table="traces_app_span", kinds="'f', 'u'"),
    "ALTER TABLE traces_app_span DROP COLUMN id",
    "ALTER TABLE traces_app_span ADD CONSTRAINT traces_app_span_pkey PRIMARY KEY (trace_id, span_id)",
    DROP_CONSTRAINTS.format(table="traces_app_trace", kinds="'u'"),
    "ALTER TABLE traces_app_trace DROP COLUMN id",
    "ALTER TABLE traces_app_trace ADD CONSTRAINT traces_app_trace_pkey PRIMARY KEY (trace_id)",
    "ALTER TABLE traces_app_span ADD CONSTRAINT traces_app_span_trace_id_fk FOREIGN KEY (trace_id) "
    "REFERENCES traces_app_trace (trace_id) DEFERRABLE INITIALLY DEFERRED",
]


class Migration(migrations.Migration):
    dependencies = [
        ("traces_app", "0002_traceforwarding"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(SQL)],
            state_operations=[
                migrations.RemoveConstraint(model_name="span", name="span_unique_in_trace"),
                migrations.RemoveField(model_name="span", name="id"),
                migrations.RemoveField(model_name="trace", name="id"),
                migrations.AddField(
                    model_name="span",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "trace_id", "span_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                migrations.AlterField(
                    model_name="span",
                    name="trace",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="spans",
                        to="traces_app.trace",
                    ),
                ),
                migrations.AlterField(
                    model_name="trace",
                    name="trace_id",
                    field=models.CharField(max_length=64, primary_key=True, serialize=False),
                ),
            ],
        ),
    ]
