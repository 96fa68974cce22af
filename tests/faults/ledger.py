"""The ledger the fault tests' jobs write (tests/support/probe_tasks.py, probe.effect): runs and effects."""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter

from broker.recovery import UNACKED
from broker.transport import FETCH_LISTS
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

    def unacknowledged_keys(self) -> set[str]:
        """The keys of the probe jobs whose messages Redis still holds for a consumer: recorded unacknowledged,
        or taken into a fetch list and not yet recorded. A job is acknowledged only after its effect is
        written, so a worker killed in between leaves a job with its effect done that must run again."""
        payloads = [json.loads(raw)[0] for raw in self.client.hvals(UNACKED)]
        for fetch_list in self.client.smembers(FETCH_LISTS):
            payloads += [json.loads(raw) for raw in self.client.lrange(fetch_list, 0, -1)]
        keys = set()
        for payload in payloads:
            if payload["headers"].get("task") == "probe.effect":
                args, _kwargs, _embed = json.loads(base64.b64decode(payload["body"]))
                keys.add(args[0])
        return keys

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
