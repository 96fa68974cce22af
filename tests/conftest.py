from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker import Probe, empty_broker
from tests.support.processes import RedisServer, start_redis
from tests.support.s3 import S3Server, media_settings_use, start_s3
from tests.support.stack import ADMIN_PASSWORD, Stack, running_stack

NO_BROKER = "redis+socket:///nonexistent/kiln-tests-have-no-broker.sock"


def app_connections_forget() -> None:
    """Kiln's app caches a connection pool and a producer pool made from the URL it first saw."""
    from config.celery import app

    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session", autouse=True)
def no_default_broker() -> None:
    """What this process publishes without naming a broker goes nowhere: never to the embedded Redis of a
    `make run` stack up in the same checkout (the settings' default). Tests that need a broker pass one."""
    from config.celery import app

    app.conf.broker_url = NO_BROKER


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> None:
    """In this process only: PBKDF2's million iterations cost a quarter of a second per user created or
    logged in, and the access, delete and throttle tests make hundreds. The processes the tests start keep
    Kiln's own hashers."""
    from django.conf import settings
    from django.contrib.auth import hashers

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def no_job_history_in_the_test_process() -> None:
    """The test process is not one of Kiln's processes: what it publishes is recorded by the workers that
    run it (their own databases), not here, where most tests have no database at all. Tests of the
    recording connect it themselves."""
    from jobs import receivers

    receivers.disconnect()


@pytest.fixture(autouse=True)
def no_cached_broker_connections() -> None:
    """Each test starts with Kiln's app as Celery's current app (a test that made an app of its own made that
    one current), pointing at no broker, and holding no connection an earlier test made to a live Redis
    (the app caches pools made from the URL it first saw; a test that only patched the URL leaves them).
    The files of the suite share processes in no fixed order."""
    from config.celery import app

    app.set_current()
    app.conf.broker_url = NO_BROKER
    app_connections_forget()


@pytest.fixture(autouse=True)
def no_writer_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests that use a history recorder flush it themselves: a writer thread racing them would write
    first and keep a database connection open after the test (PostgreSQL then refuses to drop the test
    database). The processes the tests start keep their threads."""
    from jobs.history import Recorder

    monkeypatch.setattr(Recorder, "_ensure_thread", lambda self: None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port for the whole run; each test starts from an empty db."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running stack (`manage.py kiln run`) shared by the end-to-end tests that ask for it."""
    with running_stack(
        tmp_path_factory.mktemp("e2e") / "var",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        KILN_DASHBOARD_REFRESH_SECONDS="1",  # the browser tests watch it refresh
    ) as stack:
        stack.wait_until_running()
        yield stack


@pytest.fixture
def broker(redis_server: RedisServer) -> RedisServer:
    empty_broker(redis_server)
    return redis_server


@pytest.fixture
def probe(broker: RedisServer) -> Iterator[Probe]:
    client = Probe(broker)
    yield client
    client.close()


@pytest.fixture
def media_root(settings, tmp_path):
    """A private MEDIA_ROOT: default_storage follows the setting (Django resets it on change)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS) per test process, started when a test first asks for it."""
    server = start_s3(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def s3_media(settings, s3_server: S3Server, request) -> S3Server:
    """Media on the test S3 server, under a prefix of this test's own: default_storage follows STORAGES."""
    import re
    import secrets

    prefix = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40] + "-" + secrets.token_hex(3)
    environ = s3_server.environment(prefix)
    media_settings_use(settings, environ)
    s3_server.prefix = prefix
    return s3_server


@pytest.fixture
def app_broker(broker: RedisServer) -> Iterator[RedisServer]:
    """Kiln's Celery app in this process talks to the private test Redis (reads, control broadcasts)."""
    from config.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = broker.url
    app_connections_forget()
    try:
        yield broker
    finally:
        app.conf.broker_url = previous
        app_connections_forget()
