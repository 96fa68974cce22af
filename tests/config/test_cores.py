"""config/cores.py: the cores Kiln may use, from the CPU affinity and a cgroup quota (v2, then v1)."""

from __future__ import annotations

import os
from pathlib import Path

from config.cores import cgroup_quota, usable_cores


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root: Path, quota_us: int, period_us: int = 100000) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    return root


def test_a_v2_quota_is_cores_worth_of_time(tmp_path: Path) -> None:
    assert cgroup_quota(cgroup_v2(tmp_path, "150000 100000")) == 1.5
    assert cgroup_quota(cgroup_v2(tmp_path, "max 100000")) is None


def test_a_v1_quota_counts_when_there_is_no_v2_file(tmp_path: Path) -> None:
    assert cgroup_quota(cgroup_v1(tmp_path, 200000)) == 2.0
    assert cgroup_quota(cgroup_v1(tmp_path, -1)) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cgroup_quota(tmp_path) is None


def test_the_usable_cores_are_the_affinity_lowered_by_the_quota_rounded_up(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == affinity
    assert usable_cores(cgroup_v2(tmp_path, "50000 100000")) == 1  # half a core is still one process' core
    assert usable_cores(cgroup_v2(tmp_path, f"{affinity * 400000} 100000")) == affinity


def test_a_narrowed_affinity_is_what_counts(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert usable_cores(tmp_path) == 1
    finally:
        os.sched_setaffinity(0, before)
