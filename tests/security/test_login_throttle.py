"""Logins are throttled: a guesser is locked out with a clear page, the lockout is recorded, an admin lifts it."""

from __future__ import annotations

import logging

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.core.management import call_command
from django.test import Client

pytestmark = [pytest.mark.database, pytest.mark.django_db]


@pytest.fixture
def alice(django_user_model, settings):
    settings.KILN_LOGIN_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT = 5
    return django_user_model.objects.create_user("alice", password="the-right-one-9", is_staff=True)


def log_in(client: Client, password: str, url: str = "/accounts/login/", address: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": address} if address else {}
    return client.post(url, {"username": "alice", "password": password}, **headers)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_forty_wrong_passwords_lock_the_login_then_an_admin_lifts_it(alice, url, caplog) -> None:
    client = Client()
    statuses = [log_in(client, f"guess-{n}", url).status_code for n in range(40)]
    assert statuses[:4] == [200] * 4  # the form again, "didn't match"
    assert set(statuses[5:]) == {429}

    with caplog.at_level(logging.WARNING, logger="accounts.throttle"):
        locked = log_in(client, "the-right-one-9", url)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    page = locked.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page  # noqa: PT018
    assert "_auth_user_id" not in client.session
    assert "login locked out: username='alice'" in caplog.text
    # The audit trail: the attempts, with the address they came from, never the passwords typed.
    attempt = AccessAttempt.objects.get(username="alice")
    assert attempt.failures_since_start >= 5 and attempt.ip_address == "127.0.0.1"  # noqa: PT018
    assert AccessFailureLog.objects.filter(username="alice").count() >= 5
    assert "guess-" not in attempt.post_data

    call_command("axes_reset_username", "alice")
    assert log_in(client, "the-right-one-9", url).status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_the_lock_holds_one_address_so_nobody_can_lock_a_colleague_out_from_elsewhere(alice) -> None:
    """Behind nginx (a loopback peer) the address is X-Forwarded-For, which nginx overwrites."""
    attacker, colleague = Client(), Client()
    for n in range(10):
        log_in(attacker, f"guess-{n}", address="203.0.113.7")
    assert log_in(attacker, "the-right-one-9", address="203.0.113.7").status_code == 429
    assert log_in(colleague, "the-right-one-9", address="198.51.100.20").status_code == 302


def test_a_forwarded_address_from_a_non_loopback_peer_is_ignored(alice) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(10):
        # Rotating X-Forwarded-For does not escape the lock: only a loopback proxy is believed.
        log_in(attacker, f"guess-{n}", address=f"198.51.100.{n}")
    assert log_in(attacker, "the-right-one-9", address="198.51.100.99").status_code == 429
