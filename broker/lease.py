"""A worker's lease: proof of life in Redis, and the set of the jobs it holds (broker/recovery.py says how
both are used to put a dead worker's jobs back)."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any

from broker.queues import CONSUMERS_PREFIX
from broker.recovery import (
    ALIVE_PREFIX,
    OWNED_PREFIX,
    UNACKED,
    UNACKED_INDEX,
    dead_workers_recover,
    owned_prune,
    scan_turn_take,
    tags_restore,
    text,
    unacked_deliveries,
    unowned_jobs_restore,
)
from broker.transport import fetch_lists_recover

logger = logging.getLogger(__name__)


# KEYS: the lease's owned set, kombu's `unacked` hash and its index; ARGV: the delivery tag, and 1 when
# the claim is still to be written (Redis was away when the job arrived). 1 when acknowledged.
ACKNOWLEDGE_SCRIPT = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 or ARGV[2] == '1' then
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    return 1
end
return 0
"""


class WorkerLease:
    def __init__(self, app: Any, hostname: str, dead_after: float, queues: tuple[str, ...] = ()) -> None:
        self.app = app
        # The queues this worker is configured to consume: a status page can then tell "no worker" apart.
        self.queues = queues
        self.id = f"{hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.dead_after = dead_after
        self.connection = app.connection_for_write()
        self.stopping = threading.Event()
        # Set once the lease is given back: nothing is acknowledged through it after that.
        self.returned = False
        self.suspected: set[str] = set()
        self.pending: set[str] = set()
        self.pending_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="kiln-worker-lease", daemon=True)

    @property
    def client(self) -> Any:
        # redis-py's client is thread-safe (a pool of connections); kombu's channel objects are not, and
        # only the client is used here.
        return self.connection.default_channel.client

    def start(self) -> None:
        # No broker I/O here: the worker may start before Redis answers; the thread renews once it does.
        self.thread.start()

    def stop(self) -> None:
        self.returned = True
        self.stopping.set()
        self.thread.join(timeout=5)
        try:
            self.client.delete(OWNED_PREFIX + self.id, ALIVE_PREFIX + self.id)
            for queue in self.queues:
                self.client.zrem(CONSUMERS_PREFIX + queue, self.id)
        except Exception:
            logger.warning("could not delete worker lease %s", self.id, exc_info=True)
        self.connection.release()

    def renew(self) -> None:
        now, lifetime = time.time(), max(int(self.dead_after), 1)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(ALIVE_PREFIX + self.id, int(now), ex=lifetime)
        for queue in self.queues:
            pipe.zadd(CONSUMERS_PREFIX + queue, {self.id: now + lifetime})
            # Leases of workers killed without returning them: trimmed by whoever renews next.
            pipe.zremrangebyscore(CONSUMERS_PREFIX + queue, "-inf", now)
        pipe.execute()

    def claim(self, delivery_tag: str) -> None:
        # Renewed in the same round trip: a job is never owned by a lease that was not yet written.
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(OWNED_PREFIX + self.id, delivery_tag)
            pipe.set(ALIVE_PREFIX + self.id, int(time.time()), ex=max(int(self.dead_after), 1))
            pipe.execute()
        except Exception:
            # Redis went away between delivering the job and now: the thread writes the claim once it is back.
            with self.pending_lock:
                self.pending.add(delivery_tag)

    def acknowledge(self, delivery_tag: str) -> None:
        """Acknowledge a job on the lease's own connection, as kombu's Redis transport does on its channel's
        (delivery tags are the messages' own, not a connection's): a job that ran through a lost broker
        connection finished after its channel was closed, and is done once, not put back to run again.
        Only a job this lease still owns: one recovery put back meanwhile (this worker's, or another's
        that took this worker for dead) may be running elsewhere under the same tag, and that holder's
        entry in `unacked` must stay. Raises the connection error when Redis is away; recovery puts the
        job back later then."""
        with self.pending_lock:
            claim_unwritten = delivery_tag in self.pending
        self.client.eval(
            ACKNOWLEDGE_SCRIPT,
            3,
            OWNED_PREFIX + self.id,
            UNACKED,
            UNACKED_INDEX,
            delivery_tag,
            int(claim_unwritten),
        )
        with self.pending_lock:
            self.pending.discard(delivery_tag)

    def pending_claims_write(self) -> None:
        with self.pending_lock:
            tags, self.pending = self.pending, set()
        if tags:
            try:
                self.client.sadd(OWNED_PREFIX + self.id, *tags)
            except Exception:
                with self.pending_lock:
                    self.pending |= tags
                raise

    def _run(self) -> None:
        renew_every, scan_every = self.dead_after / 6, self.dead_after / 3
        last_scan = last_prune = time.monotonic()
        while True:
            try:
                self.renew()
                self.pending_claims_write()
                now = time.monotonic()
                if now - last_scan >= scan_every:
                    last_scan = now
                    self.scan(scan_every)
                if now - last_prune >= self.dead_after:
                    last_prune = now
                    owned_prune(self.client, OWNED_PREFIX + self.id)
            except Exception:  # the broker is down: the worker reconnects by itself; keep trying
                logger.warning("worker lease %s: broker unreachable", self.id, exc_info=True)
            if self.stopping.wait(renew_every):
                return

    def scan(self, scan_every: float) -> bool:
        """One scan, every `scan_every` seconds: this worker's own lost jobs, and the whole installation's
        leftovers when it is this worker's turn (True then)."""
        turn = scan_turn_take(self.client, holder=self.id, scan_every=scan_every)
        if turn:
            self.installation_recover(scan_every)
        # Its own jobs: only this worker knows which it still holds.
        self.orphans_restore()
        return turn

    def installation_recover(self, scan_every: float) -> None:
        """The scans of every worker's and fetcher's leftovers (broker/recovery.py), run by the worker whose
        turn it is: each reads the whole installation, and one of them per scan interval is enough."""
        dead_workers_recover(self.app, self.client, scan_every=scan_every, own_id=self.id)
        # Messages taken from a queue by a consumer that died before recording them (broker/transport.py).
        fetch_lists_recover(self.client)
        # Three lease lifetimes: far longer than a delivery takes to be claimed.
        unowned_jobs_restore(self.app, self.client, older_than=self.dead_after * 3, scan_every=scan_every)

    def orphans_restore(self) -> int:
        """Put back this worker's own jobs that it no longer knows: after a lost broker connection Celery
        forgets the prefetched ones (and a running one whose acknowledgement failed is done but still
        unacknowledged), while Redis (with its append-only file) still holds them as unacknowledged, and
        would hand them out again only after the visibility timeout. A tag seen orphaned at two scans in a
        row is restored."""
        from celery.worker import state

        known = {
            request.message.delivery_tag
            for request in (
                *tuple(state.requests.values()),
                *tuple(state.active_requests),
                *tuple(state.reserved_requests),
                *tuple(state.scheduled_requests),
            )
            if getattr(request, "message", None) is not None
        }
        key = OWNED_PREFIX + self.id
        owned = [text(tag) for tag in self.client.smembers(key)]
        orphans = unacked_deliveries(self.client, [tag for tag in owned if tag not in known])
        confirmed, self.suspected = orphans.keys() & self.suspected, orphans.keys() - self.suspected
        if not confirmed:
            return 0
        restored = tags_restore(self.app, {tag: orphans[tag] for tag in confirmed})
        self.client.srem(key, *confirmed)
        if restored:
            logger.warning(
                "worker %s: %d job(s) it had lost track of put back in their queues", self.id, restored
            )
        return restored
