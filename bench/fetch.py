"""What does the reliable fetch cost? kombu's BRPOP fetch against Kiln's (broker/transport.py), side by side.

Starts a private redis-server (append-only, `appendfsync everysec` as deploy/README.md has production run
it), then for each variant, alternately: publishes a backlog of small messages, and consumes it with one
kombu consumer that acknowledges each message as it arrives (what a worker's main process does with
prefetch 1, minus the job). Messages per second; best of --rounds each, interleaved so the ratio compares
runs made in the same minute. Then the same with one message at a time published into an idle consumer
(the latency of a blocking fetch: publish -> delivered), median of --latency-messages.

Kiln's fetch costs a second script per message (the record moves the message out of the fetch list) in
place of kombu's MULTI; the target is >= 0.8 of kombu's throughput, with no latency added while waiting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from kombu import Connection, Exchange, Queue

import config.celery  # noqa: F401 - registers Kiln's transport for redis://
from tests.support.processes import start_redis

TARGET = 0.8
QUEUE = Queue("bench", Exchange("bench"), routing_key="bench")
VARIANTS = {"kombu BRPOP": 0, "Kiln fetch": 30}


def connection(url: str, dead_after: int) -> Connection:
    return Connection(url, transport_options={"priority_steps": [0], "kiln_dead_after": dead_after})


def backlog_rate(url: str, dead_after: int, messages: int) -> float:
    with connection(url, dead_after) as conn:
        with conn.Producer() as producer:
            for n in range(messages):
                producer.publish({"n": n}, exchange=QUEUE.exchange, routing_key="bench", declare=[QUEUE])
        done = 0

        def on_message(body: dict, message) -> None:
            nonlocal done
            message.ack()
            done += 1

        with conn.Consumer(QUEUE, callbacks=[on_message], accept=["json"]) as consumer:
            consumer.qos(prefetch_count=1)
            started = time.perf_counter()
            while done < messages:
                conn.drain_events(timeout=10)
            return messages / (time.perf_counter() - started)


def idle_latency(url: str, dead_after: int, messages: int) -> float:
    """Median seconds from publish to delivery into a consumer waiting on an empty queue."""
    latencies: list[float] = []
    with connection(url, dead_after) as conn, connection(url, dead_after) as publisher:
        producer = publisher.Producer()

        def on_message(body: dict, message) -> None:
            latencies.append(time.time() - body["sent"])
            message.ack()

        with conn.Consumer(QUEUE, callbacks=[on_message], accept=["json"]):
            for _ in range(messages):
                time.sleep(0.02)  # the consumer is waiting in its fetch
                producer.publish({"sent": time.time()}, exchange=QUEUE.exchange, routing_key="bench")
                conn.drain_events(timeout=10)
    return statistics.median(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--latency-messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rates: dict[str, float] = {}
    latencies: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-fetch-") as tmp:
        server = start_redis(Path(tmp) / "redis", persistent=True)
        try:
            server.client().config_set("appendfsync", "everysec")
            for round_number in range(args.rounds):
                for name, dead_after in VARIANTS.items():
                    rate = backlog_rate(server.url, dead_after, args.messages)
                    print(f"  {name:<12} round {round_number + 1}: {rate:8.0f} messages/s", flush=True)
                    rates[name] = max(rates.get(name, 0.0), rate)
            for name, dead_after in VARIANTS.items():
                latencies[name] = idle_latency(server.url, dead_after, args.latency_messages)
        finally:
            server.stop()

    kombu, kiln = (rates[name] for name in VARIANTS)
    ratio = kiln / kombu
    print()
    print(f"one consumer, acknowledging each message; best of {args.rounds} rounds of {args.messages}")
    print(f"{'fetch':<14}{'messages/s':>12}{'idle latency (median)':>24}")
    for name in VARIANTS:
        print(f"{name:<14}{rates[name]:>12.0f}{latencies[name] * 1000:>21.2f} ms")
    print(
        f"\nKiln / kombu throughput: {ratio:.2f} (target >= {TARGET}): {'met' if ratio >= TARGET else 'MISSED'}"
    )
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
