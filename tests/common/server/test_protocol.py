"""The server side of the tool/resource protocol (SPEC §3), driven through Flask's test client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask

from common.errors import Conflict, Forbidden, NotFound
from common.models import Arguments, Id, Limit
from common.server import CallContext, Resource, Tool, base_app, health_blueprint, protocol_blueprint

TOKEN = "s3cret-service-token"
SECRET = "password=hunter2 at /srv/app/secret.py"


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
    return {"name": args.name, "count": args.count, "idempotency_key": ctx.idempotency_key,
            "request_id": ctx.request_id}


def fail(args: FailArgs, ctx: CallContext) -> dict:
    if args.mode == "forbidden":
        raise Forbidden("user u1 may not touch conversation c1", {"conversation_id": "c1"})
    if args.mode == "conflict":
        raise Conflict("email taken")
    raise RuntimeError(SECRET)


def items(params: ItemParams, ctx: CallContext) -> Iterator[dict]:
    if params.owner == "nobody":
        raise NotFound("no such owner")  # access is checked before the stream starts

    def generate() -> Iterator[dict]:
        for n in range(1, params.limit + 1):
            if params.fail_after is not None and n > params.fail_after:
                raise Forbidden("access revoked")
            yield {"owner": params.owner, "n": n}

    return generate()


TOOLS = [
    Tool("echo", "Echo the arguments back.", EchoArgs, echo),
    Tool("fail", "Fail in the requested way.", FailArgs, fail),
]
RESOURCES = [Resource("items/{owner}", "An owner's items.", ItemParams, items)]


def make_app(token: str | None = None, max_body_bytes: int = 1024 * 1024) -> Flask:
    app = base_app(__name__, service="test", max_body_bytes=max_body_bytes, log_level="WARNING")
    app.register_blueprint(protocol_blueprint(TOOLS, RESOURCES, token))
    app.register_blueprint(health_blueprint("test"))
    return app


@pytest.fixture
def client():
    return make_app().test_client()


@pytest.fixture
def secured():
    return make_app(token=TOKEN).test_client()


def assert_error(response, status: int, code: str) -> dict:
    """The response is the one error shape with this status and code; returns the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def post_raw(client, path: str, data: bytes | str, content_type: str = "application/json", **headers):
    return client.post(path, data=data, content_type=content_type, headers=headers)


# --- tool calls -----------------------------------------------------------------------------------


def test_call_tool_returns_result(client):
    response = client.post("/tool/echo", json={"arguments": {"name": "ada", "count": 2}})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"result"}
    assert body["result"]["name"] == "ada"
    assert body["result"]["count"] == 2


def test_call_tool_accepts_charset_in_content_type(client):
    response = post_raw(client, "/tool/echo", '{"arguments": {"name": "ada"}}', "application/json; charset=utf-8")
    assert response.status_code == 200
    assert response.get_json()["result"]["count"] == 1


def test_call_tool_accepts_unicode(client):
    response = client.post("/tool/echo", json={"arguments": {"name": "Zo\u00eb \u2713"}})
    assert response.status_code == 200
    assert response.get_json()["result"]["name"] == "Zo\u00eb \u2713"


BAD_BODIES = [
    ("malformed-json", b'{"arguments": {"name": "ada"', 400, "invalid_request"),
    ("empty-body", b"", 400, "invalid_request"),
    ("json-list", b'[{"arguments": {}}]', 400, "invalid_request"),
    ("json-string", b'"arguments"', 400, "invalid_request"),
    ("json-null", b"null", 400, "invalid_request"),
    ("missing-arguments", b'{"args": {"name": "ada"}}', 400, "invalid_request"),
    ("arguments-list", b'{"arguments": ["ada"]}', 400, "invalid_request"),
    ("arguments-string", b'{"arguments": "ada"}', 400, "invalid_request"),
    ("arguments-null", b'{"arguments": null}', 400, "invalid_request"),
    ("extra-top-level-key", b'{"arguments": {"name": "ada"}, "user": "root"}', 400, "invalid_request"),
    ("invalid-utf8", b'{"arguments": {"name": "\xff\xfe"}}', 400, "invalid_request"),
    ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, 400, "invalid_request"),
    ("deep-nesting-in-arguments", b'{"arguments": {"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
     400, "invalid_request"),
    ("huge-integer", b'{"arguments": {"name": "a", "count": ' + b"9" * 5000 + b"}}", 400, "invalid_request"),
]


@pytest.mark.parametrize(("data", "status", "code"), [row[1:] for row in BAD_BODIES],
                         ids=[row[0] for row in BAD_BODIES])
def test_bad_request_bodies(client, data, status, code):
    assert_error(post_raw(client, "/tool/echo", data), status, code)


BAD_ARGUMENTS = [
    ("missing", {}, "name", "missing"),
    ("extra", {"name": "ada", "admin": True}, "admin", "extra_forbidden"),
    ("wrong-type-int", {"name": "ada", "count": "many"}, "count", "int_parsing"),
    ("wrong-type-str", {"name": ["ada"]}, "name", "string_type"),
]


@pytest.mark.parametrize(("arguments", "field", "error_type"), [row[1:] for row in BAD_ARGUMENTS],
                         ids=[row[0] for row in BAD_ARGUMENTS])
def test_bad_arguments_list_the_field(client, arguments, field, error_type):
    error = assert_error(client.post("/tool/echo", json={"arguments": arguments}), 400, "invalid_arguments")
    errors = error["details"]["errors"]
    assert [(e["field"], e["type"]) for e in errors] == [(field, error_type)]
    assert errors[0]["message"]


def test_bad_arguments_do_not_echo_the_input(client):
    big = "x" * 5000
    response = client.post("/tool/echo", json={"arguments": {"name": "a", "count": big}})
    assert_error(response, 400, "invalid_arguments")
    assert big not in response.get_data(as_text=True)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_wrong_content_type_is_415(client, content_type):
    response = post_raw(client, "/tool/echo", '{"arguments": {"name": "ada"}}', content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_missing_content_type_is_415(client):
    response = client.post("/tool/echo", data=b'{"arguments": {"name": "ada"}}')
    assert_error(response, 415, "unsupported_media_type")


def test_oversize_body_is_413():
    small = make_app(max_body_bytes=1024).test_client()
    body = json.dumps({"arguments": {"name": "x" * 2000}})
    assert_error(post_raw(small, "/tool/echo", body), 413, "payload_too_large")
    # A body under the limit still works on the same app.
    assert small.post("/tool/echo", json={"arguments": {"name": "x" * 100}}).status_code == 200


@pytest.mark.parametrize("name", ["nope", "echo/extra", "ECHO", "x" * 1000])
def test_unknown_tool_is_404(client, name):
    error = assert_error(client.post(f"/tool/{name}", json={"arguments": {}}), 404, "tool_not_found")
    assert len(error["message"]) < 300


def test_get_on_tool_is_405(client):
    response = client.get("/tool/echo")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    "key",
    ["short", "has spaces in it", "x" * 129, "semi;colon-key", "tab\tin-the-key", "\u00e9" * 8],
    ids=["too-short", "spaces", "too-long", "semicolon", "tab", "non-ascii"],
)
def test_bad_idempotency_key_is_400(client, key):
    response = client.post("/tool/echo", json={"arguments": {"name": "ada"}}, headers={"Idempotency-Key": key})
    error = assert_error(response, 400, "invalid_request")
    assert "Idempotency-Key" in error["message"]


@pytest.mark.parametrize("key", ["0123abcd", "a" * 128, "3f2b9c1e-7d4a-4e5b-9c8d-0a1b2c3d4e5f", "call:1.2_x-y"])
def test_call_context_carries_idempotency_key(client, key):
    response = client.post("/tool/echo", json={"arguments": {"name": "ada"}}, headers={"Idempotency-Key": key})
    assert response.status_code == 200
    assert response.get_json()["result"]["idempotency_key"] == key


def test_call_context_without_idempotency_key(client):
    response = client.post("/tool/echo", json={"arguments": {"name": "ada"}})
    assert response.get_json()["result"]["idempotency_key"] is None


def test_unexpected_tool_failure_is_500_without_internals(client):
    response = client.post("/tool/fail", json={"arguments": {"mode": "crash"}})
    error = assert_error(response, 500, "tool_execution_error")
    assert "fail" in error["message"]
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", "hunter2", "secret.py"):
        assert leak not in text


@pytest.mark.parametrize(("mode", "status", "code"), [("forbidden", 403, "forbidden"), ("conflict", 409, "conflict")])
def test_tool_raising_service_error_keeps_its_status(client, mode, status, code):
    error = assert_error(client.post("/tool/fail", json={"arguments": {"mode": mode}}), status, code)
    if mode == "forbidden":
        assert error["message"] == "user u1 may not touch conversation c1"
        assert error["details"] == {"conversation_id": "c1"}


# --- discovery ------------------------------------------------------------------------------------


def test_tools_lists_names_descriptions_and_schemas(client):
    response = client.get("/tools")
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.get_json()["tools"]}
    assert list(tools) == ["echo", "fail"]
    echo_tool = tools["echo"]
    assert echo_tool["description"] == "Echo the arguments back."
    schema = echo_tool["input_schema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"name", "count"}
    assert schema["properties"]["count"]["type"] == "integer"
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    assert tools["fail"]["input_schema"]["required"] == ["mode"]


def test_resources_lists_templates_descriptions_and_params(client):
    response = client.get("/resources")
    assert response.status_code == 200
    resources = response.get_json()["resources"]
    assert [r["path_template"] for r in resources] == ["items/{owner}"]
    assert resources[0]["description"] == "An owner's items."
    params = resources[0]["params"]
    assert set(params["properties"]) == {"owner", "limit", "fail_after"}
    assert params["required"] == ["owner"]


# --- resources ------------------------------------------------------------------------------------


def test_resource_streams_sse_with_headers_and_framing(client):
    response = client.get("/resource/items/alice?limit=2", headers={"Accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.get_data() == (
        b'id: 1\ndata: {"owner":"alice","n":1}\n\n'
        b'id: 2\ndata: {"owner":"alice","n":2}\n\n'
        b'event: end\ndata: {"count":2}\n\n'
    )


def test_resource_error_after_start_is_in_band(client):
    response = client.get("/resource/items/alice?limit=3&fail_after=1")
    assert response.status_code == 200
    chunks = response.get_data().split(b"\n\n")
    assert chunks[0] == b'id: 1\ndata: {"owner":"alice","n":1}'
    assert chunks[1].startswith(b"event: error\ndata: ")
    error = json.loads(chunks[1].split(b"data: ", 1)[1])
    assert error["error"]["code"] == "forbidden"
    assert b"event: end" not in response.get_data()


BAD_RESOURCES = [
    ("unknown-resource", "/resource/nothing/here", 404, "not_found"),
    ("too-many-segments", "/resource/items/alice/extra", 404, "not_found"),
    ("empty-segment", "/resource/items/", 404, "not_found"),
    ("refused-before-stream", "/resource/items/nobody", 404, "not_found"),
    ("bad-path-param", "/resource/items/al%20ice", 400, "invalid_arguments"),
    ("bad-query-type", "/resource/items/alice?limit=many", 400, "invalid_arguments"),
    ("query-out-of-range", "/resource/items/alice?limit=0", 400, "invalid_arguments"),
    ("unknown-query", "/resource/items/alice?admin=1", 400, "invalid_arguments"),
    ("param-given-twice", "/resource/items/alice?owner=bob", 400, "invalid_arguments"),
]


@pytest.mark.parametrize(("url", "status", "code"), [row[1:] for row in BAD_RESOURCES],
                         ids=[row[0] for row in BAD_RESOURCES])
def test_bad_resource_requests_are_json_errors(client, url, status, code):
    assert_error(client.get(url), status, code)


# --- service token --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
    ids=["absent", "empty", "scheme-only", "blank-token", "wrong", "basic-scheme", "longer", "no-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/tool/echo"), ("POST", "/tool/nope"), ("GET", "/tools"), ("GET", "/resources"),
     ("GET", "/resource/items/alice")],
)
def test_service_token_required(secured, authorization, method, path):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = secured.open(path, method=method, json={"arguments": {"name": "ada"}}, headers=headers)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN} "])
def test_right_service_token_is_accepted(secured, authorization):
    headers = {"Authorization": authorization}
    assert secured.post("/tool/echo", json={"arguments": {"name": "ada"}}, headers=headers).status_code == 200
    assert secured.get("/tools", headers=headers).status_code == 200
    assert secured.get("/resource/items/alice", headers=headers).status_code == 200


def test_health_needs_no_token(secured):
    response = secured.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["service"] == "test"
    assert body["dependencies"] == {}


# --- request ids ----------------------------------------------------------------------------------


def test_request_id_is_echoed_and_given_to_the_tool(client):
    response = client.post("/tool/echo", json={"arguments": {"name": "ada"}}, headers={"X-Request-ID": "req-123.abc"})
    assert response.headers["X-Request-ID"] == "req-123.abc"
    assert response.get_json()["result"]["request_id"] == "req-123.abc"


def test_request_id_is_generated_when_absent(client):
    first = client.post("/tool/echo", json={"arguments": {"name": "ada"}})
    second = client.post("/tool/echo", json={"arguments": {"name": "ada"}})
    generated = first.headers["X-Request-ID"]
    assert generated
    assert generated == first.get_json()["result"]["request_id"]
    assert generated != second.headers["X-Request-ID"]


@pytest.mark.parametrize("unsafe", ["has space", "x" * 129, "new\tline", "<script>"])
def test_unsafe_request_id_is_replaced(client, unsafe):
    response = client.post("/tool/echo", json={"arguments": {"name": "ada"}}, headers={"X-Request-ID": unsafe})
    assert response.headers["X-Request-ID"] not in ("", unsafe)


@pytest.mark.parametrize(("method", "path"), [("GET", "/tools"), ("GET", "/nowhere"), ("POST", "/tool/nope")])
def test_request_id_is_on_every_response(client, method, path):
    response = client.open(path, method=method, json={"arguments": {}}, headers={"X-Request-ID": "trace-1"})
    assert response.headers["X-Request-ID"] == "trace-1"


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/nowhere"), 404, "not_found")
