"""The ledger the fault tests' jobs write (tests/support/probe_tasks.py, probe.effect): runs and effects."""

from __future__ import annotations

import itertools
import json
from collections import Counter

from tests.support.probe_tasks import EFFECTS_KEY, RECORDS_KEY
from tests.support.processes import RedisServer


class Ledger:
    def __init__(self, broker: RedisServer) -> None:
        self.client = broker.client()

    def records(self) -> list[dict]:
        return [json.loads(raw) for raw in self.client.lrange(RECORDS_KEY, 0, -1)]

    def runs(self) -> int:
        return self.client.llen(RECORDS_KEY)

    def runs_per_key(self) -> Counter[str]:
        return Counter(record["key"] for record in self.records())

    def started_keys(self) -> set[str]:
        return set(self.runs_per_key())

    def effect_keys(self) -> set[str]:
        return set(self.client.hkeys(EFFECTS_KEY))

    def repeated_effects(self) -> int:
        return int(self.client.get(f"{EFFECTS_KEY}:again") or 0)

    def finished_runs(self) -> list[dict]:
        return [json.loads(raw) for raw in self.client.lrange(f"{EFFECTS_KEY}:finished", 0, -1)]

    def overlapping_runs(self) -> list[tuple[str, int, int]]:
        """Pairs of finished runs of one job whose start-to-finish intervals overlap."""
        by_key: dict[str, list[dict]] = {}
        for run in self.finished_runs():
            by_key.setdefault(run["key"], []).append(run)
        overlaps = []
        for key, runs in by_key.items():
            runs.sort(key=lambda run: run["started"])
            for first, second in itertools.pairwise(runs):
                if second["started"] < first["finished"]:
                    overlaps.append((key, first["pid"], second["pid"]))
        return overlaps
