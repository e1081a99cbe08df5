"""The transport's own decisions, against `responses` mocks: a connection the server closed unanswered is
sent again once, a full pool is back-pressure that never touches the breaker, TLS failures say why."""

from __future__ import annotations

import ssl
from http.client import RemoteDisconnected

import pytest
import requests
import responses
from flask import Flask
from responses.registries import OrderedRegistry
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError
from urllib3.exceptions import SSLError as Urllib3SSLError

from common.client import ClientSettings, ClientTLS, RetryPolicy, ServiceClient
from common.client.transport import Transport
from common.errors import ServiceBusy, ServiceTimeout, ServiceUnavailable
from common.server import register_error_handlers

BASE = "http://memory.test"
HEALTH_URL = f"{BASE}/health"
TOOL_URL = f"{BASE}/tool/get_user"


def closed_unanswered(cause: OSError) -> requests.ConnectionError:
    """What requests raises when the server closed a pooled connection as the request went out."""
    return requests.ConnectionError(ProtocolError("Connection aborted.", cause))


CLOSED = [RemoteDisconnected("Remote end closed connection without response"),
          ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe")]


def make_client(*, attempts: int = 0, pool_size: int = 50, fail_max: int = 3) -> ServiceClient:
    settings = ClientSettings(retry=RetryPolicy(attempts=attempts, backoff_factor=0, jitter=0), fail_max=fail_max,
                              pool_size=pool_size, connect_timeout=0.05)
    return ServiceClient("memory", BASE, settings=settings)


@pytest.fixture
def ordered():
    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- a connection closed unanswered ----------------------------------------------------------------


@pytest.mark.parametrize("cause", CLOSED, ids=lambda c: type(c).__name__)
def test_a_probe_on_a_connection_the_server_just_closed_is_sent_again(ordered, cause):
    client = make_client()
    ordered.get(HEALTH_URL, body=closed_unanswered(cause))
    ordered.get(HEALTH_URL, json={"status": "healthy", "service": "memory"})
    assert client.health()["service"] == "memory"
    assert len(ordered.calls) == 2
    assert ordered.calls[1].request.headers["Connection"] == "close"  # a connection of its own, not pooled


@pytest.mark.parametrize("call", ["tool", "list_tools"])
def test_a_call_without_retries_survives_a_closed_connection(ordered, call):
    client = make_client(attempts=0, fail_max=1)
    url = TOOL_URL if call == "tool" else f"{BASE}/tools"
    method = ordered.post if call == "tool" else ordered.get
    method(url, body=closed_unanswered(CLOSED[0]))
    method(url, json={"result": {"id": "u1"}, "tools": []})
    if call == "tool":
        assert client.call_tool("get_user", {"user_id": "u1"}) == {"id": "u1"}
        keys = {c.request.headers["Idempotency-Key"] for c in ordered.calls}
        assert len(keys) == 1  # the same key: the server replays it if the first one did arrive
    else:
        assert client.list_tools() == []
    assert len(ordered.calls) == 2 and client.circuit == "closed"


def test_it_is_sent_again_only_once(ordered):
    client = make_client()
    for _ in range(3):
        ordered.get(HEALTH_URL, body=closed_unanswered(CLOSED[1]))
    with pytest.raises(ServiceUnavailable):
        client.health()
    assert len(ordered.calls) == 2


def test_a_call_with_retries_leaves_the_closed_connection_to_them(ordered):
    # urllib3 retries a connection closed unanswered itself (not seen here: `responses` stands in for it);
    # a resend on top would be one send more than CLIENT_RETRIES allows.
    client = make_client(attempts=1)
    ordered.post(TOOL_URL, body=closed_unanswered(CLOSED[0]))
    ordered.post(TOOL_URL, json={"result": {"id": "u1"}})
    with pytest.raises(ServiceUnavailable):
        client.call_tool("get_user", {"user_id": "u1"})
    assert len(ordered.calls) == 1


def test_a_post_without_idempotency_key_is_not_sent_twice(ordered):
    transport = Transport("llm", ClientSettings(retry=RetryPolicy(attempts=0)))
    ordered.post(TOOL_URL, body=closed_unanswered(CLOSED[0]))
    ordered.post(TOOL_URL, json={"ok": True})
    with pytest.raises(ServiceUnavailable):
        transport.request_json("POST", TOOL_URL, json={})
    assert len(ordered.calls) == 1


@pytest.mark.parametrize("error", [
    requests.ConnectionError(MaxRetryError(None, HEALTH_URL, NewConnectionError(None, "refused"))),
    requests.ReadTimeout("read timed out"),
], ids=["refused", "frozen"])
def test_a_dead_or_frozen_service_fails_its_probe_at_the_first_try(ordered, error):
    client = make_client()
    ordered.get(HEALTH_URL, body=error)
    ordered.get(HEALTH_URL, json={"status": "healthy", "service": "memory"})
    with pytest.raises((ServiceUnavailable, ServiceTimeout)):
        client.health()
    assert len(ordered.calls) == 1
    # `responses` never reaches urllib3's retries, so say it outright: probes have none of their own.
    assert client.transport.probes.get_adapter(HEALTH_URL).max_retries.total == 0


# --- a full pool is back-pressure ------------------------------------------------------------------


def test_a_full_pool_is_busy_and_never_touches_the_breaker():
    client = make_client(pool_size=1, fail_max=1)
    with responses.RequestsMock() as mock, client.transport.slot():  # the one connection is taken
        for _ in range(3):
            with pytest.raises(ServiceBusy) as excinfo:
                client.call_tool("get_user", {"user_id": "u1"})
        assert len(mock.calls) == 0
    error = excinfo.value
    assert (error.status, error.code, error.retry_after) == (503, "busy", 1)
    assert error.details == {"service": "memory"} and "memory is busy" in error.message
    assert client.circuit == "closed" and client.breaker.fail_counter == 0


def test_an_open_circuit_answers_at_once_even_when_the_pool_is_full():
    client = make_client(pool_size=1)
    client.breaker.trip("memory is unreachable")
    with client.transport.slot(), pytest.raises(ServiceUnavailable) as excinfo:
        client.call_tool("get_user", {"user_id": "u1"})
    assert excinfo.value.code == "unavailable"
    assert excinfo.value.message == "memory is unavailable (circuit open: memory is unreachable)"


def test_a_busy_answer_from_the_service_does_not_count_against_it(ordered):
    client = make_client(fail_max=1)
    body = ServiceBusy("cognition is busy", {"service": "cognition"}).to_body()
    ordered.post(TOOL_URL, status=503, json=body)
    with pytest.raises(ServiceBusy):
        client.call_tool("get_user", {"user_id": "u1"})
    assert client.circuit == "closed"


def test_busy_is_answered_with_retry_after():
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/busy")
    def busy():
        raise ServiceBusy("memory is busy", {"service": "memory"})

    response = app.test_client().get("/busy")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["code"] == "busy"


# --- TLS -------------------------------------------------------------------------------------------


def ssl_failure(reason: ssl.SSLError) -> requests.exceptions.SSLError:
    return requests.exceptions.SSLError(MaxRetryError(None, HEALTH_URL, Urllib3SSLError(reason)))


def test_an_untrusted_certificate_names_the_service_and_the_reason():
    untrusted = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    client = make_client()
    with responses.RequestsMock() as mock:
        mock.get(HEALTH_URL, body=ssl_failure(untrusted))
        with pytest.raises(ServiceUnavailable) as excinfo:
            client.health()
    assert excinfo.value.message == "memory: TLS certificate not trusted (unable to get local issuer certificate)"
    assert excinfo.value.details == {"service": "memory", "reason": "tls_error"}


def test_a_failed_handshake_names_the_service():
    client = make_client()
    with responses.RequestsMock() as mock:
        mock.get(HEALTH_URL, body=ssl_failure(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")))
        with pytest.raises(ServiceUnavailable) as excinfo:
            client.health()
    assert excinfo.value.message.startswith("memory: TLS handshake failed (")


def test_every_session_uses_the_ca_bundle_and_client_certificate(tmp_path):
    tls = ClientTLS(ca_bundle=str(tmp_path / "ca.pem"), cert=str(tmp_path / "c.pem"), key=str(tmp_path / "k.pem"))
    transport = Transport("memory", ClientSettings(tls=tls))
    for session in (transport.session, transport.streams, transport.probes, transport.fresh):
        assert session.verify == tls.ca_bundle
        assert session.cert == (tls.cert, tls.key)
    default = Transport("memory", ClientSettings())
    assert default.session.verify is True and default.session.cert is None

