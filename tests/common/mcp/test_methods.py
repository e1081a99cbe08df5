"""The MCP methods on `POST /mcp`: the handshake, discovery, tools and resources in each era answer from
the same table as `/tool/{name}` and `/resource/...`, tool failures are `isError` results, notifications
are 202, and a 2025-03-26 client may batch."""

from __future__ import annotations

import base64
import json

import pytest

from common.mcp import methods as mcp_methods
from common.mcp.server import MAX_BATCH
from tests.common.mcp.test_server import LEGACY, SECRET, make_app, modern, post, request

LEGACY_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]
SERVER_INFO = {"name": "cortex-test", "version": "0.1.0"}


@pytest.fixture
def client():
    return make_app().test_client()


def result(response, status: int = 200, id=1) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"jsonrpc", "id", "result"} and body["id"] == id
    return body["result"]


def call_legacy(client, method: str, params: dict | None = None, version: str = "2025-11-25") -> dict:
    return result(post(client, request(method, params), {"MCP-Protocol-Version": version}))


def call_modern(client, method: str, params: dict | None = None, name: str | None = None) -> dict:
    body, headers = modern(method, params, name=name)
    found = result(post(client, body, headers))
    assert found["resultType"] == "complete"
    assert found["_meta"] == {"io.modelcontextprotocol/serverInfo": SERVER_INFO}
    return found


def sse_items(client, path: str) -> list[dict]:
    text = client.get(path, headers={"Accept": "text/event-stream"}).get_data(as_text=True)
    return [json.loads(line[len("data: "):]) for frame in text.split("\n\n") if "event:" not in frame
            for line in frame.splitlines() if line.startswith("data: ")]


# --- handshake and discovery ------------------------------------------------------------------------------


@pytest.mark.parametrize(("offered", "answered"), [(v, v) for v in LEGACY_VERSIONS] + [
    ("2024-11-05", "2025-11-25"), ("2099-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25")])
def test_initialize_negotiates_a_handshake_version(client, offered, answered):
    hello = request("initialize", {"protocolVersion": offered, "capabilities": {}, "clientInfo": {"name": "t"}})
    response = post(client, hello, {"Mcp-Session-Id": "from-an-old-session"})
    assert result(response) == {
        "protocolVersion": answered, "serverInfo": SERVER_INFO,
        "capabilities": {"tools": {"listChanged": False}, "resources": {"subscribe": False, "listChanged": False}}}
    assert "Mcp-Session-Id" not in response.headers  # stateless: no session is ever issued or echoed


@pytest.mark.parametrize("headers", [{}, LEGACY, {"MCP-Protocol-Version": "2026-07-28"},
                                     {"MCP-Protocol-Version": "2025-03-26"}])
@pytest.mark.parametrize("body", [
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
    {"jsonrpc": "2.0", "method": "anything/else", "params": {"_meta": {}}},
], ids=["initialized", "cancelled", "unknown"])
def test_notifications_are_accepted_with_an_empty_202(client, headers, body):
    response = post(client, body, headers)
    assert response.status_code == 202 and response.data == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("headers", [{}, LEGACY])
def test_a_legacy_client_response_is_accepted(client, headers):
    assert post(client, {"jsonrpc": "2.0", "id": 5, "result": {}}, headers).status_code == 202


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_ping_in_the_handshake_era(client, version):
    assert call_legacy(client, "ping", version=version) == {}


def test_server_discover(client):
    assert call_modern(client, "server/discover") == {
        "resultType": "complete", "supportedVersions": ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"],
        "capabilities": {"tools": {"listChanged": False}, "resources": {"subscribe": False, "listChanged": False}},
        "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO}, "ttlMs": 60_000, "cacheScope": "public"}


@pytest.mark.parametrize("id", ["req-1", 0, -7, 2**53])
def test_ids_are_echoed_exactly(client, id):
    body, headers = modern("tools/list", id=id)
    assert post(client, body, headers).get_json()["id"] == id
    assert post(client, request("ping", id=id)).get_json()["id"] == id


# --- tools ------------------------------------------------------------------------------------------------


def test_tools_list_is_the_tool_table(client):
    plain = client.get("/tools").get_json()["tools"]
    expected = [{"name": t["name"], "description": t["description"], "inputSchema": t["input_schema"]} for t in plain]
    assert call_legacy(client, "tools/list") == {"tools": expected}
    found = call_modern(client, "tools/list")
    assert (found["tools"], found["ttlMs"], found["cacheScope"]) == (expected, 60_000, "public")
    assert all(tool["inputSchema"]["type"] == "object" for tool in expected)


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_tools_call_answers_what_the_tool_endpoint_answers(client, era):
    arguments = {"name": "Zo\u00eb", "count": 2}
    plain = client.post("/tool/echo", json={"arguments": arguments}).get_json()["result"]
    params = {"name": "echo", "arguments": arguments}
    found = call_legacy(client, "tools/call", params) if era == "legacy" else call_modern(
        client, "tools/call", params, name="echo")
    assert found["isError"] is False
    assert found["structuredContent"] == {**plain, "request_id": found["structuredContent"]["request_id"]}
    assert found["content"] == [{"type": "text", "text": json.dumps(found["structuredContent"], separators=(",", ":"),
                                                                    ensure_ascii=False)}]
    assert "resultType" not in found or era == "modern"


def test_tools_call_without_arguments_runs_with_none(client):
    found = call_legacy(client, "tools/call", {"name": "fail"})
    assert found["isError"] is True and found["structuredContent"]["error"]["code"] == "invalid_arguments"


def test_the_name_header_may_be_base64(client):
    encoded = "=?base64?" + base64.b64encode(b"echo").decode() + "?="
    assert call_modern(client, "tools/call", {"name": "echo", "arguments": {"name": "a"}}, name=encoded)[
        "isError"] is False


TOOL_FAILURES = [
    ("bad-arguments", "echo", {"name": 5}, "invalid_arguments"),
    ("unknown-argument", "echo", {"name": "a", "admin": True}, "invalid_arguments"),
    ("forbidden", "fail", {"mode": "forbidden"}, "forbidden"),
    ("conflict", "fail", {"mode": "conflict"}, "conflict"),
    ("unexpected", "fail", {"mode": "crash"}, "tool_execution_error"),
]


@pytest.mark.parametrize(("tool", "arguments", "code"), [row[1:] for row in TOOL_FAILURES],
                         ids=[row[0] for row in TOOL_FAILURES])
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_tool_failures_are_error_results_with_our_error_body(client, era, tool, arguments, code):
    params = {"name": tool, "arguments": arguments}
    found = call_legacy(client, "tools/call", params) if era == "legacy" else call_modern(
        client, "tools/call", params, name=tool)
    plain = client.post(f"/tool/{tool}", json={"arguments": arguments}).get_json()
    assert found["isError"] is True
    assert found["structuredContent"] == plain and plain["error"]["code"] == code
    assert json.loads(found["content"][0]["text"]) == plain
    assert SECRET not in json.dumps(found)


# --- resources --------------------------------------------------------------------------------------------


def test_resource_templates_are_rfc6570_uri_templates(client):
    expected = [{"uriTemplate": "cortex://test/items/{owner}{?limit,fail_after}", "name": "items",
                 "description": "An owner's items.", "mimeType": "application/json"}]
    assert call_legacy(client, "resources/templates/list") == {"resourceTemplates": expected}
    assert call_modern(client, "resources/templates/list")["resourceTemplates"] == expected


def test_resources_list_is_empty(client):
    assert call_legacy(client, "resources/list") == {"resources": []}
    assert call_modern(client, "resources/list")["resources"] == []


@pytest.mark.parametrize(("uri", "path"), [
    ("cortex://test/items/ada", "/resource/items/ada"),
    ("cortex://test/items/ada?limit=5", "/resource/items/ada?limit=5"),
    ("cortex://test/items/ada?limit=1&fail_after=3", "/resource/items/ada?limit=1&fail_after=3"),
    ("cortex://test/items/a%64a", "/resource/items/ada"),
])
def test_resource_read_is_the_streamed_items_as_one_json_text(client, uri, path):
    contents = call_legacy(client, "resources/read", {"uri": uri})["contents"]
    assert len(contents) == 1 and contents[0]["uri"] == uri and contents[0]["mimeType"] == "application/json"
    assert json.loads(contents[0]["text"]) == sse_items(client, path)


def test_modern_resource_read_is_private_and_never_fresh(client):
    uri = "cortex://test/items/ada?limit=2"
    found = call_modern(client, "resources/read", {"uri": uri}, name=uri)
    assert (found["ttlMs"], found["cacheScope"]) == (0, "private")
    assert json.loads(found["contents"][0]["text"]) == [{"owner": "ada", "n": 1}, {"owner": "ada", "n": 2}]


def test_resource_read_is_bounded(client, monkeypatch):
    monkeypatch.setattr(mcp_methods, "MAX_RESOURCE_ITEMS", 4)
    assert len(json.loads(call_legacy(client, "resources/read", {"uri": "cortex://test/items/a?limit=4"})[
        "contents"][0]["text"])) == 4
    error = post(client, request("resources/read", {"uri": "cortex://test/items/a?limit=5"}), LEGACY).get_json()
    assert error["error"]["code"] == -32602 and "more than 4 items" in error["error"]["message"]


# --- batches (2025-03-26 only) ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"MCP-Protocol-Version": "2025-03-26"}])
def test_a_2025_03_26_batch_gets_one_reply_per_request(client, headers):
    batch = [request("tools/call", {"name": "echo", "arguments": {"name": "a"}}, id="a"),
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 3},
             request("initialize", {"protocolVersion": "2025-03-26"}, id=4),
             {"jsonrpc": "2.0", "id": 99, "result": {}},
             request("nope/nope", id=5)]
    response = post(client, batch, headers)
    assert response.status_code == 200
    replies = response.get_json()
    assert [reply["id"] for reply in replies] == ["a", 3, 4, 5]
    assert replies[0]["result"]["structuredContent"]["name"] == "a"
    assert [reply.get("error", {}).get("code") for reply in replies] == [None, -32600, -32600, -32601]


def test_a_batch_holds_at_most_max_batch_messages(client):
    pings = [request("ping", id=n) for n in range(MAX_BATCH)]
    assert len(post(client, pings).get_json()) == MAX_BATCH
    response = post(client, [*pings, request("ping", id=MAX_BATCH)])
    assert response.status_code == 400
    body = response.get_json()
    assert body["id"] is None and body["error"]["code"] == -32600
    assert body["error"]["data"] == {"limit": MAX_BATCH} and f"at most {MAX_BATCH}" in body["error"]["message"]


def test_a_batch_of_notifications_is_202(client):
    response = post(client, [{"jsonrpc": "2.0", "method": "notifications/initialized"}])
    assert response.status_code == 202 and response.data == b""


def test_meta_in_a_legacy_request_without_a_version_is_still_legacy(client):
    found = call_legacy(client, "tools/list", {"_meta": {"progressToken": 1}})
    assert "resultType" not in found and found["tools"]
