"""CORS on `/mcp`: a page on an origin the operator listed in MCP_ALLOWED_ORIGINS can call it from a
browser (preflight included, the service token still required), a page on any other origin is refused as
before, and the default list (loopback pages) passes the Origin check but gets no CORS answers."""

from __future__ import annotations

import pytest

from common.mcp.origins import DEFAULT_ALLOWED_ORIGINS, cors_patterns, origin_allowed, parse_allowed_origins
from tests.common.mcp.test_server import HELLO, TOKEN, make_app, post

PAGE = "http://localhost:5173"
SETTING = "http://localhost:*"


def preflight(client, origin: str, headers: str = "authorization,content-type,mcp-protocol-version"):
    return client.options("/mcp", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                           "Access-Control-Request-Headers": headers})


def cors_headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


@pytest.fixture
def client():
    return make_app(token=TOKEN, origins=SETTING).test_client()


def test_a_preflight_from_an_allowed_origin_needs_no_token(client):
    response = preflight(client, PAGE, "authorization,content-type,mcp-protocol-version,mcp-session-id,last-event-id")

    assert response.status_code == 200
    allowed = cors_headers(response)
    assert allowed["Access-Control-Allow-Origin"] == PAGE
    assert set(allowed["Access-Control-Allow-Headers"].split(", ")) == {
        "authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "last-event-id"}
    assert set(allowed["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "DELETE"}
    assert allowed["Access-Control-Max-Age"] == "7200"
    assert "Access-Control-Allow-Credentials" not in allowed


def test_a_preflight_is_told_only_the_headers_mcp_uses(client):
    response = preflight(client, PAGE, "authorization,content-type,x-custom")
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"


def test_an_allowed_page_reads_the_answer_and_the_session_header(client):
    response = post(client, HELLO, {"Origin": PAGE, "Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200 and response.get_json()["result"]["serverInfo"]
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert set(response.headers["Access-Control-Expose-Headers"].split(", ")) == {"Mcp-Session-Id", "X-Request-ID"}
    assert "Origin" in response.headers.get_all("Vary")


def test_the_token_is_still_required_and_the_page_can_read_why(client):
    response = post(client, HELLO, {"Origin": PAGE})

    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Access-Control-Allow-Origin"] == PAGE


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost.evil.example", "https://localhost:8443",
                                    "null"])
def test_other_origins_are_refused_with_no_cors_headers(client, origin):
    asked = preflight(client, origin)
    posted = post(client, HELLO, {"Origin": origin, "Authorization": f"Bearer {TOKEN}"})

    assert asked.status_code == 403 and cors_headers(asked) == {}
    assert posted.status_code == 403 and cors_headers(posted) == {}


def test_requests_without_an_origin_carry_no_cors_headers(client):
    response = post(client, HELLO, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and cors_headers(response) == {}


@pytest.mark.parametrize("token", [None, TOKEN])
def test_the_default_origins_pass_the_origin_check_but_get_no_cors_answers(token):
    client = make_app(token=token).test_client()  # MCP_ALLOWED_ORIGINS unset: loopback pages, any port
    headers = {"Origin": PAGE} | ({"Authorization": f"Bearer {token}"} if token else {})
    asked = preflight(client, PAGE)
    posted = post(client, HELLO, headers)

    assert cors_headers(asked) == {}  # the browser's preflight fails: the page cannot send the request
    assert posted.status_code == 200 and cors_headers(posted) == {}  # nor read an answer
    assert "Origin" not in posted.headers.get_all("Vary")


@pytest.mark.parametrize("setting", ["", " , "])
def test_an_empty_setting_is_the_default_with_no_cors_answers(setting):
    response = post(make_app(origins=setting).test_client(), HELLO, {"Origin": PAGE})
    assert response.status_code == 200 and cors_headers(response) == {}


@pytest.mark.parametrize(("setting", "origin"), [
    ("https://app.example.com:443", "https://app.example.com"),
    ("http://[0:0::1]:*", "http://[::1]:8080"),
])
def test_an_entry_in_another_form_answers_the_origin_browsers_send(setting, origin):
    response = post(make_app(origins=setting).test_client(), HELLO, {"Origin": origin})
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == origin


def test_the_default_list_set_explicitly_gets_cors_answers():
    response = post(make_app(origins=DEFAULT_ALLOWED_ORIGINS).test_client(), HELLO, {"Origin": PAGE})
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == PAGE


@pytest.mark.parametrize("setting", [None, "https://app.example.com", "http://localhost:*,https://app.example.com",
                                     "*", "http://[::1]:*"])
@pytest.mark.parametrize("origin", [
    "http://localhost", "http://localhost:5173", "HTTP://LOCALHOST:3000/", "http://localhost:", "http://localhost:x",
    "http://localhost:5173/x", "http://localhost.evil.example", "http://127.0.0.1:9", "http://127.0.0.1.nip.io",
    "http://[::1]:8080", "http://[::2]:8080", "https://app.example.com", "https://app.example.com:443",
    "https://app.example.co", "https://app.example.com.evil.test", "null", "http://localhost:\u00b2",
])
def test_cors_answers_exactly_the_origins_the_origin_check_lets_through_when_set(setting, origin):
    allowed = parse_allowed_origins(setting)
    by_check = origin_allowed(origin, allowed)
    by_cors = any(pattern.match(origin) for pattern in cors_patterns(allowed))
    assert by_cors is (by_check and setting is not None)

    response = post(make_app(token=TOKEN, origins=setting).test_client(), HELLO,
                    {"Origin": origin, "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == (200 if by_check else 403)
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if by_cors else None)
