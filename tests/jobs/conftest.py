from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import RedisServer


@pytest.fixture
def app_broker(broker: RedisServer) -> Iterator[RedisServer]:
    """Kiln's Celery app in this process talks to the private test Redis (reads, control broadcasts)."""
    from config.celery import app

    def forget_connections() -> None:
        # The app caches a connection pool and a producer pool made from the URL it first saw.
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = broker.url
    forget_connections()
    try:
        yield broker
    finally:
        app.conf.broker_url = previous
        forget_connections()


@pytest.fixture
def operator(django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


def grant(user, *codenames: str):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance
