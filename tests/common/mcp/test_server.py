"""`POST /mcp` as a transport (SPEC §3.7), through Flask's test client: HTTP-level refusals, the JSON-RPC
envelope, and each era's version and header checks. Every bad request is a row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from common.errors import Conflict, Forbidden, NotFound
from common.mcp import mcp_blueprint, parse_allowed_origins
from common.models import Arguments, Id, Limit
from common.server import CallContext, Resource, Tool, base_app, protocol_blueprint

TOKEN = "s3cret-service-token"
SECRET = "password=hunter2 at /srv/app/secret.py"
MODERN = "2026-07-28"
ACCEPT = {"Accept": "application/json, text/event-stream"}


class EchoArgs(Arguments):
    name: str
    count: int = 1


class FailArgs(Arguments):
    mode: str


class ItemParams(Arguments):
    owner: Id
    limit: Limit = 3
    fail_after: int | None = None


def echo(args: EchoArgs, ctx: CallContext) -> dict:
    return {"name": args.name, "count": args.count, "request_id": ctx.request_id}


def fail(args: FailArgs, ctx: CallContext) -> dict:
    if args.mode == "forbidden":
        raise Forbidden("user u1 may not touch conversation c1", {"conversation_id": "c1"})
    if args.mode == "conflict":
        raise Conflict("email taken")
    raise RuntimeError(SECRET)


def items(params: ItemParams, ctx: CallContext) -> Iterator[dict]:
    if params.owner == "nobody":
        raise NotFound("no such owner")

    def generate() -> Iterator[dict]:
        for n in range(1, params.limit + 1):
            if params.fail_after is not None and n > params.fail_after:
                raise Forbidden("access revoked")
            yield {"owner": params.owner, "n": n}

    return generate()


TOOLS = [Tool("echo", "Echo the arguments back.", EchoArgs, echo),
         Tool("fail", "Fail in the requested way.", FailArgs, fail)]
RESOURCES = [Resource("items/{owner}", "An owner's items.", ItemParams, items)]


def make_app(token: str | None = None, origins: str | None = None, max_body_bytes: int = 1024 * 1024) -> Flask:
    app = base_app(__name__, service="test", max_body_bytes=max_body_bytes, log_level="WARNING")
    app.register_blueprint(protocol_blueprint(TOOLS, RESOURCES, token))
    app.register_blueprint(mcp_blueprint("test", TOOLS, RESOURCES, token, parse_allowed_origins(origins)))
    return app


@pytest.fixture
def client():
    return make_app().test_client()


def meta(version: str = MODERN) -> dict:
    return {"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}}


def request(method: str, params: dict | None = None, id: Any = 1) -> dict:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        body["params"] = params
    return body


def modern(method: str, params: dict | None = None, id: Any = 1, name: str | None = None) -> tuple[dict, dict]:
    """A well-formed 2026-07-28 request and its headers."""
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return request(method, {**(params or {}), "_meta": meta()}, id), headers


def post(client, body: Any, headers: dict | None = None, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/mcp", data=data, content_type=content_type, headers={**ACCEPT, **(headers or {})})


def rpc_error(response, status: int, code: int, id: Any = 1) -> dict:
    """The response is a JSON-RPC error with this HTTP status, code and id; returns the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"jsonrpc", "id", "error"} and body["jsonrpc"] == "2.0"
    assert body["id"] == id
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str)
    return body["error"]


# --- HTTP-level refusals: still JSON-RPC errors (id null), `data.code` as in the rest of the protocol -------

HELLO = request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}})


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
def test_only_post_is_allowed(client, method):
    response = client.open("/mcp", method=method, headers=ACCEPT)
    assert response.headers["Allow"] == "POST"
    assert rpc_error(response, 405, -32600, None)["data"] == {"code": "method_not_allowed"}


HTTP_REFUSALS = [
    ("text-plain", {"content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("form", {"content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("accepts-html-only", {"headers": {"Accept": "text/html"}}, 406, "not_acceptable"),
    ("accepts-sse-only", {"headers": {"Accept": "text/event-stream"}}, 406, "not_acceptable"),
    ("foreign-origin", {"headers": {"Origin": "http://evil.example"}}, 403, "forbidden"),
    ("lookalike-origin", {"headers": {"Origin": "http://localhost.evil.example"}}, 403, "forbidden"),
    ("https-origin-not-listed", {"headers": {"Origin": "https://localhost:8443"}}, 403, "forbidden"),
    ("null-origin", {"headers": {"Origin": "null"}}, 403, "forbidden"),
]


@pytest.mark.parametrize(("how", "status", "code"), [row[1:] for row in HTTP_REFUSALS],
                         ids=[row[0] for row in HTTP_REFUSALS])
def test_http_refusals(client, how, status, code):
    response = post(client, HELLO, how.get("headers"), how.get("content_type", "application/json"))
    assert rpc_error(response, status, -32600, None)["data"] == {"code": code}


@pytest.mark.parametrize("headers", [{}, {"Accept": "*/*"}, {"Accept": "application/*"}, {"Accept": ""},
                                     {"Origin": "http://localhost:5173"}, {"Origin": "http://127.0.0.1"},
                                     {"Origin": "http://[::1]:8080"}, {"Origin": "HTTP://LOCALHOST:3000/"}])
def test_allowed_origins_and_accepts(client, headers):
    response = client.post("/mcp", json=HELLO, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["result"]["protocolVersion"] == "2025-11-25"


@pytest.mark.parametrize(("setting", "origin", "status"), [
    ("https://app.example.com", "https://app.example.com", 200),
    ("https://app.example.com", "http://localhost:3000", 403),
    ("https://app.example.com:*", "https://app.example.com:9443", 200),
    ("*", "http://anything.example", 200),
])
def test_configured_origins(setting, origin, status):
    response = post(make_app(origins=setting).test_client(), HELLO, {"Origin": origin})
    assert response.status_code == status


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_service_token_is_required(authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = post(make_app(token=TOKEN).test_client(), HELLO, headers)
    assert rpc_error(response, 401, -32600, None)["data"] == {"code": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_right_service_token_is_accepted():
    response = post(make_app(token=TOKEN).test_client(), HELLO, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and "result" in response.get_json()


def test_origin_is_checked_before_the_token():
    response = post(make_app(token=TOKEN).test_client(), HELLO, {"Origin": "http://evil.example"})
    assert response.status_code == 403


def test_oversize_body_is_413():
    big = request("tools/call", {"name": "echo", "arguments": {"name": "x" * 4000}})
    response = post(make_app(max_body_bytes=1024).test_client(), big)
    assert rpc_error(response, 413, -32600, None)["data"] == {"code": "payload_too_large"}


# --- the JSON-RPC envelope and each era's checks ------------------------------------------------------------

LEGACY = {"MCP-Protocol-Version": "2025-11-25"}
M_HEAD = {"MCP-Protocol-Version": MODERN}


def modern_row(method: str, params: dict | None = None, name: str | None = None, **header_changes: str | None):
    body, headers = modern(method, params, name=name)
    for key, value in header_changes.items():
        header = key.replace("_", "-")
        if value is None:
            headers.pop(header, None)
        else:
            headers[header] = value
    return body, headers


BAD_MESSAGES = [
    # id, body, headers, HTTP status, JSON-RPC code, id echoed
    ("truncated-json", b'{"jsonrpc": "2.0", "id": 1, "method"', {}, 400, -32700, None),
    ("empty-body", b"", {}, 400, -32700, None),
    ("invalid-utf8", b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}', {}, 400, -32700, None),
    ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, {}, 400, -32700, None),
    ("a-string", b'"tools/list"', {}, 400, -32600, None),
    ("null", b"null", {}, 400, -32600, None),
    ("no-jsonrpc", {"id": 1, "method": "ping"}, {}, 400, -32600, 1),
    ("jsonrpc-1.0", {"jsonrpc": "1.0", "id": 1, "method": "ping"}, {}, 400, -32600, 1),
    ("id-null", {"jsonrpc": "2.0", "id": None, "method": "ping"}, {}, 400, -32600, None),
    ("id-float", {"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, {}, 400, -32600, None),
    ("id-bool", {"jsonrpc": "2.0", "id": True, "method": "ping"}, {}, 400, -32600, None),
    ("id-object", {"jsonrpc": "2.0", "id": {"n": 1}, "method": "ping"}, {}, 400, -32600, None),
    ("no-method", {"jsonrpc": "2.0", "id": 1}, {}, 400, -32600, 1),
    ("method-number", {"jsonrpc": "2.0", "id": 1, "method": 7}, {}, 400, -32600, 1),
    ("params-array", {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": []}, {}, 400, -32602, 1),
    # legacy era: dispatch errors are HTTP 200
    ("legacy-unknown-method", request("tools/destroy"), LEGACY, 200, -32601, 1),
    ("legacy-discover", request("server/discover"), LEGACY, 200, -32601, 1),
    ("legacy-subscribe", request("resources/subscribe", {"uri": "cortex://test/items/a"}), {}, 200, -32601, 1),
    ("legacy-initialize-without-version", request("initialize", {"capabilities": {}}), {}, 200, -32602, 1),
    ("legacy-call-without-name", request("tools/call", {"arguments": {}}), LEGACY, 200, -32602, 1),
    ("legacy-call-name-number", request("tools/call", {"name": 3}), LEGACY, 200, -32602, 1),
    ("legacy-call-arguments-list", request("tools/call", {"name": "echo", "arguments": ["x"]}), LEGACY, 200,
     -32602, 1),
    ("legacy-unknown-tool", request("tools/call", {"name": "nope", "arguments": {}}), LEGACY, 200, -32602, 1),
    ("legacy-list-with-cursor", request("tools/list", {"cursor": "abc"}), LEGACY, 200, -32602, 1),
    ("legacy-read-without-uri", request("resources/read", {}), LEGACY, 200, -32602, 1),
    ("legacy-read-unknown-path", request("resources/read", {"uri": "cortex://test/things/a"}), LEGACY, 200,
     -32002, 1),
    ("legacy-read-other-scheme", request("resources/read", {"uri": "file:///items/a"}), LEGACY, 200, -32002, 1),
    ("legacy-read-other-service", request("resources/read", {"uri": "cortex://memory/items/a"}), LEGACY, 200,
     -32002, 1),
    ("legacy-read-missing-object", request("resources/read", {"uri": "cortex://test/items/nobody"}), LEGACY, 200,
     -32002, 1),
    ("legacy-read-bad-param", request("resources/read", {"uri": "cortex://test/items/a?limit=0"}), LEGACY, 200,
     -32602, 1),
    ("legacy-read-unknown-param", request("resources/read", {"uri": "cortex://test/items/a?x=1"}), LEGACY, 200,
     -32602, 1),
    ("legacy-read-param-twice", request("resources/read", {"uri": "cortex://test/items/a?limit=1&limit=2"}),
     LEGACY, 200, -32602, 1),
    ("legacy-read-path-param-in-query", request("resources/read", {"uri": "cortex://test/items/a?owner=b"}),
     LEGACY, 200, -32602, 1),
    ("legacy-read-refused-mid-stream", request("resources/read", {"uri": "cortex://test/items/a?fail_after=1"}),
     LEGACY, 200, -32602, 1),
    ("unsupported-version-header", request("tools/list"), {"MCP-Protocol-Version": "2024-11-05"}, 400, -32022, 1),
    ("garbage-version-header", request("tools/list"), {"MCP-Protocol-Version": "banana"}, 400, -32022, 1),
    ("empty-version-header", request("tools/list"), {"MCP-Protocol-Version": ""}, 400, -32022, 1),
    # modern era: the validation ladder, then dispatch errors with the spec's statuses
    ("modern-header-without-meta", request("tools/list"), {**M_HEAD, "Mcp-Method": "tools/list"}, 400, -32602, 1),
    ("modern-meta-not-object", request("tools/list", {"_meta": "x"}), {**M_HEAD, "Mcp-Method": "tools/list"}, 400,
     -32602, 1),
    ("modern-meta-without-capabilities",
     request("tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}),
     {**M_HEAD, "Mcp-Method": "tools/list"}, 400, -32602, 1),
    ("modern-capabilities-not-object",
     request("tools/list", {"_meta": {**meta(), "io.modelcontextprotocol/clientCapabilities": []}}),
     {**M_HEAD, "Mcp-Method": "tools/list"}, 400, -32602, 1),
    ("modern-meta-without-version-header", *modern_row("tools/list", MCP_Protocol_Version=None), 400, -32020, 1),
    ("modern-version-header-differs", *modern_row("tools/list", MCP_Protocol_Version="2025-11-25"), 400, -32020, 1),
    ("modern-without-method-header", *modern_row("tools/list", Mcp_Method=None), 400, -32020, 1),
    ("modern-method-header-differs", *modern_row("tools/list", Mcp_Method="tools/call"), 400, -32020, 1),
    ("modern-method-header-case", *modern_row("tools/list", Mcp_Method="TOOLS/LIST"), 400, -32020, 1),
    ("modern-call-without-name-header", *modern_row("tools/call", {"name": "echo"}), 400, -32020, 1),
    ("modern-name-header-differs", *modern_row("tools/call", {"name": "echo"}, name="fail"), 400, -32020, 1),
    ("modern-name-header-bad-base64", *modern_row("tools/call", {"name": "echo"}, name="=?base64?!!?="), 400,
     -32020, 1),
    ("modern-read-without-name-header", *modern_row("resources/read", {"uri": "cortex://test/items/a"}), 400,
     -32020, 1),
    ("modern-unsupported-version",
     request("tools/list", {"_meta": meta("2099-01-01")}),
     {"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"}, 400, -32022, 1),
    ("modern-version-not-string", request("tools/list", {"_meta": meta(7)}),  # type: ignore[arg-type]
     {"MCP-Protocol-Version": "7", "Mcp-Method": "tools/list"}, 400, -32020, 1),
    ("modern-initialize", *modern_row("initialize", {"protocolVersion": "2025-11-25"}), 404, -32601, 1),
    ("modern-ping", *modern_row("ping"), 404, -32601, 1),
    ("modern-unknown-method", *modern_row("tools/destroy"), 404, -32601, 1),
    ("modern-unknown-tool", *modern_row("tools/call", {"name": "nope"}, name="nope"), 400, -32602, 1),
    ("modern-read-unknown-path", *modern_row("resources/read", {"uri": "cortex://test/things/a"},
                                             name="cortex://test/things/a"), 400, -32602, 1),
    ("modern-read-missing-object", *modern_row("resources/read", {"uri": "cortex://test/items/nobody"},
                                               name="cortex://test/items/nobody"), 400, -32602, 1),
    # batches: only 2025-03-26 (no header, or that header) may send an array
    ("batch-in-2025-06-18", [request("ping")], {"MCP-Protocol-Version": "2025-06-18"}, 400, -32600, None),
    ("batch-in-2025-11-25", [request("ping")], LEGACY, 400, -32600, None),
    ("batch-in-2026-07-28", [modern("tools/list")[0]], {**M_HEAD, "Mcp-Method": "tools/list"}, 400, -32600, None),
    ("empty-batch", [], {}, 400, -32600, None),
    # what is not a request
    ("modern-client-response", {"jsonrpc": "2.0", "id": 9, "result": {}}, M_HEAD, 400, -32600, None),
    ("notification-unsupported-version", {"jsonrpc": "2.0", "method": "notifications/initialized"},
     {"MCP-Protocol-Version": "2024-11-05"}, 400, -32022, None),
]


@pytest.mark.parametrize(("body", "headers", "status", "code", "id"), [row[1:] for row in BAD_MESSAGES],
                         ids=[row[0] for row in BAD_MESSAGES])
def test_bad_messages_are_json_rpc_errors(client, body, headers, status, code, id):
    error = rpc_error(post(client, body, headers), status, code, id)
    assert SECRET not in json.dumps(error)


def test_unsupported_version_names_the_supported_ones(client):
    error = rpc_error(post(client, request("tools/list"), {"MCP-Protocol-Version": "2024-11-05"}), 400, -32022)
    assert error["data"] == {"supported": ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"],
                             "requested": "2024-11-05"}


def test_resource_not_found_carries_the_uri(client):
    uri = "cortex://test/things/a"
    legacy = rpc_error(post(client, request("resources/read", {"uri": uri})), 200, -32002)
    body, headers = modern("resources/read", {"uri": uri}, name=uri)
    current = rpc_error(post(client, body, headers), 400, -32602)
    assert legacy["data"]["uri"] == current["data"]["uri"] == uri
    assert current["data"]["error"]["code"] == "not_found"


def test_refusal_inside_a_resource_keeps_our_code(client):
    error = rpc_error(post(client, request("resources/read", {"uri": "cortex://test/items/a?fail_after=1"})), 200,
                      -32602)
    assert error["data"]["error"] == {"code": "forbidden", "message": "access revoked", "details": {}}


def test_unknown_tool_names_the_tool(client):
    error = rpc_error(post(client, request("tools/call", {"name": "nope"})), 200, -32602)
    assert error["message"] == "Unknown tool: nope"
