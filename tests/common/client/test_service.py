"""The network client against `responses` mocks: tool calls, retries, errors, the circuit, resource
streams and the health monitor. No sockets, no sleeping."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from flask import Flask
from responses.registries import OrderedRegistry

from common.client import ClientSettings, DependencyMonitor, RetryPolicy, ServiceClient
from common.errors import (
    Conflict,
    Forbidden,
    InvalidArguments,
    NotFound,
    ServiceTimeout,
    ServiceUnavailable,
    ToolError,
    ToolExecutionError,
    ToolNotFound,
    Unauthorized,
)
from common.request_ids import install_request_ids
from common.server import health_blueprint
from common.sse import Event, finite_stream

BASE = "http://memory.test"
TOOL_URL = f"{BASE}/tool/store_message"
RESOURCE_URL = f"{BASE}/resource/conversations/c1/messages"
HEALTH_URL = f"{BASE}/health"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")  # what the server accepts (common.server.protocol)


def make_client(*, token: str | None = None, fail_max: int = 3, reset_timeout: float = 30,
                attempts: int = 2) -> ServiceClient:
    settings = ClientSettings(
        retry=RetryPolicy(attempts=attempts, backoff_factor=0, jitter=0),
        fail_max=fail_max, reset_timeout=reset_timeout)
    return ServiceClient("memory", BASE, token=token, settings=settings)


def error_body(code: str, message: str = "remote message", details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def sse_body(items: list[dict]) -> bytes:
    return b"".join(finite_stream(items))


def backdate(client: ServiceClient, seconds: float) -> None:
    client.breaker._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=seconds)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def ordered():
    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client():
    client = make_client()
    yield client
    client.close()


# --- tool calls -----------------------------------------------------------------------------------


def test_call_tool_sends_arguments_and_returns_result(mock, client):
    mock.post(TOOL_URL, json={"result": {"message_id": "m1"}})
    assert client.call_tool("store_message", {"conversation_id": "c1", "text": "hi"}) == {"message_id": "m1"}
    request = mock.calls[0].request
    assert json.loads(request.body) == {"arguments": {"conversation_id": "c1", "text": "hi"}}
    assert request.headers["Content-Type"] == "application/json"
    assert KEY_PATTERN.match(request.headers["Idempotency-Key"])
    assert "Authorization" not in request.headers


def test_call_tool_sends_bearer_token(mock):
    mock.post(TOOL_URL, json={"result": {}})
    make_client(token="s3cret").call_tool("store_message", {})
    assert mock.calls[0].request.headers["Authorization"] == "Bearer s3cret"


def test_each_logical_call_has_its_own_key(mock, client):
    mock.post(TOOL_URL, json={"result": {}})
    client.call_tool("store_message", {})
    client.call_tool("store_message", {})
    keys = [call.request.headers["Idempotency-Key"] for call in mock.calls]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_given_idempotency_key_is_sent(mock, client):
    mock.post(TOOL_URL, json={"result": {}})
    client.call_tool("store_message", {}, idempotency_key="caller-key-123")
    assert mock.calls[0].request.headers["Idempotency-Key"] == "caller-key-123"


def test_retries_send_the_same_key(ordered, client):
    ordered.post(TOOL_URL, status=503, json=error_body("unavailable"))
    ordered.post(TOOL_URL, status=503, json=error_body("unavailable"))
    ordered.post(TOOL_URL, json={"result": {"message_id": "m1"}})
    assert client.call_tool("store_message", {"text": "hi"}) == {"message_id": "m1"}
    assert len(ordered.calls) == 3
    keys = {call.request.headers["Idempotency-Key"] for call in ordered.calls}
    assert len(keys) == 1
    bodies = {call.request.body for call in ordered.calls}
    assert len(bodies) == 1
    assert client.circuit == "closed"


def test_request_id_of_the_current_request_is_propagated(mock, client):
    mock.post(TOOL_URL, json={"result": {}})
    app = Flask(__name__)
    install_request_ids(app)
    with app.test_request_context(headers={"X-Request-ID": "trace-42"}):
        app.preprocess_request()  # the request hooks: the request's id and trace are taken
        client.call_tool("store_message", {})
    assert mock.calls[0].request.headers["X-Request-ID"] == "trace-42"


REMOTE_ERRORS = [
    (400, "invalid_arguments", InvalidArguments, {"errors": [{"field": "text", "message": "Field required"}]}),
    (401, "unauthorized", Unauthorized, {}),
    (403, "forbidden", Forbidden, {"conversation_id": "c1"}),
    (404, "not_found", NotFound, {"id": "c1"}),
    (404, "tool_not_found", ToolNotFound, {}),
    (409, "conflict", Conflict, {"field": "email"}),
]


@pytest.mark.parametrize(("status", "code", "cls", "details"), REMOTE_ERRORS, ids=[r[1] for r in REMOTE_ERRORS])
def test_remote_4xx_errors_come_back_as_their_class(mock, client, status, code, cls, details):
    mock.post(TOOL_URL, status=status, json=error_body(code, "what went wrong", details))
    with pytest.raises(cls) as excinfo:
        client.call_tool("store_message", {})
    error = excinfo.value
    assert type(error) is cls
    assert (error.status, error.code, error.message, error.details) == (status, code, "what went wrong", details)
    assert len(mock.calls) == 1  # 4xx is not retried
    assert client.circuit == "closed"


def test_remote_500_is_tool_execution_error(mock, client):
    mock.post(TOOL_URL, status=500, json=error_body("tool_execution_error", "tool 'store_message' failed"))
    with pytest.raises(ToolExecutionError) as excinfo:
        client.call_tool("store_message", {})
    assert excinfo.value.status == 500
    assert excinfo.value.message == "tool 'store_message' failed"
    assert len(mock.calls) == 1  # 500 is not retried


def test_remote_500_with_unknown_code_keeps_it(mock, client):
    mock.post(TOOL_URL, status=500, json=error_body("database_locked", "locked", {"table": "messages"}))
    with pytest.raises(ToolError) as excinfo:
        client.call_tool("store_message", {})
    assert (excinfo.value.status, excinfo.value.code) == (500, "database_locked")
    assert excinfo.value.details == {"table": "messages"}


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"not json"), (200, b'{"no_result": 1}'), (200, b"[1, 2]"), (500, b"<html>oops</html>")],
    ids=["text-200", "no-result", "list", "html-500"],
)
def test_malformed_answers_are_bad_response(mock, client, status, body):
    mock.post(TOOL_URL, status=status, body=body, content_type="application/json")
    with pytest.raises(ToolError) as excinfo:
        client.call_tool("store_message", {})
    assert (excinfo.value.status, excinfo.value.code) == (502, "bad_response")


@pytest.mark.parametrize(("status", "expected"), [(502, ServiceUnavailable), (503, ServiceUnavailable),
                                                  (504, ServiceTimeout)])
def test_a_gateway_page_in_front_of_the_service_names_the_service(mock, client, status, expected):
    mock.post(TOOL_URL, status=status, body=b"<html>Bad Gateway</html>", content_type="text/html")
    with pytest.raises(expected) as excinfo:
        client.call_tool("store_message", {})
    assert excinfo.value.details["service"] == "memory" and "memory" in excinfo.value.message


def test_remote_503_after_retries_names_the_service(mock, client):
    mock.post(TOOL_URL, status=503, json=error_body("unavailable", "database is down"))
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call_tool("store_message", {})
    assert excinfo.value.details["service"] == "memory"
    assert len(mock.calls) == 3  # the first try and two retries


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (requests.exceptions.ConnectionError("connection refused"), ServiceUnavailable),
        (requests.exceptions.ConnectTimeout("connect timed out"), ServiceUnavailable),
        (requests.exceptions.ReadTimeout("read timed out"), ServiceTimeout),
    ],
    ids=["refused", "connect-timeout", "read-timeout"],
)
def test_network_failures_become_service_errors_naming_the_service(mock, client, exc, cls):
    mock.post(TOOL_URL, body=exc)
    with pytest.raises(cls) as excinfo:
        client.call_tool("store_message", {})
    assert "memory" in excinfo.value.message
    if cls is ServiceUnavailable:
        assert excinfo.value.details == {"service": "memory"}
    assert "refused" not in excinfo.value.message  # no raw transport text in user-facing messages


def test_circuit_opens_after_fail_max_failures_and_then_fails_fast(mock):
    client = make_client(fail_max=3)
    mock.post(TOOL_URL, body=requests.exceptions.ConnectionError("refused"))
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            client.call_tool("store_message", {})
    assert client.circuit == "open"
    assert len(mock.calls) == 3
    for call in (lambda: client.call_tool("store_message", {}), client.list_tools,
                 lambda: client.read_resource("conversations/c1/messages")):
        with pytest.raises(ServiceUnavailable) as excinfo:
            call()
        assert excinfo.value.details == {"service": "memory", "circuit": "open"}
        assert "memory" in excinfo.value.message
    assert len(mock.calls) == 3  # nothing went over the wire while open


def test_repeated_5xx_opens_the_circuit(mock):
    client = make_client(fail_max=2)
    mock.post(TOOL_URL, status=500, json=error_body("tool_execution_error"))
    for _ in range(2):
        with pytest.raises(ToolExecutionError):
            client.call_tool("store_message", {})
    assert client.circuit == "open"


def test_4xx_never_opens_the_circuit(mock):
    client = make_client(fail_max=2)
    mock.post(TOOL_URL, status=404, json=error_body("not_found"))
    for _ in range(10):
        with pytest.raises(NotFound):
            client.call_tool("store_message", {})
    assert client.circuit == "closed"
    assert len(mock.calls) == 10


def test_good_trial_after_reset_timeout_closes_the_circuit(ordered):
    client = make_client(fail_max=2, reset_timeout=30, attempts=0)
    for _ in range(2):
        ordered.post(TOOL_URL, body=requests.exceptions.ConnectionError("refused"))
    ordered.post(TOOL_URL, json={"result": {"ok": True}})
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            client.call_tool("store_message", {})
    assert client.circuit == "open"
    backdate(client, 31)
    assert client.call_tool("store_message", {}) == {"ok": True}
    assert client.circuit == "closed"


def test_list_tools_and_resources(mock):
    client = make_client(token="t0k3n")
    tools = [{"name": "store_message", "description": "d", "input_schema": {"type": "object"}}]
    resources = [{"path_template": "conversations/{id}/messages", "description": "d", "params": {}}]
    mock.get(f"{BASE}/tools", json={"tools": tools})
    mock.get(f"{BASE}/resources", json={"resources": resources})
    assert client.list_tools() == tools
    assert client.list_resources() == resources
    assert all(call.request.headers["Authorization"] == "Bearer t0k3n" for call in mock.calls)


# --- resource streams -----------------------------------------------------------------------------


def test_read_resource_yields_items(mock):
    client = make_client(token="t0k3n")
    items = [{"id": "m1", "text": "hello\nworld"}, {"id": "m2", "text": "\u00e7a va \u2713"}]
    mock.get(RESOURCE_URL, body=sse_body(items), content_type="text/event-stream")
    assert list(client.read_resource("conversations/c1/messages", {"limit": 2})) == items
    request = mock.calls[0].request
    assert request.url == f"{RESOURCE_URL}?limit=2"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == "Bearer t0k3n"


def test_read_resource_retries_before_the_stream_starts(ordered, client):
    ordered.get(RESOURCE_URL, status=503, json=error_body("unavailable"))
    ordered.get(RESOURCE_URL, body=sse_body([{"n": 1}]), content_type="text/event-stream")
    assert list(client.read_resource("conversations/c1/messages")) == [{"n": 1}]
    assert len(ordered.calls) == 2


def test_read_resource_ignores_heartbeats_and_empty_streams(mock, client):
    body = b": ping\n\n" + Event({"n": 1}, id=1).encode() + b": ping\n\n" + Event({"count": 1}, event="end").encode()
    mock.get(RESOURCE_URL, body=body, content_type="text/event-stream")
    assert list(client.read_resource("/conversations/c1/messages")) == [{"n": 1}]
    mock.replace(responses.GET, RESOURCE_URL, body=sse_body([]), content_type="text/event-stream")
    assert list(client.read_resource("conversations/c1/messages")) == []


def test_read_resource_raises_rebuilt_in_band_error(mock, client):
    body = Event({"n": 1}, id=1).encode() + Event(error_body("forbidden", "access revoked"), event="error").encode()
    mock.get(RESOURCE_URL, body=body, content_type="text/event-stream")
    got = []
    with pytest.raises(Forbidden) as excinfo:
        for item in client.read_resource("conversations/c1/messages"):
            got.append(item)
    assert got == [{"n": 1}]
    assert excinfo.value.message == "access revoked"


def test_read_resource_unknown_in_band_code_is_tool_error(mock, client):
    body = Event(error_body("index_corrupt", "bad index"), event="error").encode()
    mock.get(RESOURCE_URL, body=body, content_type="text/event-stream")
    with pytest.raises(ToolError) as excinfo:
        list(client.read_resource("conversations/c1/messages"))
    assert excinfo.value.code == "index_corrupt"


def test_read_resource_without_end_event_is_unavailable(mock, client):
    body = Event({"n": 1}, id=1).encode() + Event({"n": 2}, id=2).encode()
    mock.get(RESOURCE_URL, body=body, content_type="text/event-stream")
    got = []
    with pytest.raises(ServiceUnavailable) as excinfo:
        for item in client.read_resource("conversations/c1/messages"):
            got.append(item)
    assert got == [{"n": 1}, {"n": 2}]
    assert excinfo.value.details["service"] == "memory"


class _CutAfterFirstRead(io.RawIOBase):
    """A response body whose connection is reset after the first bytes."""

    def __init__(self, first: bytes) -> None:
        self.first: bytes | None = first

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.first is None:
            raise ConnectionResetError("connection reset by peer")
        first, self.first = self.first, None
        buffer[:len(first)] = first
        return len(first)


def test_read_resource_cut_mid_stream_is_unavailable(mock, client):
    raw = _CutAfterFirstRead(Event({"n": 1}, id=1).encode())
    mock.get(RESOURCE_URL, body=io.BufferedReader(raw), content_type="text/event-stream")
    with pytest.raises(ServiceUnavailable) as excinfo:
        list(client.read_resource("conversations/c1/messages"))
    assert excinfo.value.details == {"service": "memory"}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [(404, "not_found", NotFound), (403, "forbidden", Forbidden), (401, "unauthorized", Unauthorized),
     (400, "invalid_arguments", InvalidArguments)],
)
def test_read_resource_errors_before_the_stream_raise_at_call_time(mock, client, status, code, cls):
    mock.get(RESOURCE_URL, status=status, json=error_body(code, "nope"))
    with pytest.raises(cls) as excinfo:
        client.read_resource("conversations/c1/messages")  # not iterated: the error comes at once
    assert excinfo.value.message == "nope"
    assert client.circuit == "closed"


def test_read_resource_remote_503_names_the_service(mock, client):
    mock.get(RESOURCE_URL, status=503, json=error_body("unavailable", "database is down"))
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.read_resource("conversations/c1/messages")
    assert excinfo.value.details.get("service") == "memory"


def test_read_resource_connection_error_is_unavailable(mock, client):
    mock.get(RESOURCE_URL, body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.read_resource("conversations/c1/messages")
    assert excinfo.value.details == {"service": "memory"}


# --- health and the dependency monitor ------------------------------------------------------------


def test_health_returns_the_report_and_bypasses_the_breaker(mock, client):
    report = {"status": "healthy", "service": "memory", "version": "0.1.0", "dependencies": {}}
    mock.get(HEALTH_URL, json=report)
    client.breaker.trip()
    assert client.health() == report
    assert len(mock.calls) == 1
    assert client.circuit == "open"  # only the monitor decides what a probe means


def test_health_failure_raises(mock, client):
    mock.get(HEALTH_URL, body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(ServiceUnavailable):
        client.health()


def test_monitor_trips_on_failed_probe_and_recovers_after_reset_timeout(mock):
    client = make_client(reset_timeout=30)
    monitor = DependencyMonitor({"memory": client}, interval=5)
    assert monitor.report() == {"memory": {"status": "up", "circuit": "closed"}}  # not probed yet

    mock.get(HEALTH_URL, body=requests.exceptions.ConnectionError("refused"))
    assert monitor.probe("memory") is False
    assert monitor.report() == {"memory": {"status": "down", "circuit": "open"}}
    # Users now get a fast 503 instead of waiting for their own timeout.
    calls_before = len(mock.calls)
    with pytest.raises(ServiceUnavailable):
        client.call_tool("store_message", {})
    assert len(mock.calls) == calls_before

    mock.replace(responses.GET, HEALTH_URL, json={"status": "healthy", "service": "memory"})
    assert monitor.probe("memory") is True
    assert monitor.report() == {"memory": {"status": "up", "circuit": "open"}}  # reset timeout not over

    backdate(client, 31)
    assert monitor.probe("memory") is True
    assert monitor.report() == {"memory": {"status": "up", "circuit": "closed"}}


def test_monitor_counts_an_error_answer_as_down(mock):
    client = make_client()
    monitor = DependencyMonitor({"memory": client}, interval=5)
    mock.get(HEALTH_URL, status=503, json={"status": "unhealthy", "service": "memory"})
    assert monitor.probe("memory") is False
    assert client.circuit == "open"


def test_health_endpoint_reports_dependencies(mock):
    memory = make_client()
    monitor = DependencyMonitor({"memory": memory}, interval=5)
    checks = {"ok": True}
    app = Flask(__name__)
    app.register_blueprint(health_blueprint("cognition", monitor, self_check=lambda: checks["ok"]))
    web = app.test_client()

    mock.get(HEALTH_URL, json={"status": "healthy", "service": "memory"})
    monitor.probe_all()
    response = web.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "healthy"
    assert response.get_json()["dependencies"] == {"memory": {"status": "up", "circuit": "closed"}}

    mock.replace(responses.GET, HEALTH_URL, body=requests.exceptions.ConnectionError("refused"))
    monitor.probe_all()
    response = web.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["dependencies"] == {"memory": {"status": "down", "circuit": "open"}}

    checks["ok"] = False
    response = web.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unhealthy"
