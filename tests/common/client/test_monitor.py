"""The dependency monitor's verdicts beyond up and down: the wrong service at a URL, a TLS failure, and a
log line that names the URL once per change (issue 11, items 17 and 20)."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from common.client import ClientSettings, DependencyMonitor, RetryPolicy, ServiceClient
from common.errors import ServiceUnavailable

BASE = "http://127.0.0.1:9100"
HEALTH_URL = f"{BASE}/health"
TOOL_URL = f"{BASE}/tool/authenticate"


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client():
    made = ServiceClient("memory", BASE, settings=ClientSettings(retry=RetryPolicy(attempts=0), reset_timeout=30))
    yield made
    made.close()


def backdate(client: ServiceClient, seconds: float) -> None:
    client.breaker._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=seconds)


@pytest.mark.parametrize(("report", "what"), [
    ({"status": "healthy", "service": "cognition"}, "the 'cognition' service"),
    ({"status": "ok"}, "something that names no service"),
    ([1, 2], "something that names no service"),
], ids=["another-service", "no-name", "not-an-object"])
def test_a_dependency_that_is_another_service_is_reported_and_refused(mock, client, report, what):
    monitor = DependencyMonitor({"memory": client}, interval=5)
    mock.get(HEALTH_URL, json=report)
    mock.post(TOOL_URL, status=404, json={"error": {"code": "tool_not_found", "message": "unknown tool",
                                                    "details": {}}})
    assert monitor.probe("memory") is False
    assert monitor.report() == {"memory": {"status": "wrong_service", "circuit": "open"}}
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call_tool("authenticate", {"email": "a@example.com", "password": "x"})
    assert excinfo.value.message == f"memory is unavailable (circuit open: the service at memory's URL is {what})"
    # Even after the reset timeout no call is spent on a trial (it would get 404 unknown tool, a 4xx,
    # and close the circuit): only a good probe ends it.
    backdate(client, 31)
    with pytest.raises(ServiceUnavailable):
        client.call_tool("authenticate", {"email": "a@example.com", "password": "x"})
    assert len(mock.calls) == 1  # the probe; no tool call went out

    mock.replace(responses.GET, HEALTH_URL, json={"status": "healthy", "service": "memory"})
    assert monitor.probe("memory") is True
    assert monitor.report() == {"memory": {"status": "up", "circuit": "closed"}}


def test_a_tls_failure_is_reported_as_such(mock, client):
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate in certificate chain"
    mock.get(HEALTH_URL, body=requests.exceptions.SSLError(MaxRetryError(None, HEALTH_URL,
                                                                         Urllib3SSLError(untrusted))))
    monitor = DependencyMonitor({"memory": client}, interval=5)
    assert monitor.probe("memory") is False
    assert monitor.report() == {"memory": {"status": "tls_error", "circuit": "open"}}
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call_tool("authenticate", {})
    assert "TLS certificate not trusted (self-signed certificate in certificate chain)" in excinfo.value.message


def test_the_log_names_the_url_once_per_change(mock, client, caplog):
    monitor = DependencyMonitor({"memory": client}, interval=5)
    mock.get(HEALTH_URL, body=requests.ConnectionError("[Errno 111] Connection refused"))
    caplog.set_level(logging.INFO, logger="common.client.monitor")
    for _ in range(5):
        monitor.probe("memory")
    mock.replace(responses.GET, HEALTH_URL, json={"status": "healthy", "service": "memory"})
    monitor.probe("memory")
    monitor.probe("memory")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"dependency memory at {BASE}/health is down: memory is unreachable")
    assert "Connection refused" in lines[0] and caplog.records[0].levelno == logging.WARNING
    assert lines[1] == f"dependency memory at {BASE}/health is up again"
