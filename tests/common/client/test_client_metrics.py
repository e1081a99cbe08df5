"""What the network client records in the metrics: each call once, by tool and outcome, timed with its
retries; each retry once; each change of a circuit's state; each health probe. Values are read from the
process's registry as differences, since other tests count into it too."""

from __future__ import annotations

import io
import json
import types

import gevent
import pytest
import requests
import responses
from prometheus_client import REGISTRY
from responses.registries import OrderedRegistry
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.response import HTTPResponse

from common import metrics
from common.client import ClientSettings, DependencyMonitor, RetryPolicy, ServiceClient
from common.client import service as service_module
from common.client.breaker import ConcurrentBreaker
from common.client.retry import BoundedRetry, build_retry
from common.client.service import call_label
from common.client.transport import Transport
from common.errors import ServiceBusy, ServiceError, ServiceUnavailable
from tests.common.client.test_retry import FakeClock, fail_connect, policy
from tests.common.client.test_service import BASE, HEALTH_URL, TOOL_URL, backdate, error_body, sse_body

OUTCOMES = ("ok", "error", "unavailable", "timeout", "busy", "circuit_open", "cancelled")


class Sample:
    """One series of the registry, remembered when made, so a test reads what it added."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = self.value()

    def value(self) -> float:
        return REGISTRY.get_sample_value(self.name, self.labels) or 0.0

    @property
    def added(self) -> float:
        return self.value() - self.start


def calls(tool: str, outcome: str, dependency: str = "memory") -> Sample:
    return Sample("cortex_client_calls_total", dependency=dependency, tool=tool, outcome=outcome)


def all_outcomes(tool: str) -> dict[str, Sample]:
    return {outcome: calls(tool, outcome) for outcome in OUTCOMES}


def timed(tool: str, part: str = "count") -> Sample:
    return Sample(f"cortex_client_call_duration_seconds_{part}", dependency="memory", tool=tool)


def retries(dependency: str = "memory") -> Sample:
    return Sample("cortex_client_retries_total", dependency=dependency)


def transitions(state: str, dependency: str = "memory") -> Sample:
    return Sample("cortex_circuit_transitions_total", dependency=dependency, state=state)


def gauge(name: str, dependency: str = "memory") -> float | None:
    return REGISTRY.get_sample_value(name, {"dependency": dependency})


def make_client(*, fail_max: int = 3, attempts: int = 2, **settings) -> ServiceClient:
    return ServiceClient("memory", BASE, settings=ClientSettings(
        retry=RetryPolicy(attempts=attempts, backoff_factor=0, jitter=0), fail_max=fail_max, reset_timeout=30,
        **settings))


pytestmark = pytest.mark.usefixtures("metrics_on")


@pytest.fixture
def mock():
    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- calls by tool and outcome ---------------------------------------------------------------------------

@pytest.mark.parametrize(("answers", "outcome"), [
    ([{"json": {"result": {}}}], "ok"),
    ([{"status": 404, "json": error_body("tool_not_found")}], "error"),
    ([{"status": 409, "json": error_body("conflict")}], "error"),
    ([{"status": 500, "json": error_body("tool_execution_error")}], "error"),
    ([{"json": {"no": "result"}}], "error"),
    ([{"status": 503, "json": error_body("unavailable")}] * 3, "unavailable"),
    ([{"body": requests.exceptions.ConnectionError("refused")}], "unavailable"),
    ([{"status": 504, "json": error_body("timeout")}] * 3, "timeout"),
    ([{"body": requests.exceptions.ReadTimeout("slow")}], "timeout"),
    ([{"status": 503, "json": error_body("busy")}] * 3, "busy"),
], ids=["ok", "404", "409", "500", "malformed", "503", "refused", "504", "read-timeout", "remote-busy"])
def test_a_call_is_counted_once_with_its_outcome(mock, answers, outcome):
    for answer in answers:
        mock.post(TOOL_URL, **answer)
    counted, durations = all_outcomes("store_message"), timed("store_message")
    client = make_client()
    if outcome == "ok":
        client.call_tool("store_message", {})
    else:
        with pytest.raises(ServiceError):
            client.call_tool("store_message", {})
    assert {name: sample.added for name, sample in counted.items()} == {
        name: 1.0 if name == outcome else 0.0 for name in OUTCOMES}
    assert durations.added == 1



def hanging(request, sent: list | None = None):
    """A service that answers only after its caller has given up."""
    if sent is not None:
        sent.append(request)
    gevent.sleep(10)
    return 200, {}, json.dumps({"result": {}})


def test_calls_whose_greenlets_are_killed_are_cancelled_and_leave_the_circuit_closed(mock):
    sent: list = []
    for _ in range(6):  # the mock's registry answers with each registration once, in order
        mock.add_callback(responses.POST, TOOL_URL, callback=lambda request: hanging(request, sent))
    mock.post(TOOL_URL, status=500, json=error_body("tool_execution_error"))
    client = make_client(fail_max=5, attempts=1)
    counted = all_outcomes("store_message")
    greenlets = [gevent.spawn(client.call_tool, "store_message", {}) for _ in range(6)]
    gevent.sleep(0.05)
    assert len(sent) == 6  # every call is waiting on the service when it is killed
    gevent.killall(greenlets, block=True, timeout=5)
    assert {name: sample.added for name, sample in counted.items()} == {
        name: 6.0 if name == "cancelled" else 0.0 for name in OUTCOMES}
    assert (client.circuit, client.breaker.fail_counter) == ("closed", 0)
    with pytest.raises(ServiceError):  # an ordinary failure still counts against the service
        client.call_tool("store_message", {})
    assert client.breaker.fail_counter == 1


def test_a_call_cut_off_by_its_callers_timeout_is_cancelled(mock):
    mock.add_callback(responses.POST, TOOL_URL, callback=hanging)
    client = make_client(fail_max=1)
    counted, durations = all_outcomes("store_message"), timed("store_message")
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.01):
        client.call_tool("store_message", {})
    assert {name: sample.added for name, sample in counted.items()} == {
        name: 1.0 if name == "cancelled" else 0.0 for name in OUTCOMES}
    assert durations.added == 1
    assert (client.circuit, client.breaker.fail_counter) == ("closed", 0)


def test_a_call_refused_by_the_open_circuit_is_circuit_open_and_sends_nothing(mock):
    client = make_client()
    client.breaker.trip("its health probe failed")
    counted = calls("store_message", "circuit_open")
    with pytest.raises(ServiceUnavailable, match="circuit open: its health probe failed"):
        client.call_tool("store_message", {})
    assert counted.added == 1
    assert len(mock.calls) == 0


def test_a_call_finding_every_pooled_connection_taken_is_busy(mock):
    client = make_client(pool_size=1, connect_timeout=0.01)
    counted, unavailable = calls("store_message", "busy"), calls("store_message", "unavailable")
    with client.transport.slot(), pytest.raises(ServiceBusy):
        client.call_tool("store_message", {})
    assert (counted.added, unavailable.added) == (1, 0)
    assert client.circuit == "closed"


@pytest.mark.parametrize(("name", "label"), [
    ("store_message", "store_message"), ("a" * 64, "a" * 64), ("a" * 65, "other"), ("Store", "other"),
    ("get_user2", "other"), ("list-messages", "other"), ("", "other"), ("x\n", "other"),
    ("4f1c2b9e-0d6e-4e7a-9a1b-2f6b7c8d9e0f", "other"),
])
def test_tool_labels_are_plain_names_or_other(name, label):
    assert call_label(name) == label


def test_a_tool_name_outside_the_plain_set_is_counted_as_other(mock):
    mock.post(f"{BASE}/tool/Weird-Tool9", json={"result": {}})
    counted = calls("other", "ok")
    make_client().call_tool("Weird-Tool9", {})
    assert counted.added == 1
    assert REGISTRY.get_sample_value("cortex_client_calls_total", {
        "dependency": "memory", "tool": "Weird-Tool9", "outcome": "ok"}) is None


def test_resources_are_counted_by_their_first_segment_when_opened(mock):
    mock.get(f"{BASE}/resource/history/u-123/limit/5", body=sse_body([{"n": 1}]), content_type="text/event-stream")
    mock.get(f"{BASE}/resource/9f86d081/messages", status=404, json=error_body("not_found"))
    history, odd = calls("resource:history", "ok"), calls("resource:other", "error")
    client = make_client()
    assert list(client.read_resource("/history/u-123/limit/5")) == [{"n": 1}]
    with pytest.raises(ServiceError):
        client.read_resource("9f86d081/messages")
    assert (history.added, odd.added) == (1, 1)


def test_discovery_and_health_probes_are_counted_apart_from_tools(mock):
    mock.get(f"{BASE}/tools", json={"tools": []})
    mock.get(f"{BASE}/resources", json={"resources": []})
    mock.get(HEALTH_URL, body=requests.exceptions.ConnectionError("refused"))
    tools, resources, probe = (calls("discovery:tools", "ok"), calls("discovery:resources", "ok"),
                               calls("probe:health", "unavailable"))
    client = make_client()
    client.list_tools()
    client.list_resources()
    with pytest.raises(ServiceUnavailable):
        client.health()
    assert (tools.added, resources.added, probe.added) == (1, 1, 1)


def test_nothing_is_recorded_when_metrics_are_off(mock):
    mock.post(TOOL_URL, json={"result": {}})
    counted = calls("store_message", "ok")
    metrics.enable(False)
    make_client().call_tool("store_message", {})
    assert counted.added == 0


# --- retries ---------------------------------------------------------------------------------------------

def test_each_retry_is_counted_once(mock):
    for status in (503, 502):
        mock.post(TOOL_URL, status=status, json=error_body("unavailable"))
    mock.post(TOOL_URL, json={"result": {}})
    retried, ok = retries(), calls("store_message", "ok")
    make_client(attempts=3).call_tool("store_message", {})
    assert (len(mock.calls), retried.added, ok.added) == (3, 2, 1)


def test_the_answer_that_exhausts_the_retries_is_not_a_retry(mock):
    for _ in range(3):
        mock.post(TOOL_URL, status=503, json=error_body("unavailable"))
    retried = retries()
    with pytest.raises(ServiceUnavailable):
        make_client(attempts=2).call_tool("store_message", {})
    assert (len(mock.calls), retried.added) == (3, 2)


def answer(status: int, url: str) -> HTTPResponse:
    body = {"result": {}} if status == 200 else error_body("unavailable")
    return HTTPResponse(body=io.BytesIO(json.dumps(body).encode()), status=status, preload_content=False,
                        headers={"Content-Type": "application/json"}, request_url=url)


@pytest.mark.parametrize(("answers", "outcome"), [
    ([ConnectTimeoutError("connect timed out")] * 3, "unavailable"),
    ([ConnectionRefusedError("refused")] * 3, "unavailable"),
    ([503, 502, 200], "ok"),
    ([503, 503, 503], "unavailable"),
], ids=["connect-timeout", "refused", "503-then-ok", "503-throughout"])
def test_retries_inside_urllib3_are_counted_once_each_and_timed(monkeypatch, answers, outcome):
    """Through urllib3's own retry loop (`responses` replaces it), with a clock that moves only while the
    backoff sleeps, so the call's time is exactly the retries' waits."""
    clock, pending = FakeClock(), list(answers)

    def send(pool, conn, method, url, **kwargs):
        given = pending.pop(0)
        if isinstance(given, BaseException):
            raise given
        return answer(given, url)

    monkeypatch.setattr(HTTPConnectionPool, "_make_request", send)
    monkeypatch.setattr(service_module, "time", types.SimpleNamespace(perf_counter=clock))
    settings = ClientSettings(retry=policy(attempts=2, backoff_factor=0.5))
    retry = build_retry(settings.retry, clock=clock, sleeper=clock.sleep, dependency="memory")
    client = ServiceClient("memory", BASE, settings=settings, transport=Transport("memory", settings, retry))
    retried, counted, waited = retries(), calls("store_message", outcome), timed("store_message", "sum")

    if outcome == "ok":
        client.call_tool("store_message", {})
    else:
        with pytest.raises(ServiceUnavailable):
            client.call_tool("store_message", {})
    assert (pending, retried.added, counted.added) == ([], 2, 1)
    assert sum(clock.slept) > 0  # urllib3 sends the first retry at once, the second after a backoff
    assert waited.added == pytest.approx(sum(clock.slept))


def test_a_retry_refused_by_the_time_cap_is_not_counted():
    clock = FakeClock()
    retry = build_retry(policy(backoff_factor=0.5, max_elapsed=3.0), clock=clock, sleeper=clock.sleep,
                        dependency="memory")
    retried, allowed = retries(), 0
    with pytest.raises(MaxRetryError):
        while True:
            retry = fail_connect(retry)
            allowed += 1
    assert allowed > 0
    assert retried.added == allowed


def test_the_dependency_is_carried_through_every_copy_of_the_retry():
    retry = build_retry(policy(), dependency="cognition")
    assert retry.new().dependency == "cognition"
    assert fail_connect(retry).dependency == "cognition"
    adapter = Transport("cognition", ClientSettings()).session.get_adapter(BASE)
    assert isinstance(adapter.max_retries, BoundedRetry) and adapter.max_retries.dependency == "cognition"


def test_a_retry_without_a_dependency_counts_nothing():
    retried = retries("None")
    fail_connect(build_retry(policy()))
    assert retried.added == 0


# --- the circuit -----------------------------------------------------------------------------------------

def test_a_new_breaker_records_its_state_without_a_transition():
    metrics.circuit_changed("llm", "open", transition=False)
    closed = transitions("closed", "llm")
    ConcurrentBreaker(fail_max=1, reset_timeout=30, name="llm")
    assert gauge("cortex_circuit_state", "llm") == 0
    assert closed.added == 0


def test_failures_past_fail_max_open_the_circuit_once_then_a_trial_closes_it(mock):
    for _ in range(2):
        mock.post(TOOL_URL, body=requests.exceptions.ConnectionError("refused"))
    mock.post(TOOL_URL, json={"result": {}})
    client = make_client(fail_max=2, attempts=0)
    opened, half_open, closed = transitions("open"), transitions("half_open"), transitions("closed")
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            client.call_tool("store_message", {})
    assert (opened.added, half_open.added, closed.added) == (1, 0, 0)
    assert gauge("cortex_circuit_state") == 2

    backdate(client, 31)
    client.call_tool("store_message", {})
    assert (opened.added, half_open.added, closed.added) == (1, 1, 1)
    assert gauge("cortex_circuit_state") == 0


def test_a_failed_trial_opens_the_circuit_again(mock):
    mock.post(TOOL_URL, body=requests.exceptions.ConnectionError("refused"))
    client = make_client(fail_max=1, attempts=0)
    client.breaker.open()
    backdate(client, 31)
    opened, half_open = transitions("open"), transitions("half_open")
    with pytest.raises(ServiceUnavailable):
        client.call_tool("store_message", {})
    assert (half_open.added, opened.added) == (1, 1)
    assert gauge("cortex_circuit_state") == 2


def test_opening_an_open_circuit_again_is_no_transition():
    breaker = ConcurrentBreaker(fail_max=1, reset_timeout=30, name="memory")
    opened = transitions("open")
    breaker.open()
    breaker.open()  # what a second call failing alongside the first does
    assert opened.added == 1


def test_the_monitor_trips_and_recovers_the_circuit_and_reports_the_dependency(mock):
    client = make_client()
    monitor = DependencyMonitor({"memory": client}, interval=5)
    opened, closed = transitions("open"), transitions("closed")
    mock.get(HEALTH_URL, body=requests.exceptions.ConnectionError("refused"))
    mock.get(HEALTH_URL, body=requests.exceptions.ConnectionError("refused"))
    for _ in range(2):
        assert monitor.probe("memory") is False
    assert (opened.added, closed.added) == (1, 0)
    assert (gauge("cortex_circuit_state"), gauge("cortex_dependency_up")) == (2, 0)

    mock.get(HEALTH_URL, json={"status": "healthy", "service": "memory"})
    mock.get(HEALTH_URL, json={"status": "healthy", "service": "memory"})
    assert monitor.probe("memory") is True  # up, but the reset timeout holds the circuit open
    assert (closed.added, gauge("cortex_circuit_state"), gauge("cortex_dependency_up")) == (0, 2, 1)
    backdate(client, 31)
    assert monitor.probe("memory") is True
    assert (opened.added, closed.added, gauge("cortex_circuit_state")) == (1, 1, 0)


def test_a_probe_finding_another_service_reports_the_dependency_down(mock):
    mock.get(HEALTH_URL, json={"status": "healthy", "service": "cognition"})
    DependencyMonitor({"memory": make_client()}, interval=5).probe("memory")
    assert gauge("cortex_dependency_up") == 0
