"""The rollup table's writes: a process's tally added to the shared rows in one statement per batch."""

from __future__ import annotations

from django.db import connection, transaction

from metrics.tally import GAUGES, Tally

# Counts and sums add up; a gauge keeps the highest sample of its span (written as a CASE, which SQLite and
# PostgreSQL read alike, instead of MAX()/GREATEST()).
_UPSERT = f"""
INSERT INTO metrics_tally (span, period, queue, task_name, hostname, measure, label, value)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (span, period, queue, task_name, hostname, measure, label) DO UPDATE SET
    value = CASE
        WHEN excluded.measure IN ({", ".join(f"'{gauge}'" for gauge in GAUGES)})
        THEN CASE WHEN excluded.value > metrics_tally.value THEN excluded.value ELSE metrics_tally.value END
        ELSE metrics_tally.value + excluded.value
    END
"""


def tally_write(tally: Tally) -> int:
    """Add `tally` to the rows, in one transaction: all of it or, on an error, none (the caller keeps it)."""
    ops = connection.ops
    rows = [
        (
            key.span,
            ops.adapt_datetimefield_value(key.period),
            key.queue[:100],
            key.task_name[:200],
            key.hostname[:200],
            key.measure,
            key.label[:200],
            value,
        )
        # One order for every writer: two processes adding to the same rows never wait on each other in a cycle.
        for key, value in sorted(tally.values.items())
    ]
    if not rows:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_UPSERT, rows)
    return len(rows)
