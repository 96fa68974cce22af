"""What purge/ tells the rest of Kiln, without knowing who listens (jobs/ writes it to the audit log)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when a person (admin action or shell command) asks for a run: sender=PurgeRun, run=..., user=...
purge_run_requested = Signal()
