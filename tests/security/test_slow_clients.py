"""A slow client cannot make the site unresponsive under `make run`, where no nginx reads requests first:
connections that trickle their headers or their body hold no worker, and a normal request is answered."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
import urllib.request

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.processes

SLOW_CONNECTIONS = 30


def trickle(address: tuple[str, int], stop: threading.Event, body: bool) -> None:
    """Open a request and send one more byte every half second until told to stop."""
    with socket.create_connection(address, timeout=30) as connection:
        if body:
            connection.sendall(
                b"POST /api/images/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 1000000\r\n\r\n"
            )
        else:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not stop.wait(0.5):
            try:
                connection.sendall(b"x" if body else b"X-a: b\r\n")
            except OSError:
                return


def test_clients_trickling_headers_and_bodies_do_not_hold_the_site(stack: Stack) -> None:
    url = urllib.parse.urlsplit(stack.base_url)
    address = (url.hostname, url.port)
    stop = threading.Event()
    threads = [
        threading.Thread(target=trickle, args=(address, stop, n % 2 == 1), daemon=True)
        for n in range(SLOW_CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)  # every slow connection is open and trickling
        # The promise is an answer at all while they hold on: within 20 s, well before the worker timeout
        # (60 s) could free a worker they held. (Not a speed threshold: an answer or none.)
        for _ in range(5):
            with urllib.request.urlopen(f"{stack.base_url}/accounts/login/", timeout=20) as response:
                assert response.status == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
