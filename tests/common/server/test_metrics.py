"""`/metrics` and the count of every request: the text format, route patterns (never raw paths), who may
scrape, METRICS_TOKEN, and METRICS=false. Counts are read from the process's registry as differences,
since other tests count into it too."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.routing import BaseConverter

from cognition_service.app import create_app as create_cognition
from common import metrics
from common.config import ConfigError, Env
from common.server import base_app
from common.server.metrics import MetricsSettings
from core_app.app import create_app as create_core
from memory_service.app import create_app as create_memory
from tests.core_app.embedded_config import core_config

SERVICE = "metrics-test"
TOKEN = "3f9a1c7e5b2d8046af13c9e7d25b4a60"  # a fixed one: test ids must be the same in every worker
CONVERSATION = "/v1/conversations/<id:conversation_id>"


class IdConverter(BaseConverter):
    regex = r"[A-Za-z0-9_-]{1,64}"


def requests_counted(route: str, status: int, method: str = "GET", service: str = SERVICE) -> float:
    labels = {"service": service, "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("cortex_http_requests_total", labels) or 0.0


def requests_timed(route: str, method: str = "GET") -> float:
    labels = {"service": SERVICE, "method": method, "route": route}
    return REGISTRY.get_sample_value("cortex_http_request_duration_seconds_count", labels) or 0.0


def make_app(settings: MetricsSettings | None = None):
    app = base_app(__name__, service=SERVICE, max_body_bytes=1024, log_level="WARNING", metrics=settings)
    app.url_map.converters["id"] = IdConverter
    app.add_url_rule(CONVERSATION, "conversation", lambda conversation_id: {"id": conversation_id})
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    return app


@pytest.fixture(autouse=True)
def recording():
    """An app built with METRICS=false turns recording off for the whole process: put it back."""
    was = metrics.enabled()
    yield
    metrics.enable(was)


@pytest.fixture
def client():
    return make_app().test_client()


@pytest.fixture
def guarded():
    return make_app(MetricsSettings(token=TOKEN)).test_client()


def scrape(client, address: str = "127.0.0.1", **headers: str):
    return client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert (error["code"], set(error)) == (code, {"code", "message", "details"})
    assert "cortex_" not in response.get_data(as_text=True)


# --- the format and what is counted ----------------------------------------------------------------------

def test_metrics_are_the_prometheus_text_format(client):
    client.get("/v1/conversations/c1")
    response = scrape(client)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=0.0.4" in response.content_type
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"cortex_http_requests", "cortex_http_request_duration_seconds", "cortex_client_calls",
            "cortex_client_retries", "cortex_circuit_state", "cortex_dependency_up"} <= set(families)
    assert families["cortex_http_requests"].type == "counter"
    assert families["cortex_http_request_duration_seconds"].type == "histogram"
    assert any(sample.labels == {"service": SERVICE, "method": "GET", "route": CONVERSATION, "status": "200"}
               for sample in families["cortex_http_requests"].samples)


def test_a_request_is_counted_once_under_its_route_pattern_not_its_path(client):
    counted, timed = requests_counted(CONVERSATION, 200), requests_timed(CONVERSATION)
    assert client.get("/v1/conversations/c-123").status_code == 200
    assert (requests_counted(CONVERSATION, 200) - counted, requests_timed(CONVERSATION) - timed) == (1, 1)
    assert requests_counted("/v1/conversations/c-123", 200) == 0
    assert "c-123" not in scrape(client).get_data(as_text=True)


def test_a_failing_view_is_counted_with_its_status(client):
    counted = requests_counted("/boom", 500)
    assert client.get("/boom").status_code == 500
    assert requests_counted("/boom", 500) - counted == 1


@pytest.mark.parametrize("path", ["/no/such/route", "/v1/conversations/" + "x" * 65, "/v1/conversations/a%20b"])
def test_a_path_no_route_matches_is_counted_as_unmatched(client, path):
    counted = requests_counted("unmatched", 404)
    assert client.get(path).status_code == 404
    assert requests_counted("unmatched", 404) - counted == 1
    assert requests_counted(path, 404) == 0


@pytest.mark.parametrize("method", ["PROPFIND", "BREW", "TRACE", "CONNECT"])
def test_an_odd_method_is_counted_as_other(client, method):
    counted = requests_counted("unmatched", 405, method="other")
    assert client.open("/v1/conversations/c1", method=method).status_code == 405
    assert requests_counted("unmatched", 405, method="other") - counted == 1
    assert requests_counted("unmatched", 405, method=method) == 0


def test_the_core_counts_its_own_routes_by_pattern(tmp_path):
    core = create_core(core_config(tmp_path)).test_client()
    route = "/v1/conversation/<id:conversation_id>/messages"
    counted = requests_counted(route, 401, service="core")
    assert core.get("/v1/conversation/4f1c2b9e/messages").status_code == 401
    assert requests_counted(route, 401, service="core") - counted == 1
    assert requests_counted("/v1/conversation/4f1c2b9e/messages", 401, service="core") == 0


# --- who may scrape --------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_may_scrape(client, address):
    assert scrape(client, address).status_code == 200


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.20", "2001:db8::1", "::ffff:10.0.0.5", "not-an-address"])
def test_other_clients_are_refused_in_the_error_shape(client, address):
    assert_error(scrape(client, address), 403, "forbidden")


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "127.0.0.1"}, {"X-Real-IP": "127.0.0.1"},
                                    {"Forwarded": "for=127.0.0.1"}])
def test_a_request_through_a_proxy_is_refused_even_from_loopback(client, header):
    assert_error(scrape(client, "127.0.0.1", **header), 403, "forbidden")


@pytest.mark.parametrize("host", ["localhost", "localhost:9000", "127.0.0.1:8000", "127.9.9.9", "[::1]:9100"])
def test_a_local_name_is_served(client, host):
    assert scrape(client, "127.0.0.1", Host=host).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example", "10.0.0.5", ""])
def test_a_page_that_rebound_its_name_to_this_machine_is_refused(client, guarded, host):
    """A browser on this machine reaches the port through a DNS name rebound to 127.0.0.1, but sends that name."""
    assert_error(scrape(client, "127.0.0.1", Host=host), 403, "forbidden")
    assert_error(scrape(guarded, "127.0.0.1", Host=host), 401, "unauthorized")
    assert scrape(guarded, "127.0.0.1", Host=host, Authorization=f"Bearer {TOKEN}").status_code == 200


def test_the_metrics_token_lets_another_machine_scrape(guarded):
    assert scrape(guarded, "10.0.0.5", Authorization=f"Bearer {TOKEN}").status_code == 200
    assert scrape(guarded, "127.0.0.1", Authorization=f"Bearer {TOKEN}", **{"X-Forwarded-For": "203.0.113.9"}
                  ).status_code == 200
    assert scrape(guarded, "127.0.0.1").status_code == 200  # this machine needs no token


@pytest.mark.parametrize("authorization", [None, f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}",
                                           "Bearer "], ids=["none", "short", "long", "basic", "empty"])
def test_a_missing_or_wrong_metrics_token_is_unauthorized(guarded, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    refused = scrape(guarded, "10.0.0.5", **headers)
    assert_error(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"] == "Bearer"


# --- settings --------------------------------------------------------------------------------------------

def test_metrics_settings_read_from_the_environment():
    assert MetricsSettings.from_env(Env({})) == MetricsSettings(enabled=True, token=None)
    assert MetricsSettings.from_env(Env({"METRICS": "false", "METRICS_TOKEN": TOKEN})) == MetricsSettings(
        enabled=False, token=TOKEN)


@pytest.mark.parametrize(("values", "name"), [
    ({"METRICS_TOKEN": "metrics"}, "METRICS_TOKEN"),
    ({"METRICS_TOKEN": "ab" * 20}, "METRICS_TOKEN"),
    ({"METRICS": "sometimes"}, "METRICS"),
])
def test_a_bad_metrics_setting_is_refused_naming_it(values, name):
    with pytest.raises(ConfigError) as refused:
        MetricsSettings.from_env(Env(values))
    assert str(refused.value).startswith(f"invalid configuration: {name} ")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("create", [create_memory, create_cognition])
def test_a_weak_metrics_token_stops_the_service_with_one_line(create, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        create({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "HEALTH_INTERVAL_SECONDS": "0",
                "METRICS_TOKEN": "changeme"})
    assert stopped.value.code == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cortex: invalid configuration: METRICS_TOKEN ")


def test_metrics_off_serves_no_metrics_and_counts_nothing():
    client = make_app(MetricsSettings(enabled=False)).test_client()
    call_labels = {"dependency": "memory", "tool": "get_user", "outcome": "ok"}
    before = (requests_counted(CONVERSATION, 200), requests_counted("unmatched", 404),
              REGISTRY.get_sample_value("cortex_client_calls_total", call_labels))
    assert client.get("/v1/conversations/c1").status_code == 200
    assert_error(scrape(client), 404, "not_found")
    metrics.call_finished("memory", "get_user", "ok", 0.01)  # what the network client would record
    assert (requests_counted(CONVERSATION, 200), requests_counted("unmatched", 404),
            REGISTRY.get_sample_value("cortex_client_calls_total", call_labels)) == before
