"""broker/worker.py's wrapper of Celery's prefork pool: a reconnection to the broker does not crash the worker
on a pool process that exited and is not yet reaped (celery issue 9250)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from celery.concurrency.asynpool import AsynPool
from kombu.asynchronous import Hub

from broker.worker import pool_reconnection_fix


@pytest.fixture
def hub():
    hub = Hub()
    yield hub
    hub.close()


def test_registering_the_pool_again_skips_an_exited_process_and_watches_a_running_one(hub: Hub) -> None:
    pool_reconnection_fix()
    pool = SimpleNamespace(_event_process_exit=lambda *args: None)
    exited = SimpleNamespace(_sentinel_poll=None)  # its exit was seen: the pool stopped watching it

    AsynPool._track_child_process(pool, exited, hub)
    assert hub.readers == {}

    read_end, write_end = os.pipe()
    try:
        running = SimpleNamespace(_sentinel_poll=read_end)
        AsynPool._track_child_process(pool, running, hub)
        assert read_end in hub.readers
    finally:
        hub.remove(read_end)
        os.close(read_end)
        os.close(write_end)


def test_celery_itself_still_fails_on_an_exited_process(hub: Hub) -> None:
    """The day Celery handles it, this fails: the wrapper in broker/worker.py can go."""
    pool_reconnection_fix()
    original = AsynPool._track_child_process.__wrapped__
    pool = SimpleNamespace(_event_process_exit=lambda *args: None)
    with pytest.raises(ValueError, match="file descriptor is None"):
        original(pool, SimpleNamespace(_sentinel_poll=None), hub)
