"""An idle, healthy stack never opens a circuit (issue 11, item 2).

gunicorn closes a keep-alive connection after `keepalive` idle seconds. A request sent on a pooled
connection just as the server closes it fails unanswered; a health probe was tried once, and one failed
probe opened the circuit (11 % of probes on an idle stack). Here every server closes idle connections after
1 s and everything probes or calls at intervals around that second, so the race comes up many times in
half a minute: no probe and no call may fail, and no circuit may open."""

from __future__ import annotations

import logging
import re
import threading
import time

import pybreaker
import pytest
import requests

from common.client import ClientSettings, DependencyMonitor, RetryPolicy, ServiceClient
from common.errors import NotFound, ServiceError
from tests.system.support.harness import ServiceProcess, free_port
from tests.system.support.polling import wait_until
from tests.system.support.stack import JWT_SECRET

KEEPALIVE = 1
TOKEN = "idle-token-0001"
CORE_INTERVALS = ("0.5", "0.995", "1.0", "1.5")
# The race needs a request to arrive just as the server gives up waiting (a window of well under a
# millisecond on an idle machine), so the probes and calls made from this test sweep 15 ms around it.
SWEEP = [0.990 + 0.001 * step for step in range(16)]
IDLE_SECONDS = 30
OPENED = re.compile(r"common\.health: dependency .*(circuit opened|is down)")
PROBE_LINE = re.compile(r'"GET /health HTTP/1.1" 200')


@pytest.fixture(scope="module")
def idle_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("idle")
    memory_port, cognition_port = free_port(), free_port()
    shared = {"SERVICE_TOKEN": TOKEN, "GUNICORN_KEEPALIVE": str(KEEPALIVE), "BREAKER_RESET_SECONDS": "1",
              "MEMORY_SERVICE_URL": f"http://127.0.0.1:{memory_port}",
              "COGNITION_SERVICE_URL": f"http://127.0.0.1:{cognition_port}"}
    memory = ServiceProcess("memory_service.app:create_app()", {**shared, "DATABASE_URL": f"sqlite:///{tmp}/m.db"},
                            tmp / "memory.log", port=memory_port)
    cognition = ServiceProcess("cognition_service.app:create_app()", {**shared, "HEALTH_INTERVAL_SECONDS": "0.99"},
                               tmp / "cognition.log", port=cognition_port)
    cores = [ServiceProcess("core_app.app:create_app()", {
        **shared, "CORTEX_DISTRIBUTED_MODE": "true", "JWT_SECRET": JWT_SECRET, "HEALTH_INTERVAL_SECONDS": interval},
        tmp / f"core-{interval}.log") for interval in CORE_INTERVALS]
    everyone = [memory, cognition, *cores]
    try:
        for proc in everyone:  # start them all, then wait: the waits overlap
            proc.start(wait=False)
        for proc in everyone:
            proc.wait_healthy()
        yield memory, cognition, cores
    finally:
        for proc in reversed(everyone):
            proc.stop()


class Openings(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.count = 0

    def state_change(self, cb, old_state, new_state) -> None:
        if new_state is not None and new_state.name == pybreaker.STATE_OPEN:
            self.count += 1


def calls_until(stop: threading.Event, client: ServiceClient, call, waits: list[float], failures: list) -> None:
    """Call again and again, `waits` apart in turn; a 4xx answer is an answer, anything else a failure."""
    while not stop.is_set():
        for wait in waits:
            try:
                call(client)
            except NotFound:
                pass
            except ServiceError as exc:
                failures.append(exc)
            if stop.wait(wait):
                return


def log_of(proc: ServiceProcess) -> str:
    return proc.log_path.read_text(errors="replace")


def dependencies(core: ServiceProcess) -> dict:
    return requests.get(f"{core.url}/health", timeout=5).json()["dependencies"]


def test_an_idle_healthy_stack_never_opens_a_circuit(idle_stack, caplog):
    memory, cognition, cores = idle_stack
    every_up = {"status": "up", "circuit": "closed"}
    wait_until(lambda: all(dependencies(core) == {"memory": every_up, "cognition": every_up} for core in cores),
               10, message="every Core to see both dependencies up")
    probers = [cognition, *cores]
    marks = {proc.url: len(log_of(proc)) for proc in probers}
    probes_before = len(PROBE_LINE.findall(log_of(memory)))
    caplog.set_level(logging.DEBUG, logger="common.client.transport")

    # Besides the services' own monitors: monitors and ordinary calls from here, each on its own connection,
    # ordinary calls with no retries at all (CLIENT_RETRIES=0), so nothing but the fix can save them.
    no_retries = ClientSettings(retry=RetryPolicy(attempts=0))
    openings, made = Openings(), []

    def client() -> ServiceClient:
        made.append(ServiceClient("memory", memory.url, token=TOKEN, settings=no_retries))
        made[-1].breaker.add_listener(openings)
        return made[-1]

    monitors = [DependencyMonitor({"memory": client()}, interval) for interval in SWEEP]
    stop, failures = threading.Event(), []
    calls = [lambda c: c.list_tools(), lambda c: c.call_tool("get_user", {"user_id": "nobody"})]
    callers = [threading.Thread(target=calls_until, args=(stop, client(), calls[n % 2], SWEEP[n::8], failures),
                                daemon=True) for n in range(8)]
    for worker in [*monitors, *callers]:
        worker.start()
    time.sleep(IDLE_SECONDS)  # the idle period under test, not a synchronisation
    stop.set()
    for monitor in monitors:
        monitor.stop()
    for caller in callers:
        caller.join(5)

    probes = len(PROBE_LINE.findall(log_of(memory))) - probes_before
    expected = sum(IDLE_SECONDS / (interval + 0.05) for interval in [*map(float, CORE_INTERVALS), 0.99, *SWEEP])
    assert probes > 0.6 * expected, f"only {probes} probes reached Memory, expected about {expected:.0f}"
    resent = sum("closed unanswered" in record.getMessage() for record in caplog.records)
    print(f"\n{probes} probes reached Memory in {IDLE_SECONDS} s; {resent} requests from this test met a "
          "connection the server had just closed, and were sent again")
    assert failures == []
    assert openings.count == 0
    assert all(monitor.status["memory"] == "up" for monitor in monitors)
    # The services' own monitors log each opening; sampling /health could miss one that closed again.
    opened = {proc.log_path.name: OPENED.findall(log_of(proc)[marks[proc.url]:]) for proc in probers}
    assert {name: lines for name, lines in opened.items() if lines} == {}
    for core in cores:
        assert requests.get(f"{core.url}/health", timeout=5).json()["status"] == "healthy"
    for each in made:
        each.close()
