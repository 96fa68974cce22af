"""bench/scale.py's reading of Redis's counters: the figures docs/scaling.md quotes rest on it."""

from __future__ import annotations

from bench.scale import commandstats_usage, usage_minus, usage_scaled


def test_it_reads_calls_and_server_time_by_command_from_info_commandstats():
    info = {
        "cmdstat_blmove": {"calls": 12, "usec": 96, "usec_per_call": 8.0},
        "cmdstat_client|setinfo": {"calls": 2, "usec": 4, "usec_per_call": 2.0},
        "errorstat_ERR": {"count": 1},
    }
    assert commandstats_usage(info) == {
        "redis:blmove": 12.0,
        "usec:blmove": 96.0,
        "redis:client|setinfo": 2.0,
        "usec:client|setinfo": 4.0,
    }


def test_a_command_first_seen_after_the_first_snapshot_counts_from_zero():
    before = {"redis:lpush": 5.0}
    after = {"redis:lpush": 8.0, "redis:eval": 2.0}
    assert usage_minus(after, before) == {"redis:lpush": 3.0, "redis:eval": 2.0}
    assert usage_scaled({"redis:lpush": 3.0}, 1 / 3) == {"redis:lpush": 1.0}
