# The argument search (issue #16): every value of a job's arguments in a column of its own, filled in for
# the jobs already recorded, and an index for the search on each database.

import json

from django.db import migrations, models

from jobs.arguments import argument_values

BATCH = 5000


def fill(apps, schema_editor):
    """The jobs recorded before this migration, in batches by id: one statement per batch on PostgreSQL
    (unnest of two arrays), executemany on SQLite."""
    connection = schema_editor.connection
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, args, kwargs FROM jobs_job WHERE id > %s ORDER BY id LIMIT %s", [last, BATCH]
            )
            rows = cursor.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        updates = []
        for job_id, args, kwargs in rows:
            if isinstance(args, str):  # SQLite hands the JSON text back, psycopg the decoded jsonb
                args, kwargs = json.loads(args), json.loads(kwargs)
            text = argument_values(args, kwargs)
            if text:
                updates.append((job_id, text))
        if not updates:
            continue
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "UPDATE jobs_job SET argument_values = v.text "
                    "FROM unnest(%s::bigint[], %s::text[]) AS v(id, text) WHERE jobs_job.id = v.id",
                    [[job_id for job_id, _ in updates], [text for _, text in updates]],
                )
            else:
                cursor.executemany(
                    "UPDATE jobs_job SET argument_values = %s WHERE id = %s",
                    [(text, job_id) for job_id, text in updates],
                )


def search_index(apps, schema_editor):
    """PostgreSQL: a trigram index (pg_trgm, a trusted extension since PostgreSQL 13: the database's owner
    may create it), which finds a value's rows without reading the others. SQLite has no index for a LIKE
    '%…%'; a plain index on the column lets it read the column alone, from the index's pages, instead of
    the table's. Neither belongs on the model: GIN is PostgreSQL's, and a B-tree refuses PostgreSQL rows
    over 2,704 bytes (arguments may hold 16 KB)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(
            "CREATE INDEX jobs_job_argument_values_trgm ON jobs_job USING gin (argument_values gin_trgm_ops)"
        )
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("CREATE INDEX jobs_job_argument_values ON jobs_job (argument_values)")


def search_index_drop(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS jobs_job_argument_values_trgm")
    schema_editor.execute("DROP INDEX IF EXISTS jobs_job_argument_values")


class Migration(migrations.Migration):

    # Named 0006: 0005 is the fingerprint column, made on another branch at the same time.
    dependencies = [
        ('jobs', '0005_failure_fingerprint'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='argument_values',
            field=models.TextField(blank=True, default='', editable=False),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(search_index, search_index_drop),
    ]
