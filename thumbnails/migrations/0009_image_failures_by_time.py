"""An index for the operators' count of rejected inputs (jobs' dashboard, `jobs status`, /metrics): failed
images by when they failed, with their kind, so the count of the last hours reads only those rows, from the
index alone, however many images failed before.

Written as SQL that SQLite and PostgreSQL both accept, and kept out of the model's Meta for now, so the
model state and `makemigrations --check` are unchanged; moving it into Image.Meta.indexes later needs a
state-only migration (SeparateDatabaseAndState), not a second CREATE INDEX.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("thumbnails", "0008_image_started_and_error_kind"),
    ]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX image_failures_by_time ON thumbnails_image (status, processed_at, error_kind)",
            reverse_sql="DROP INDEX image_failures_by_time",
        ),
    ]
