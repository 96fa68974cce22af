"""Fast recovery of a dead worker's jobs: what Sidekiq Pro's super_fetch does for Ruby, on kombu's Redis.

With `acks_late`, a job stays in kombu's `unacked` hash from delivery until the worker acknowledges it. If
the worker's main process dies (SIGKILL, OOM killer, a lost host), kombu puts those jobs back only once
they are older than the visibility timeout, an hour in Kiln, which must exceed every time limit or a long
job still running would be handed out twice. Kiln gets them back within a minute instead:

- every worker process holds a lease: `kiln:worker-alive:<id>`, refreshed every DEAD_AFTER / 6 seconds
  with an expiry of DEAD_AFTER (KILN_WORKER_DEAD_AFTER_SECONDS, 30 s), where <id> is hostname, pid and a
  random part, so a worker restarted under the same name is a new lease;
- when the main process receives a job, it adds the message's delivery tag to `kiln:worker-owned:<id>`;
- every DEAD_AFTER / 3 seconds one worker, whichever takes the turn (`kiln:recovery-scan`, a key set if
  absent and expiring after 0.9 of that interval), looks for owned sets whose lease has expired: one scan
  for the whole installation, not one per worker, as each reads every lease. One found twice, a scan
  apart (so a live worker that lost Redis for a moment gets to renew first), is dead; the first sighting is
  kept in Redis (`kiln:worker-suspect:<id>`, on Redis's clock), as the next turn is often another
  worker's. The first worker to rename its set to `kiln:worker-recovering:<id>` (one script, only while
  the lease is still expired) recovers it, so two scans that overlap (a turn outlived) recover it once:
  each of its tags still in `unacked` goes back to its queue in a WATCH/MULTI transaction (what kombu's
  `restore_by_tag` does, plus a check that the entry is still the same delivery, by its `unacked_index`
  time: a message keeps its tag when it is handed out again), and the set is deleted. A recovery that
  fails half-way (Redis gone) hands the set back for the next scan.

Three more leaks are closed the same way, the first and the last by the worker whose turn it is, the
second by every worker at every scan:
- messages a consumer took from a queue but never recorded unacknowledged (Redis died in between, or the
  connection broke before the reply arrived) sit in that consumer's fetch list; once its fetcher lease
  expires they go back (broker/transport.py, the reliable fetch);
- a worker's own jobs it no longer knows (after a lost connection Celery forgets the prefetched ones, while
  Redis still holds them as unacknowledged) go back when seen twice in a row; the running ones finish,
  and their acknowledgement, which their closed channel cannot send, goes through the lease's connection
  (`WorkerLease.acknowledge`, broker/lease.py); one whose acknowledgement fails (Redis gone again) goes
  back the same way;
- jobs unacknowledged for three lease lifetimes that no lease owns (delivered by Redis just before a
  connection broke, never claimed) go back when seen so twice, a scan apart, the same delivery both times
  (the first sightings are kept in Redis, `kiln:unowned-suspects`).
Every worker must run with this module (all of Kiln's do): a job held by a worker without a lease would
be taken for an unowned one.

A job whose worker died is therefore running again within DEAD_AFTER + 2 scans (about 50 s by default),
redelivered (at least once: the dead worker may have finished it without acknowledging). A worker that
stops gracefully deletes its lease after its last acknowledgement; kombu returns its prefetched jobs itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from kombu.utils.json import loads

from broker.signals import ParkedJob, job_parked

logger = logging.getLogger(__name__)

ALIVE_PREFIX = "kiln:worker-alive:"
OWNED_PREFIX = "kiln:worker-owned:"
SUSPECT_PREFIX = "kiln:worker-suspect:"
RECOVERING_PREFIX = "kiln:worker-recovering:"  # a dead worker's owned set, taken by the worker recovering it
# The installation's scans are one worker's turn at a time (scan_turn_take); the key holds its lease id.
SCAN_TURN = "kiln:recovery-scan"
# Jobs found unowned at the last scan: a hash of delivery tag to JSON [first seen, unacked_index score].
UNOWNED_SUSPECTS = "kiln:unowned-suspects"
# A scan turn lasts this share of a scan interval: the first worker to ask once it expired takes the next,
# and a worker asking once an interval finds its own expired.
TURN_SHARE = 0.9
# A sighting (of a dead worker, of an unowned job) confirms one made at least this share of an interval
# before. Successive turns are TURN_SHARE apart at least, less the moments between taking a turn and
# reading Redis's clock: with many workers asking, the next turn is taken as soon as the last expires.
SIGHTINGS_APART = 0.8
# Keys a SCAN call looks at: fewer, larger replies for a keyspace that holds more than Kiln's keys.
SCAN_COUNT = 1000
# kombu's Redis transport: the hash of unacknowledged messages by delivery tag, and its index by time.
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def unacked_deliveries(client: Any, tags: list[str]) -> dict[str, float | None]:
    """The tags still in kombu's `unacked` hash, each with its `unacked_index` score: the time its delivery
    was recorded. A message keeps its delivery tag when it is delivered again, so the score is what tells
    the delivery a worker judged from the next one."""
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.hexists(UNACKED, tag)
        pipe.zscore(UNACKED_INDEX, tag)
    replies = pipe.execute()
    return {
        tag: score for tag, present, score in zip(tags, replies[::2], replies[1::2], strict=True) if present
    }


def tags_restore(app: Any, deliveries: dict[str, float | None]) -> int:
    """Put each job back in its queue, in one WATCH/MULTI transaction per job (kombu's `restore_by_tag`,
    plus a check): only if its `unacked` entry is still the delivery that was judged (same index score).
    Two workers may judge one tag at once; the first puts it back, a consumer takes it and records it again
    under the same tag, and the second must not put that new delivery back too: it would run twice at once.
    Returns how many were put back."""
    restored = 0
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as client:
            for tag, score in deliveries.items():

                def restore(pipe: Any, tag: str = tag, score: float | None = score) -> bool:
                    raw = pipe.hget(UNACKED, tag)
                    current = pipe.zscore(UNACKED_INDEX, tag)
                    pipe.multi()
                    if current != score:
                        return False  # acknowledged, put back, or delivered again meanwhile
                    channel.qos._remove_from_indices(tag, pipe)  # as kombu: also an index left alone
                    if raw is None:
                        return False
                    payload, exchange, routing_key = loads(text(raw))
                    channel._do_restore_message(payload, exchange, routing_key, pipe)
                    return True

                restored += client.transaction(restore, UNACKED, UNACKED_INDEX, value_from_callable=True)
    return restored


def owned_prune(client: Any, key: str) -> None:
    """Forget tags already acknowledged (no longer in kombu's `unacked` hash)."""
    tags = [text(tag) for tag in client.smembers(key)]
    gone = set(tags) - unacked_deliveries(client, tags).keys()
    if gone:
        client.srem(key, *gone)


def redis_now(client: Any) -> float:
    """Redis's own clock: successive scans are made by different workers, on hosts whose clocks may differ;
    a suspicion written by one and judged by another is timed on one clock."""
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000


def scan_turn_take(client: Any, *, holder: str, scan_every: float) -> bool:
    """True when this worker is to run the installation's scans now: the first to ask after the last turn
    expired. The turn lasts TURN_SHARE of a scan interval, so the workers, each asking once an interval,
    between them scan once an interval, whatever their number. A scan that outlives its turn at worst runs
    beside the next: every step of recovery is safe run twice at once."""
    return bool(client.set(SCAN_TURN, holder, nx=True, px=max(int(scan_every * TURN_SHARE * 1000), 1)))


def _owned_pages(client: Any) -> Iterator[list[str]]:
    """The owned sets, a SCAN reply at a time (SCAN may name a key twice)."""
    cursor = None
    while cursor != 0:
        cursor, keys = client.scan(cursor=cursor or 0, match=OWNED_PREFIX + "*", count=SCAN_COUNT)
        if keys:
            yield [text(key) for key in keys]


def unowned_jobs_restore(app: Any, client: Any, *, older_than: float, scan_every: float) -> int:
    """Put back jobs unacknowledged for longer than `older_than` seconds that no lease owns: delivered by
    Redis just before a connection broke, they never reached a worker's hands (or its claim). A tag goes
    back once found unowned at two scans a scan apart (SIGHTINGS_APART), the same delivery both times: a
    worker whose claim failed while Redis was away writes it only after Redis is back, and may be running
    the job. The first sighting is kept in Redis (UNOWNED_SUSPECTS): the next scan may be another
    worker's."""
    old = {
        text(tag): score
        for tag, score in client.zrangebyscore(
            UNACKED_INDEX, "-inf", time.time() - older_than, withscores=True
        )
    }
    if not old:
        client.delete(UNOWNED_SUSPECTS)
        return 0
    owned: set[str] = set()
    for keys in _owned_pages(client):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.smembers(key)
        for members in pipe.execute():
            owned.update(text(tag) for tag in members)
    now = redis_now(client)
    earlier = {text(tag): json.loads(sighting) for tag, sighting in client.hgetall(UNOWNED_SUSPECTS).items()}
    confirmed: dict[str, float | None] = {}
    suspects: dict[str, str] = {}
    for tag in sorted(old.keys() - owned):
        first_seen, score = earlier.get(tag, (now, old[tag]))
        if score != old[tag]:  # delivered again since it was first seen: a new delivery, a new sighting
            first_seen = now
        if now - first_seen >= scan_every * SIGHTINGS_APART:
            confirmed[tag] = old[tag]
        else:
            suspects[tag] = json.dumps([first_seen, old[tag]])
    # Rewritten whole: a tag owned since, or gone from `unacked`, is suspected no more.
    pipe = client.pipeline(transaction=True)
    pipe.delete(UNOWNED_SUSPECTS)
    if suspects:
        pipe.hset(UNOWNED_SUSPECTS, mapping=suspects)
        pipe.expire(UNOWNED_SUSPECTS, int(scan_every * 10) + 1)
    pipe.execute()
    if not confirmed:
        return 0
    restored = tags_restore(app, confirmed)
    if restored:
        logger.warning("%d unacknowledged job(s) no worker owns put back in their queues", restored)
    return restored


def dead_workers_recover(app: Any, client: Any, *, scan_every: float, own_id: str = "") -> int:
    """Put the unacknowledged jobs of every dead worker back in their queues; returns how many. The owned
    sets of a SCAN reply are judged in one round trip: each lease's EXISTS, and one MGET of suspicions."""
    recovered = 0
    now = redis_now(client)
    for keys in _owned_pages(client):
        worker_ids = list(dict.fromkeys(key[len(OWNED_PREFIX) :] for key in keys))
        pipe = client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.exists(ALIVE_PREFIX + worker_id)
        pipe.mget([SUSPECT_PREFIX + worker_id for worker_id in worker_ids])
        *alive, suspicions = pipe.execute()
        judged = [
            (worker_id, bool(lives) or worker_id == own_id, since)
            for worker_id, lives, since in zip(worker_ids, alive, suspicions, strict=True)
        ]
        # Suspected before, its lease back since (it lost Redis for a moment): suspected no more.
        cleared = [SUSPECT_PREFIX + worker_id for worker_id, lives, since in judged if lives and since]
        if cleared:
            client.delete(*cleared)
        for worker_id, lives, since in judged:
            if lives:
                continue
            if since is None:  # first seen dead now: note when, and look again at the next scan
                client.set(SUSPECT_PREFIX + worker_id, now, ex=int(scan_every * 10) + 1)
                continue
            if now - float(since) < scan_every * SIGHTINGS_APART:
                continue
            recovered += worker_jobs_restore(app, client, worker_id)
    return recovered


# A job that was in the hands of a worker that died this many times is not put back again: it is parked
# (taken out of Redis, its record failed) for an operator, as a poison pill that kills the whole worker
# would otherwise go round for ever. `jobs retry` publishes it again.
MAX_RESTORES = 3
RESTORED_PREFIX = "kiln:restored:"


# Take a dead worker's owned set KEYS[1] for recovery, as KEYS[2] (expiring after ARGV[1] s), if it still
# exists and its lease KEYS[3] is still expired: of two workers that judged it dead at once, one recovers it.
CLAIM_DEAD_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then
    return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""


def worker_jobs_restore(app: Any, client: Any, worker_id: str) -> int:
    """Put back (or park) the jobs of a dead worker; returns how many. One worker does it per dead worker,
    so each job's death is counted once."""
    key, claimed = OWNED_PREFIX + worker_id, RECOVERING_PREFIX + worker_id
    if not client.eval(CLAIM_DEAD_SCRIPT, 3, key, claimed, ALIVE_PREFIX + worker_id, 24 * 3600):
        return 0
    try:
        unacked = unacked_deliveries(client, [text(tag) for tag in client.smembers(claimed)])
        # A job whose worker died holding it MAX_RESTORES times already is parked, not put back again.
        parked = []
        for tag in unacked:
            restores = client.incr(RESTORED_PREFIX + tag)
            client.expire(RESTORED_PREFIX + tag, 7 * 24 * 3600)
            if restores > MAX_RESTORES and job_park(client, tag, restores - 1):
                parked.append(tag)
        restored = tags_restore(app, {tag: score for tag, score in unacked.items() if tag not in parked})
    except Exception:
        # Redis went away mid-way: hand the set back so a later scan recovers what is left.
        with contextlib.suppress(Exception):
            client.renamenx(claimed, key)
        raise
    client.delete(claimed, SUSPECT_PREFIX + worker_id)
    if unacked:
        logger.warning(
            "worker %s is dead: %d unacknowledged job(s) put back in their queues, %d parked",
            worker_id,
            restored,
            len(parked),
        )
    return restored + len(parked)


def job_park(client: Any, tag: str, deaths: int) -> bool:
    """Take the message out of `unacked` once a receiver of `job_parked` (the job history) has recorded it
    failed; False (put it back instead) when none did: a job is never dropped without a trace."""
    raw = client.hget(UNACKED, tag)
    if raw is None:
        return True  # restored or acknowledged meanwhile: nothing to park
    payload, _exchange, routing_key = json.loads(raw)
    headers = payload.get("headers") or {}
    try:  # Celery's message body: base64 of JSON [args, kwargs, embed]
        args, kwargs, _embed = json.loads(base64.b64decode(payload["body"]))
    except (KeyError, ValueError, TypeError):
        args, kwargs = None, None
    job = ParkedJob(
        task_id=headers.get("id") or tag,
        task_name=headers.get("task") or "",
        queue=routing_key or "",
        args=args,
        kwargs=kwargs,
        deaths=deaths,
    )
    responses = job_parked.send(sender=None, job=job)
    failures = [response for _receiver, response in responses if isinstance(response, BaseException)]
    if not responses or failures:
        logger.error(
            "could not record parked job %s (%s); putting it back instead",
            job.task_id,
            failures[0] if failures else "nothing records parked jobs",
        )
        return False
    pipe = client.pipeline(transaction=True)
    pipe.hdel(UNACKED, tag)
    pipe.zrem(UNACKED_INDEX, tag)
    pipe.execute()
    logger.error(
        "job %s (%s) parked: the worker holding it died %d times", job.task_id, job.task_name, deaths
    )
    return True
