"""A slow or greedy client cannot hold the Core: a request body must arrive within
BODY_READ_TIMEOUT_SECONDS (else 408 and the connection closes), and one address may hold at most its cap
of connections, so another address is still served when the first opens more than the pool."""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import time
from contextlib import ExitStack, closing

import pytest

from tests.system.support.harness import ServiceProcess
from tests.system.support.stack import JWT_SECRET

BODY_SECONDS = 1.0
POOL = 30  # WORKER_CONNECTIONS: the greenlet slots of the single worker
CAP = 10  # MAX_CONNECTIONS_PER_LOOPBACK_ADDRESS
OTHER_CLIENT = "127.0.0.2"  # every 127/8 address is loopback on Linux: a second client on this machine


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    proc = ServiceProcess("core_app.app:create_app()", {
        "JWT_SECRET": JWT_SECRET, "DATABASE_URL": f"sqlite:///{tmp}/core.db", "WORKER_CONNECTIONS": str(POOL),
        "BODY_READ_TIMEOUT_SECONDS": str(BODY_SECONDS), "MAX_CONNECTIONS_PER_LOOPBACK_ADDRESS": str(CAP),
    }, tmp / "core.log").start()
    yield proc
    proc.stop()


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection or `timeout` passes."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    return received


def login_head(length: int) -> bytes:
    return (f"POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()


@pytest.mark.parametrize("trickle", [False, True], ids=["body-stops", "body-trickles"])
def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(core, trickle):
    with closing(socket.create_connection(("127.0.0.1", core.port), timeout=5)) as sock:
        started = time.monotonic()
        sock.sendall(login_head(1000) + b'{"email": ')
        if trickle:  # one byte every 0.1 s: 1000 bytes would take 100 s
            sock.setblocking(False)
            while not select.select([sock], [], [], 0.1)[0] and time.monotonic() - started < 5:
                sock.send(b" ")
            sock.setblocking(True)
        answer = read_answer(sock, timeout=5)
        elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body)["error"]["code"] == "request_timeout"
    # read_answer returned because the server closed, well before its own 5 s timeout.
    assert BODY_SECONDS <= elapsed < BODY_SECONDS + 2.5, elapsed


def test_a_body_that_arrives_in_time_is_served(core):
    body = json.dumps({"email": "nobody@example.com", "password": "wrong-password-1"}).encode()
    with closing(socket.create_connection(("127.0.0.1", core.port), timeout=5)) as sock:
        sock.sendall(login_head(len(body)) + body[:10])
        time.sleep(BODY_SECONDS / 2)  # pacing the client, not synchronisation: a slow but timely body
        sock.sendall(body[10:])
        # The server closes after its answer (Connection: close); the timeout only bounds a hung server,
        # so a login slowed by a busy machine (the password hash) is still read whole.
        answer = read_answer(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:300]


def test_one_address_with_more_idle_connections_than_the_pool_cannot_lock_out_another(core):
    with ExitStack() as held:
        idle = [held.enter_context(closing(socket.create_connection(("127.0.0.1", core.port), timeout=5)))
                for _ in range(POOL + 10)]
        # Another address is served while the first holds its connections (without the cap, it waits
        # until gunicorn's keepalive cuts the idle ones).
        other = http.client.HTTPConnection("127.0.0.1", core.port, timeout=2, source_address=(OTHER_CLIENT, 0))
        other.request("GET", "/health")
        assert other.getresponse().status == 200
        other.close()

        # Beyond the cap, each is answered at once with 429 and closed.
        refused = []
        deadline = time.monotonic() + 3
        while len(refused) < len(idle) - CAP and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in idle if s not in refused], [], [], 0.1)
            refused += ready
        assert len(refused) == len(idle) - CAP
        assert read_answer(refused[-1], timeout=1).startswith(b"HTTP/1.1 429")

        # A request from the capped address is told why, with a Retry-After.
        same = http.client.HTTPConnection("127.0.0.1", core.port, timeout=2)
        same.request("GET", "/health")
        answer = same.getresponse()
        assert answer.status == 429 and answer.getheader("Retry-After") == "1"
        assert json.loads(answer.read())["error"]["code"] == "too_many_connections"
        same.close()

        # Each refusal is counted as the Core's rate-limit refusal (read from another loopback address).
        other = http.client.HTTPConnection("127.0.0.1", core.port, timeout=2, source_address=(OTHER_CLIENT, 0))
        other.request("GET", "/metrics")
        scraped = other.getresponse().read().decode()
        other.close()
        counted = re.search(r'^cortex_rate_limit_refusals_total\{limit="max_connections_per_address",service="core"\} '
                            r'([0-9.]+)$', scraped, re.M)
        assert counted is not None and float(counted.group(1)) >= len(idle) - CAP + 1, scraped[-3000:]
