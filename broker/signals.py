"""What the broker layer tells the rest of Kiln, without knowing who listens (jobs/ records it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery.utils.dispatch import Signal


@dataclass(frozen=True)
class ParkedJob:
    task_id: str
    task_name: str
    queue: str
    args: Any  # None when the message body could not be read
    kwargs: Any
    deaths: int  # how many times a worker died holding it


# Sent by dead-worker recovery before it takes a job out of Redis for good (broker/recovery.py): a job whose
# worker died holding it too many times. A receiver records it (job=ParkedJob); the job is parked only when
# at least one receiver returned without an error, and put back in its queue otherwise.
job_parked = Signal(name="job_parked", providing_args={"job"})
