"""Run a command on one host at a time: single-beat's Redis leader lock around it (`manage.py kiln elect`).

`kiln elect` puts Kiln's settings into single-beat's SINGLE_BEAT_* variables and executes this module, which
imports no Django: the process that holds the lock stays small. single-beat (PyPI, 0.6.3) takes the lock (a
Redis key with an expiry, renewed every heartbeat, holding a counter it checks before each renewal), starts
the command once it holds it, and stops the command when it loses it. Where 0.6.3 falls short, this module
makes up for it:

  - It cannot start on a unix socket (the embedded Redis of `make run`): at start it builds an asyncio
    pub/sub client, for `single-beat-cli` commands it never listens to, from the connection's host and port,
    which a unix socket connection has not. Built here from the URL, which redis-py reads for any scheme.
  - On TERM it passes the signal to the command and exits at once: the command (celery beat saving its
    schedule) was killed mid-stop when the loop closed, and supervisord saw the program stopped before it
    was. Here the lock holder waits for the command to end, and exits with its status.
  - If the lock holder is SIGKILLed (the OOM killer, an operator), the command outlived it, scheduling
    without a lock. Here the command runs with a parent-death signal: TERM when the lock holder dies.
  - A leader that stops left its lock to expire: a restart, or a rolling one, left every host without beat
    for the lock time. Here a leader that stops gives its lock up, if it still holds it.
  - A Redis that fails under a running leader raised out of its loop. Here the leader stops the command and
    exits 1 (its manager starts it again); at start it waits for Redis instead of exiting, so supervisord
    does not give the program up (FATAL) during an outage longer than its start retries.

What of single-beat this relies on, checked by tests/blueprint/test_elect.py at every upgrade:
  singlebeat.beat.Config (REDIS_SERVER, REDIS_SENTINEL, rewrite_redis_url, get_async_redis_client),
  singlebeat.beat.Process (its constructor taking the argv, run(), sprocess, child_exit_cb, fence_token,
  identifier, process_pid(), _periodic_callback_running), singlebeat.beat.config (HOST_IDENTIFIER,
  get_redis()) and the lock's key and value (SINGLE_BEAT_<identifier>, "<fence>:<host>:<pid>"),
  singlebeat.beat.logger.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from typing import Any

CHILD = "--die-with-parent"
# linux/prctl.h: deliver a signal to this process when its parent dies.
PR_SET_PDEATHSIG = 1
# Seconds between two tries of a Redis that does not answer at start.
REDIS_RETRY_SECONDS = 2

logger = logging.getLogger("kiln.elect")


def die_with_parent(argv: list[str]) -> None:
    """The command's side: ask for TERM when the lock holder dies, then become the command."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the lock holder died before the signal was asked for
        sys.exit(1)
    os.execv(argv[0], argv)


def redis_wait(url: str) -> None:
    import redis

    client, said = redis.Redis.from_url(url), False
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as error:
            if not said:
                print(
                    f"kiln elect: Redis does not answer ({error}), trying every {REDIS_RETRY_SECONDS} s",
                    flush=True,
                )
                said = True
            time.sleep(REDIS_RETRY_SECONDS)


async def lead(beat: Any, argv: list[str]) -> int:
    """single-beat's loop (wait for the lock, start the command, renew the lock) until the command ends, or
    until TERM, INT (passed on to the command), a lost lock or a failed Redis; then the command's end."""
    import redis

    process = beat.Process(argv)
    # single-beat's own callback, once the command's output is read to its end, exits with the command's
    # returncode, which may not be set yet then (os._exit(None) raises, and the leader renews the lock
    # for a command that is gone). Noted here; the command's status is waited for below.
    output_read = asyncio.Event()
    process.child_exit_cb = lambda _status: output_read.set()
    loop = asyncio.create_task(process.run())
    ended = asyncio.create_task(output_read.wait())
    await asyncio.wait({loop, ended}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if ended.done():  # the command ended by itself: stop renewing, its manager starts us again
        process._periodic_callback_running = False
        loop.cancel()
    elif loop.exception() is not None:
        if not isinstance(loop.exception(), redis.RedisError):
            raise loop.exception()  # type: ignore[misc]
        beat.logger.error("Redis failed under the lock holder (%s): stopping the command", loop.exception())
        status = 1
        if process.sprocess is not None and process.sprocess.returncode is None:
            process.sprocess.send_signal(signal.SIGTERM)
    if process.sprocess is None:
        return status or (1 if ended.done() else 0)  # never started (not the leader), or not found
    code = await process.sprocess.wait()
    # The command's last lines, up to a moment (a grandchild may hold the pipe open).
    await asyncio.wait({ended}, timeout=5)
    if not status:
        lock_release(beat, process)
    return status or code


# Delete the lock only if it is still the value this leader last wrote: never another leader's.
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def lock_release(beat: Any, process: Any) -> None:
    """A leader that stops gives its lock up, so another host (or this one, restarted) takes over within a
    heartbeat rather than after the lock time. single-beat leaves it to expire."""
    import redis

    held = f"{process.fence_token}:{beat.config.HOST_IDENTIFIER}:{process.process_pid()}"
    try:
        released = beat.config.get_redis().eval(RELEASE, 1, f"SINGLE_BEAT_{process.identifier}", held)
    except redis.RedisError as error:
        beat.logger.warning("could not give the lock up (%s): it expires by itself", error)
        return
    if released:
        beat.logger.info("gave the lock up")


def async_pubsub(config: Any) -> Any:
    """single-beat's command channel client, from its URL rather than from host and port."""
    from redis import asyncio as aioredis

    return aioredis.from_url(config.rewrite_redis_url()).pubsub()


def main(argv: list[str]) -> None:
    if argv[:1] == [CHILD]:
        die_with_parent(argv[1:])
    if not argv:
        sys.exit("usage: python -m blueprint.elect COMMAND [ARG...]")
    # single-beat writes the command's output in chunks without flushing: line buffering keeps the log
    # current, and nothing is lost in its final os._exit.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if not os.environ.get("SINGLE_BEAT_REDIS_SENTINEL"):
        redis_wait(os.environ["SINGLE_BEAT_REDIS_SERVER"])
    # singlebeat.beat reads SINGLE_BEAT_* and pings Redis at import.
    from singlebeat import beat

    if not beat.config.REDIS_SENTINEL:  # with a Sentinel, single-beat's own client has a host and port
        beat.Config.get_async_redis_client = async_pubsub
    # The command is started through this file (by path: whatever the working directory) to get its
    # parent-death signal before it becomes the command.
    sys.exit(asyncio.run(lead(beat, [sys.executable, os.path.abspath(__file__), CHILD, *argv])))


if __name__ == "__main__":
    main(sys.argv[1:])
