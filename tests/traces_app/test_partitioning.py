"""The trace tables can be hash-partitioned by trace id as they grow: every key starts with it.

Postgres refuses a unique key on a partitioned table that leaves out the partition column, so creating
partitioned copies of both tables, with all their keys and indexes and the foreign key between them, fails
as soon as a key stops starting with the trace id.
"""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from traces_app.models import Span, Trace


def test_both_tables_can_be_hash_partitioned_by_trace_id(team):
    trace = Trace.objects.create(trace_id="trace_" + "1" * 32, workspace=team.workspace, started_at=timezone.now())
    Span.objects.create(trace=trace, span_id="span_" + "2" * 24, kind="agent", name="A")
    with connection.cursor() as cursor:
        for table in (Trace._meta.db_table, Span._meta.db_table):
            cursor.execute(
                f"CREATE TABLE part_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES) "
                "PARTITION BY HASH (trace_id)"
            )
            for remainder in range(2):
                cursor.execute(
                    f"CREATE TABLE part_{table}_{remainder} PARTITION OF part_{table} "
                    f"FOR VALUES WITH (MODULUS 2, REMAINDER {remainder})"
                )
            cursor.execute(f"INSERT INTO part_{table} SELECT * FROM {table}")  # noqa: S608
        cursor.execute(
            f"ALTER TABLE part_{Span._meta.db_table} ADD FOREIGN KEY (trace_id) "
            f"REFERENCES part_{Trace._meta.db_table} (trace_id)"
        )
        joined = f"part_{Span._meta.db_table} JOIN part_{Trace._meta.db_table} USING (trace_id)"
        cursor.execute(f"SELECT count(*) FROM {joined}")  # noqa: S608
        assert cursor.fetchone() == (1,)
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [f"part_{Trace._meta.db_table}", "%workspace_id, started_at DESC%"],
        )
        assert cursor.fetchone() == (1,)  # the list's index comes along
