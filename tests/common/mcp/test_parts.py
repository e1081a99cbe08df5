"""The pieces behind `/mcp` on their own (allowed origins, resource URIs, header values, error statuses),
and the real Memory and Cognition tables as MCP lists."""

from __future__ import annotations

import pytest

from cognition_service.app import create_app as create_cognition
from common.config import ConfigError
from common.errors import InvalidArguments, NotFound
from common.mcp import DEFAULT_ALLOWED_ORIGINS, AllowedOrigins, parse_allowed_origins
from common.mcp.eras import decode_header_value, http_status
from common.mcp.jsonrpc import RpcError
from common.mcp.origins import origin_allowed
from common.mcp.uris import resolve, template_name, uri_template
from memory_service.app import create_app as create_memory
from tests.common.mcp.test_server import RESOURCES, request

DEFAULT = parse_allowed_origins(None)


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True), ("http://localhost", True), ("http://localhost:9000", True), ("http://127.0.0.1:1", True),
    ("http://[::1]:5173", True), ("http://LocalHost:80/", True),
    ("https://localhost", False), ("http://localhost.evil.example", False), ("http://localhost:9000.evil", False),
    ("http://127.0.0.1.nip.io", False), ("http://evil.example", False), ("null", False), ("", False),
    ("http://localhost:", False),
])
def test_default_origins_are_loopback_pages_only(origin, allowed):
    assert origin_allowed(origin, DEFAULT) is allowed


def test_origin_setting_is_normalised():
    assert parse_allowed_origins(" HTTPS://App.Example.com/ , http://localhost:* ,") == AllowedOrigins(
        ("https://app.example.com", "http://localhost:*"), explicit=True)


def test_origin_entries_are_written_as_browsers_send_origins():
    setting = "https://app.example.com:443, http://[0:0::1]:*, http://app.example.com:80, http://[::1]:*, *"
    assert parse_allowed_origins(setting).entries == (
        "https://app.example.com", "http://[::1]:*", "http://app.example.com", "*")


@pytest.mark.parametrize(("setting", "origin", "allowed"), [
    ("https://app.example.com:443", "https://app.example.com", True),
    ("http://[0:0::1]:8080", "http://[::1]:8080", True),
    ("http://[0:0::1]:*", "http://[::1]:5173", True),
    ("http://[::1]:*", "http://[::2]:5173", False),
])
def test_canonical_entries_match_what_browsers_send(setting, origin, allowed):
    assert origin_allowed(origin, parse_allowed_origins(setting)) is allowed


@pytest.mark.parametrize("setting", [None, "", " ", ",", " , "])
def test_without_a_setting_the_default_applies_and_is_not_explicit(setting):
    assert parse_allowed_origins(setting) == AllowedOrigins(DEFAULT.entries, explicit=False)
    assert parse_allowed_origins(DEFAULT_ALLOWED_ORIGINS) == AllowedOrigins(DEFAULT.entries, explicit=True)


@pytest.mark.parametrize("setting", ["localhost", "ftp://files.example", "https://app.example.com/path",
                                     "https://user@app.example.com", "http://localhost:99999", "http://:80",
                                     "https://app.example.com?x=1", "http://*.example.com", "http://localhost:80:*",
                                     "http://[::1]:8080:*", "http://[::g]:*", "http://127.1", "http://0x7f.0.0.1:*",
                                     "http://[0:0::1]:99999"])
def test_bad_origin_settings_are_refused(setting):
    with pytest.raises(ConfigError, match="MCP_ALLOWED_ORIGINS") as caught:
        parse_allowed_origins(f"http://localhost:*,{setting}")
    assert repr(setting) in str(caught.value) and "\n" not in str(caught.value)


def test_an_ipv4_address_browsers_never_send_is_refused_with_advice():
    with pytest.raises(ConfigError) as caught:
        parse_allowed_origins("http://127.1:*")
    assert str(caught.value) == ("invalid configuration: MCP_ALLOWED_ORIGINS entries must write IPv4 addresses as "
                                 "browsers send them, 127.1 as 127.0.0.1, got 'http://127.1:*'")


@pytest.mark.parametrize("create", [create_memory, create_cognition])
def test_a_bad_origin_setting_stops_the_service_with_one_line(create, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        create({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "HEALTH_INTERVAL_SECONDS": "0",
                "MCP_ALLOWED_ORIGINS": "localhost"})
    assert stopped.value.code == 3
    assert capsys.readouterr().err.strip().splitlines() == [
        "cortex: invalid configuration: MCP_ALLOWED_ORIGINS entries must be '*', scheme://host[:port] or "
        "scheme://host:*, got 'localhost'"]


# --- resource URIs ----------------------------------------------------------------------------------------


def test_uri_templates_put_the_other_parameters_in_the_query():
    [items] = RESOURCES
    assert uri_template("test", items) == "cortex://test/items/{owner}{?limit,fail_after}"
    assert template_name(items) == "items"


@pytest.mark.parametrize(("uri", "expected"), [
    ("cortex://test/items/ada", {"owner": "ada", "limit": 3, "fail_after": None}),
    ("cortex://test/items/ada?limit=7", {"owner": "ada", "limit": 7, "fail_after": None}),
    ("cortex://test//items/ada?fail_after=&limit=2", None),
    ("cortex://test/items/ada?fail_after=2&limit=2", {"owner": "ada", "limit": 2, "fail_after": 2}),
])
def test_uris_resolve_to_validated_parameters(uri, expected):
    if expected is None:
        with pytest.raises((NotFound, InvalidArguments)):
            resolve("test", RESOURCES, uri)
        return
    resource, params = resolve("test", RESOURCES, uri)
    assert resource is RESOURCES[0] and params.model_dump() == expected


@pytest.mark.parametrize(("uri", "error"), [
    ("cortex://test/items", NotFound), ("cortex://test/items/a/b", NotFound), ("cortex://other/items/a", NotFound),
    ("memory://test/items/a", NotFound), ("cortex://test/items/a#frag", NotFound), ("", NotFound),
    ("cortex://test/items/a?limit=x", InvalidArguments), ("cortex://test/items/a?owner=b", InvalidArguments),
    ("cortex://test/items/a?limit=1&limit=1", InvalidArguments), ("cortex://test/items/a b", InvalidArguments),
])
def test_bad_uris(uri, error):
    with pytest.raises(error):
        resolve("test", RESOURCES, uri)


# --- header values and statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "decoded"), [
    (None, None), ("get_weather", "get_weather"), ("=?base64?SGVsbG8sIOS4lueVjA==?=", "Hello, \u4e16\u754c"),
    ("=?base64?IHBhZGRlZCA=?=", " padded "), ("=?base64?not base64?=", None), ("=?base64?//79?=", None),
    ("=?BASE64?SGk=?=", "=?BASE64?SGk=?="),
])
def test_header_values_decode_the_base64_sentinel(value, decoded):
    assert decode_header_value(value) == decoded


@pytest.mark.parametrize(("code", "legacy", "modern"), [
    (-32700, 400, 400), (-32600, 400, 400), (-32601, 200, 404), (-32602, 200, 400), (-32603, 200, 200),
    (-32002, 200, 200), (-32020, 200, 400), (-32022, 200, 400),
])
def test_error_statuses_per_era(code, legacy, modern):
    error = RpcError(code, "x")
    assert (http_status(error, modern=False), http_status(error, modern=True)) == (legacy, modern)
    assert http_status(RpcError(code, "x", status=400), modern=False) == 400


# --- the real services' tables ----------------------------------------------------------------------------


@pytest.fixture(params=["memory", "cognition"])
def service(request, tmp_path):
    config = {"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "SERVICE_TOKEN": "", "MCP_ALLOWED_ORIGINS": "",
              "MEMORY_SERVICE_URL": "http://127.0.0.1:9", "HEALTH_INTERVAL_SECONDS": "0", "EMBEDDINGS": "off"}
    create = create_memory if request.param == "memory" else create_cognition
    return request.param, create(config).test_client()


def test_each_service_lists_its_own_table(service):
    name, client = service
    plain_tools = client.get("/tools").get_json()["tools"]
    listed = client.post("/mcp", json=request("tools/list")).get_json()["result"]["tools"]
    assert listed == [{"name": t["name"], "description": t["description"], "inputSchema": t["input_schema"]}
                      for t in plain_tools]
    plain_resources = client.get("/resources").get_json()["resources"]
    templates = client.post("/mcp", json=request("resources/templates/list")).get_json()["result"]
    assert [t["uriTemplate"].split("{?")[0] for t in templates["resourceTemplates"]] == [
        f"cortex://{name}/{r['path_template']}" for r in plain_resources]
    hello = client.post("/mcp", json=request("initialize", {"protocolVersion": "2025-11-25"})).get_json()
    assert hello["result"]["serverInfo"]["name"] == f"cortex-{name}"
