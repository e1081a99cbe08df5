"""The Cognition app as a caller sees it: configuration, argument errors, Memory's errors crossing over,
Memory down (503 and a degraded /health), the service token and the context resource."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from cognition_service.app import create_app
from cognition_service.config import load_config
from tests.cognition_service.fake_memory import BASE_CONFIG, MEMORY, message
from tests.cognition_service.protocol_calls import assert_error, call, result, sse_events


def test_defaults_and_client_settings_come_from_the_environment():
    settings = load_config({})
    assert settings.port == 9100 and settings.health_interval == 5.0
    assert settings.memory_service_url == "http://localhost:9000"
    assert settings.service_token is None and settings.host == "127.0.0.1" and settings.log_level == "INFO"
    tuned = load_config({"MEMORY_SERVICE_URL": "http://memory:9000/", "BREAKER_RESET_SECONDS": "1",
                         "CLIENT_RETRIES": "1", "HEALTH_INTERVAL_SECONDS": "0.5"})
    assert tuned.memory_service_url == "http://memory:9000" and tuned.health_interval == 0.5
    assert (tuned.client.reset_timeout, tuned.client.retry.attempts) == (1.0, 1)


@pytest.mark.parametrize(
    ("name", "value"),
    [("MEMORY_SERVICE_URL", "memory:9000"), ("MEMORY_SERVICE_URL", "ftp://memory"),
     ("HEALTH_INTERVAL_SECONDS", "-1"), ("HEALTH_INTERVAL_SECONDS", "often"), ("COGNITION_SERVICE_PORT", "0"),
     ("LOG_LEVEL", "loud"), ("CLIENT_RETRIES", "x")],
)
def test_invalid_setting_stops_with_one_line_naming_it(capsys, name, value):
    with pytest.raises(SystemExit) as stopped:
        create_app({**BASE_CONFIG, name: value})
    assert stopped.value.code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err


def test_app_keeps_its_client_and_monitor(app):
    assert app.extensions["cortex.memory"].base_url == MEMORY
    assert app.extensions["cortex.monitor"].clients == {"memory": app.extensions["cortex.memory"]}
    assert app.extensions["cortex.monitor"]._thread is None  # interval 0: nothing runs in the background


def test_discovery_lists_the_tools_and_resources(client):
    tools = {tool["name"]: tool for tool in client.get("/tools").json["tools"]}
    assert set(tools) == {"get_context", "search_history", "analyze_conversation"}
    assert tools["analyze_conversation"]["input_schema"]["properties"]["analysis_type"]["enum"] == [
        "summary", "topics", "sentiment", "activity"]
    paths = {r["path_template"] for r in client.get("/resources").json["resources"]}
    assert paths == {"context/{user_id}", "conversation_analysis/{conversation_id}/{type}"}


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("get_context", {}, "user_id"),
        ("get_context", {"user_id": "u/1"}, "user_id"),
        ("get_context", {"user_id": "u1", "limit": 0}, "limit"),
        ("get_context", {"user_id": "u1", "limit": 201}, "limit"),
        ("get_context", {"user_id": "u1", "limit": "ten"}, "limit"),
        ("get_context", {"user_id": "u1", "query": "x" * 32_001}, "query"),
        ("get_context", {"user_id": "u1", "conversation_id": ""}, "conversation_id"),
        ("get_context", {"user_id": "u1", "extra": 1}, "extra"),
        ("search_history", {"user_id": "u1"}, "query"),
        ("search_history", {"user_id": "u1", "query": "  "}, "query"),
        ("search_history", {"user_id": "u1", "query": "a", "limit": 1001}, "limit"),
        ("search_history", {"user_id": "u1", "query": "a", "include_conversations": "maybe"},
         "include_conversations"),
        ("analyze_conversation", {"user_id": "u1", "analysis_type": "summary"}, "conversation_id"),
    ],
)
def test_bad_arguments_are_400_naming_the_field(client, memory, tool, arguments, field):
    error = assert_error(call(client, tool, **arguments), 400, "invalid_arguments")
    assert field in [entry["field"] for entry in error["details"]["errors"]]
    assert len(memory.mock.calls) == 0


def test_a_body_that_is_not_an_arguments_object_is_invalid_request(client):
    assert_error(client.post("/tool/get_context", data="{", content_type="application/json"), 400,
                 "invalid_request")
    assert_error(client.post("/tool/get_context", json={"user_id": "u1"}), 400, "invalid_request")
    assert_error(client.post("/tool/guess", json={"arguments": {}}), 404, "tool_not_found")


@pytest.mark.parametrize(("status", "code"), [(403, "forbidden"), (404, "not_found")])
@pytest.mark.parametrize(
    ("tool", "arguments", "memory_tool"),
    [
        ("get_context", {"query": "porto"}, "search_messages"),
        ("get_context", {"conversation_id": "c2"}, "list_messages"),
        ("search_history", {"query": "porto"}, "search_messages"),
        ("analyze_conversation", {"conversation_id": "c2", "analysis_type": "summary"}, "list_messages"),
    ],
)
def test_memory_refusals_come_back_with_their_code(client, memory, tool, arguments, memory_tool, status, code):
    memory.tool(memory_tool, status=status, code=code)
    error = assert_error(call(client, tool, user_id="u1", **arguments), status, code)
    assert error["message"] == "from memory"


@pytest.mark.parametrize(("status", "code"), [(403, "forbidden"), (404, "not_found")])
def test_memory_refusals_before_a_stream_come_back_with_their_code(client, memory, status, code):
    memory.tool("list_messages", status=status, code=code)
    memory.resource("history/u1/limit/10", status=status, code=code)
    assert_error(call(client, "analyze_conversation", user_id="u1", conversation_id="c2", analysis_type="topics"),
                 status, code)
    assert_error(client.get("/resource/conversation_analysis/c2/topics?user_id=u1"), status, code)
    assert_error(client.get("/resource/context/u1"), status, code)


def test_memory_unreachable_is_503_naming_memory(client):
    # Nothing is registered on the mock, so every request to Memory fails to connect.
    error = assert_error(call(client, "get_context", user_id="u1", query="porto"), 503, "unavailable")
    assert "memory" in error["message"] and error["details"]["service"] == "memory"


def test_a_failed_probe_opens_the_circuit_so_calls_fail_at_once(app, client, memory):
    memory.health(up=False)
    app.extensions["cortex.monitor"].probe_all()
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json["status"] == "degraded" and health.json["service"] == "cognition"
    assert health.json["dependencies"] == {"memory": {"status": "down", "circuit": "open"}}

    memory.tool("search_messages", {"results": [], "count": 0, "query": "porto"})
    started = time.monotonic()
    error = assert_error(call(client, "search_history", user_id="u1", query="porto"), 503, "unavailable")
    assert time.monotonic() - started < 0.5
    assert error["details"] == {"service": "memory", "circuit": "open"}
    assert memory.sent("search_messages") == []  # the open circuit answered without asking Memory


def test_a_good_probe_after_the_reset_timeout_closes_the_circuit(app, client, memory):
    monitor, breaker = app.extensions["cortex.monitor"], app.extensions["cortex.memory"].breaker
    memory.health(up=False)
    monitor.probe_all()
    memory.mock.replace("GET", f"{MEMORY}/health", json={"status": "healthy", "service": "memory"})
    monitor.probe_all()
    assert client.get("/health").json["dependencies"]["memory"] == {"status": "up", "circuit": "open"}
    breaker._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=breaker.reset_timeout + 1)
    monitor.probe_all()
    assert client.get("/health").json == {"status": "healthy", "service": "cognition", "version": "0.1.0",
                                          "dependencies": {"memory": {"status": "up", "circuit": "closed"}}}
    memory.tool("search_messages", {"results": [], "count": 0, "query": "porto"})
    assert result(client, "search_history", user_id="u1", query="porto")["count"] == 0


def test_service_token_is_required_from_callers_and_sent_to_memory(memory):
    client = create_app({**BASE_CONFIG, "SERVICE_TOKEN": "s3cret-token"}).test_client()
    memory.tool("search_messages", {"results": [], "count": 0, "query": "porto"})
    assert_error(call(client, "search_history", user_id="u1", query="porto"), 401, "unauthorized")
    assert_error(client.get("/tools"), 401, "unauthorized")
    assert client.get("/health").status_code == 200  # health stays open for probes and load balancers
    response = client.post("/tool/search_history", json={"arguments": {"user_id": "u1", "query": "porto"}},
                           headers={"Authorization": "Bearer s3cret-token", "X-Request-ID": "trace-42"})
    assert response.status_code == 200
    sent = memory.requests_to("tool/search_messages")[-1]
    assert sent.headers["Authorization"] == "Bearer s3cret-token" and sent.headers["X-Request-ID"] == "trace-42"


def test_context_resource_streams_the_context_items(client, memory):
    memory.tool("messages_around", {"messages": []})
    memory.tool("search_messages", {"results": [message(1, "Porto trains", score=2.0),
                                                message(2, "Porto", score=1.0)], "count": 2, "query": "porto"})
    events = sse_events(client.get("/resource/context/u1?query=Porto&limit=1"))
    assert [kind for kind, _ in events] == ["message", "end"]
    assert events[0][1]["id"] == "m1" and "score" in events[0][1]
    assert events[1][1] == {"count": 1}
    assert memory.sent("search_messages") == [{"user_id": "u1", "query": "porto", "limit": 50, "match": "stems"}]


def test_context_resource_with_an_empty_query_streams_the_newest(client, memory):
    memory.resource("history/u1/limit/2", [message(5, "five"), message(4, "four")])
    events = sse_events(client.get("/resource/context/u1?query=&limit=2"))
    assert [data.get("id") for _, data in events] == ["m5", "m4", None]


@pytest.mark.parametrize("query", ["limit=0", "limit=many", "color=blue", "user_id=u2"])
def test_context_resource_rejects_bad_parameters_before_streaming(client, memory, query):
    assert_error(client.get(f"/resource/context/u1?{query}"), 400, "invalid_arguments")
    assert len(memory.mock.calls) == 0
