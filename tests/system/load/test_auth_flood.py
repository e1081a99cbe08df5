"""An unauthenticated flood of wrong-password logins against the real services (issue 11, item 3): 128
connections for a few seconds, while three signed-in users keep calling the API. Their calls must all
succeed (no 503) and the Core's circuit to Memory must stay closed.

Two shapes: from many addresses (a botnet; the stack's sign-in limits are far above the flood, so every
login reaches Memory and costs a password hash) and from one address under the default limits.
What holds them: password hashing on bounded threads of its own in Memory, a bound on sign-ins in
progress in the Core (a share of the connections to Memory, not all of them), paced refusals, and the
per-address limit. The Core's client no longer counting its own full connection pool as a Memory
failure belongs to the client-health branch of the same issue; should a run on this branch alone still
see the circuit open, that part is the other branch's to fix, not a reason to weaken this test.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from tests.system.support.api import Api
from tests.system.support.harness import ServiceProcess
from tests.system.support.stack import start_stack

FLOOD_CONNECTIONS = 128
FLOOD_SECONDS = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("auth-flood"))
    yield stack
    stack.stop()


def flood(base: str, stop: threading.Event, statuses: Counter, lock: threading.Lock) -> None:
    """One connection sending wrong-password logins for unknown addresses (each costs Memory a hash)."""
    with requests.Session() as session:
        while not stop.is_set():
            email = f"nobody-{uuid.uuid4().hex[:12]}@example.com"
            try:
                status = session.post(f"{base}/v1/auth/login", json={"email": email, "password": "guess-guess"},
                                      timeout=15).status_code
            except requests.RequestException:
                status = 0
            with lock:
                statuses[status] += 1


def flood_while_others_work(core_url: str) -> tuple[Counter, Counter, Counter]:
    """Three signed-in users call the API while FLOOD_CONNECTIONS connections send wrong-password logins:
    the flood's answers, the users' answers and the circuit to Memory as /health reported it."""
    users = [Api(core_url, f"calm-{uuid.uuid4().hex[:10]}@example.com") for _ in range(3)]
    conversations = [user.conversation() for user in users]
    stop, lock = threading.Event(), threading.Lock()
    flood_statuses: Counter = Counter()
    attackers = [threading.Thread(target=flood, args=(core_url, stop, flood_statuses, lock), daemon=True)
                 for _ in range(FLOOD_CONNECTIONS)]
    for attacker in attackers:
        attacker.start()
    calm_statuses: Counter = Counter()
    circuits: Counter = Counter()
    deadline = time.monotonic() + FLOOD_SECONDS
    try:
        while time.monotonic() < deadline:
            for user, conversation in zip(users, conversations, strict=True):
                for method, path, body in (("GET", "/v1/workspace", None),
                                           ("GET", f"/v1/conversation/{conversation}/messages", None),
                                           ("POST", "/v1/search", {"query": "garden"})):
                    calm_statuses[user.request(method, path, json=body, timeout=30).status_code] += 1
            health = requests.get(f"{core_url}/health", timeout=30).json()
            circuits[health["dependencies"]["memory"]["circuit"]] += 1
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(30)
    print(f"flood answers {dict(flood_statuses)}, other users {dict(calm_statuses)}, circuit {dict(circuits)}")
    return flood_statuses, calm_statuses, circuits


def test_a_login_flood_from_many_addresses_leaves_other_users_working(stack):
    # The stack's sign-in limits are far above the flood: as if it came from many addresses.
    flood_statuses, calm_statuses, circuits = flood_while_others_work(stack.core.url)

    assert flood_statuses[401] > 0, flood_statuses  # the flood really reached the password check
    assert set(calm_statuses) == {200}, calm_statuses
    assert set(circuits) == {"closed"}, circuits
    assert not flood_statuses[0], "a flood request got no answer at all"


def post_from(address: str, port: int, path: str, body: dict) -> tuple[int, dict, dict]:
    """POST from a chosen loopback address, as a client elsewhere would (any 127.x.y.z is this host)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_the_default_limits_answer_a_flood_from_one_address_with_429(stack, tmp_path):
    defaults = {"AUTH_RATE_LIMIT_PER_ADDRESS": "30/minute;300/hour",
                "AUTH_RATE_LIMIT_PER_ACCOUNT": "10/minute;100/hour"}
    core = ServiceProcess("core_app.app:create_app()", {**stack.core.env, **defaults},
                          tmp_path / "core-limited.log").start()
    try:
        flood_statuses, calm_statuses, circuits = flood_while_others_work(core.url)
        wrong = {"email": f"who-{uuid.uuid4().hex[:8]}@example.com", "password": "guess-guess"}
        status, headers, body = post_from("127.0.0.1", core.port, "/v1/auth/login", wrong)
        elsewhere = post_from("127.0.0.8", core.port, "/v1/auth/login", wrong)[0]
    finally:
        core.stop()

    assert flood_statuses[429] > flood_statuses[401] > 0, flood_statuses
    assert flood_statuses[401] + 3 <= 30  # the 3 users' logins and the flood's share one address's budget
    assert set(calm_statuses) == {200}, calm_statuses
    assert set(circuits) == {"closed"}, circuits
    assert status == 429 and body["error"]["code"] == "too_many_requests", body
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert elsewhere == 401  # another address still gets its answer
