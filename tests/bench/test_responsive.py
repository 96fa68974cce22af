"""bench/responsive.py's configurations: what #15's figures were measured under rests on them."""

from __future__ import annotations

import argparse

import pytest

from bench.responsive import WEIGHED_PROGRAMS, Configuration, CpuWeights
from config.queues import QueueSpec


def test_a_configuration_splits_what_the_stack_reads_from_the_benchs_own_levers() -> None:
    before = Configuration.parse("before:KILN_HIGH_NICE=0,KILN_HIGH_MAX_PROCESSES=10")
    assert before.environ == {"KILN_HIGH_MAX_PROCESSES": "10"}
    assert before.high_nice == 0  # renice to 0: worker-high as it ran before it was niced
    shipped = Configuration.parse("shipped")
    assert (shipped.environ, shipped.high_nice, shipped.cpu_weights) == ({}, None, False)
    assert Configuration.parse("units:KILN_CPU_WEIGHTS=systemd").cpu_weights
    with pytest.raises(argparse.ArgumentTypeError, match="expected KILN_VARIABLE=value"):
        Configuration.parse("bad:HIGH_NICE=3")
    with pytest.raises(argparse.ArgumentTypeError, match="only `systemd` is known"):
        Configuration.parse("bad:KILN_CPU_WEIGHTS=maybe")


def test_the_cgroup_weights_are_the_shipped_units_and_their_queues_nice_levels(settings) -> None:
    """The bench weighs each program as its unit says; the pools' units say what their nice level is."""
    weights = {program: CpuWeights.unit_weight(unit) for program, unit in WEIGHED_PROGRAMS.items()}
    queues: dict[str, QueueSpec] = {queue.name: queue for queue in settings.KILN_QUEUES}
    assert weights == {
        "web": 100,
        "worker-high": queues["high"].cpu_weight,
        "worker-default": queues["default"].cpu_weight,
    }
    assert weights["web"] > weights["worker-high"] > weights["worker-default"]
