"""`manage.py kiln elect` and blueprint/elect.py: single-beat's settings from Kiln's, and what of single-beat
0.6.3 the runner relies on (a canary for upgrades)."""

from __future__ import annotations

import inspect

from blueprint import elect, stack


def test_kombus_unix_socket_url_becomes_redis_pys() -> None:
    assert stack.redis_py_url("redis+socket:///srv/kiln/run/redis.sock") == "unix:///srv/kiln/run/redis.sock"
    assert stack.redis_py_url("redis://:pw@10.0.0.1:6379/0") == "redis://:pw@10.0.0.1:6379/0"
    assert stack.redis_py_url("rediss://10.0.0.1:6380/1") == "rediss://10.0.0.1:6380/1"


def test_single_beat_runs_with_kilns_lock_settings(settings) -> None:
    settings.REDIS_URL = "redis+socket:///tmp/kiln/redis.sock"
    settings.KILN_BEAT_LOCK_SECONDS = 9
    settings.KILN_BEAT_HEARTBEAT_SECONDS = 2
    settings.KILN_BEAT_HOST = "web-2"
    assert stack.election_environment() == {
        "SINGLE_BEAT_REDIS_SERVER": "unix:///tmp/kiln/redis.sock",
        "SINGLE_BEAT_IDENTIFIER": "kiln-beat",
        "SINGLE_BEAT_LOCK_TIME": "9",
        "SINGLE_BEAT_HEARTBEAT_INTERVAL": "2",
        "SINGLE_BEAT_HOST_IDENTIFIER": "web-2",
        "SINGLE_BEAT_WAIT_MODE": "heartbeat",
        "SINGLE_BEAT_LOG_LEVEL": "info",
    }


def test_single_beat_still_has_what_the_runner_relies_on() -> None:
    """singlebeat.beat pings Redis at import, so its source is read here rather than imported."""
    import importlib.util
    from importlib.metadata import version
    from pathlib import Path

    assert version("single-beat") == "0.6.3", "a new single-beat: check blueprint/elect.py's notes again"
    source = Path(importlib.util.find_spec("singlebeat").submodule_search_locations[0], "beat.py").read_text()
    for member in (
        "def get_async_redis_client(self)",
        "def rewrite_redis_url(self)",
        "REDIS_SENTINEL = env(",
        "class Process(object):",
        "def __init__(self, args):",
        "async def run(self):",
        "self.sprocess = await asyncio.create_subprocess_exec(",
        "self.child_exit_cb = self.proc_exit_cb",
        "self._periodic_callback_running = False",
        "logger = logging.getLogger(__name__)",
        "def process_pid(self):",
        '"SINGLE_BEAT_{identifier}".format(identifier=self.identifier)',
        '"{}:{}:{}".format(\n                    self.fence_token, config.HOST_IDENTIFIER, self.process_pid()\n                ),',
    ):
        assert member in source, member
    assert inspect.signature(elect.async_pubsub).parameters.keys() == {"config"}
