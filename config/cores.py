"""How many cores Kiln's processes may use on this machine: the ceiling of a CPU-bound pool follows from it.

A thumbnail is CPU work from start to end. On a 2-core machine 2, 4 or 6 processes rendered 1.05-1.27x what
ten did (bench/responsive.py, docs/performance.md): more processes than cores add contention, not
throughput, so a CPU-bound pool's default ceiling is a few processes a core (QueueSpec.per_core). "Cores"
is what the process may actually run on: its CPU affinity (taskset, cpusets), lowered by a cgroup CPU quota
(a container started with --cpus=2 on a 64-core host sees 64 in os.cpu_count()).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """Cores' worth of CPU time a cgroup quota allows, or None when there is none: cgroup v2's cpu.max
    (`200000 100000`, or `max 100000`), else cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us (-1: none)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on (its affinity), at most its cgroup quota rounded up; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        count = os.cpu_count() or 1
    quota = cgroup_quota(root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)
