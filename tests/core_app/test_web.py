"""The Core App's web page (`GET /`, `/static/...`) and its headers, and CORS on the client API for pages on
other origins (CORS_ALLOWED_ORIGINS), through the Flask test client. The browser's side of CORS is
tests/system/browser/test_cross_origin.py."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core_app.app import create_app
from core_app.config import load_config
from tests.core_app.accounts import Account, sign_up
from tests.core_app.api_calls import new_conversation, new_workspace
from tests.core_app.embedded_config import core_config
from tests.core_app.output_stream import listening, stream_url

ALLOWED = "https://chat.example.com"
ALSO_ALLOWED = "http://localhost:5173"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@pytest.fixture(scope="module")
def cors_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app(core_config(tmp_path_factory.mktemp("web"), CORS_ALLOWED_ORIGINS=f"{ALLOWED}, {ALSO_ALLOWED}/",
                                  STREAMS_PER_USER="1"))


@pytest.fixture(scope="module")
def client(cors_app: Flask) -> FlaskClient:
    return cors_app.test_client()


@pytest.fixture(scope="module")
def plain_client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    """A Core with CORS_ALLOWED_ORIGINS unset, the default."""
    return create_app(core_config(tmp_path_factory.mktemp("web-plain"))).test_client()


@pytest.fixture(scope="module")
def ada(client: FlaskClient) -> Account:
    return sign_up(client, "Ada")


@pytest.fixture(scope="module")
def conversation(client: FlaskClient, ada: Account) -> dict:
    return new_conversation(client, ada, new_workspace(client, ada)["id"])


def preflight(client: FlaskClient, path: str, origin: str = ALLOWED, method: str = "POST",
              headers: str = "content-type,authorization"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": headers})


def cors_headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


# --- the page --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/static/index.html"])
def test_the_page_is_served_with_a_strict_policy_and_revalidated_on_every_load(client, path):
    response = client.get(path)

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert b"<html" in response.data
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-cache"
    again = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.headers["Content-Security-Policy"] == CSP
    assert again.headers["Cache-Control"] == "no-cache"


def test_the_page_is_the_same_in_single_process_and_distributed_mode(tmp_path, client):
    distributed = create_app(core_config(tmp_path, CORTEX_DISTRIBUTED_MODE="true")).test_client()

    response = distributed.get("/")
    assert response.status_code == 200 and response.data == client.get("/").data
    assert response.headers["Content-Security-Policy"] == CSP


def test_a_missing_asset_is_a_json_404_that_no_cache_keeps(client):
    response = client.get("/static/no-such-file.js")

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_api_keeps_its_own_headers(client, ada):
    response = client.get("/v1/workspace", headers=ada.headers)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in response.headers


# --- CORS: not configured (the default) ------------------------------------------------------------------

@pytest.mark.parametrize("request_kind", ["preflight", "simple"])
@pytest.mark.parametrize("path", ["/v1/auth/register", "/v1/workspace", "/v1/conversation/c1/messages/stream"])
def test_without_the_setting_no_answer_carries_cors_headers(plain_client, request_kind, path):
    if request_kind == "preflight":
        response = preflight(plain_client, path)
    else:
        response = plain_client.get(path, headers={"Origin": ALLOWED})

    assert cors_headers(response) == {}


def test_the_setting_is_empty_by_default():
    assert load_config({"JWT_SECRET": "x" * 32}).cors_allowed_origins == ()


# --- CORS: allowed origins -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "method", "headers"), [
    ("/v1/auth/register", "POST", "content-type"),
    ("/v1/auth/login", "POST", "content-type"),
    ("/v1/workspace", "POST", "authorization,content-type,x-request-id"),
    ("/v1/workspace/w1", "PUT", "authorization,content-type"),
    ("/v1/conversation/c1", "DELETE", "authorization"),
    ("/v1/conversation/c1/messages", "POST", "authorization,content-type,idempotency-key"),
    ("/v1/conversation/c1/stream-ticket", "POST", "authorization"),
    ("/v1/conversation/c1/messages/stream", "GET", "last-event-id"),
    ("/v1/search", "POST", "authorization,content-type"),
])
def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(client, path, method, headers):
    response = preflight(client, path, method=method, headers=headers)

    assert response.status_code == 200
    allowed = cors_headers(response)
    assert allowed["Access-Control-Allow-Origin"] == ALLOWED
    assert set(allowed["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PUT", "DELETE"}
    assert set(allowed["Access-Control-Allow-Headers"].split(", ")) == set(headers.split(","))
    assert allowed["Access-Control-Max-Age"] == "7200"
    assert "Access-Control-Allow-Credentials" not in allowed
    assert "Origin" in response.headers.get_all("Vary")


def test_a_preflight_gets_only_the_headers_and_methods_that_are_allowed(client):
    asked_more = preflight(client, "/v1/workspace", headers="authorization,content-type,x-custom,cookie")
    assert asked_more.headers["Access-Control-Allow-Headers"] == "authorization, content-type"

    patch = preflight(client, "/v1/workspace/w1", method="PATCH")
    assert "Access-Control-Allow-Methods" not in patch.headers


def test_preflights_are_not_counted_as_sign_ins(tmp_path):
    tight = create_app(core_config(tmp_path, CORS_ALLOWED_ORIGINS=ALLOWED, AUTH_RATE_LIMIT_PER_ADDRESS="3/minute"))
    client = tight.test_client()

    for _ in range(6):
        assert preflight(client, "/v1/auth/login").status_code == 200
    first_login = client.post("/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong-password"},
                              headers={"Origin": ALLOWED})
    assert first_login.status_code == 401
    assert first_login.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_answers_and_errors_name_the_allowed_origin_and_expose_what_a_page_needs(client, ada, conversation):
    origin = {"Origin": ALLOWED}
    created = client.post("/v1/workspace", json={"name": "From a page"}, headers={**ada.headers, **origin})
    missing = client.get("/v1/conversation/no-such-one", headers={**ada.headers, **origin})
    unauthenticated = client.get("/v1/workspace", headers=origin)
    no_route = client.get("/v1/nothing-here", headers=origin)

    for response, status in ((created, 201), (missing, 404), (unauthenticated, 401), (no_route, 404)):
        assert response.status_code == status
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert set(response.headers["Access-Control-Expose-Headers"].split(", ")) == {"X-Request-ID", "Retry-After"}
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_origins_compare_as_browsers_send_them(client):
    # The setting named `http://localhost:5173/`; browsers send the origin without a slash.
    response = client.get("/v1/workspace", headers={"Origin": ALSO_ALLOWED})
    assert response.headers["Access-Control-Allow-Origin"] == ALSO_ALLOWED
    upper = client.get("/v1/workspace", headers={"Origin": ALLOWED.upper()})
    assert upper.headers["Access-Control-Allow-Origin"] == ALLOWED.upper()


def test_the_stream_opens_from_an_allowed_origin_with_a_ticket(client, ada, conversation):
    ticket = client.post(f"/v1/conversation/{conversation['id']}/stream-ticket", headers={**ada.headers,
                                                                                          "Origin": ALLOWED})
    assert ticket.status_code == 201 and ticket.headers["Access-Control-Allow-Origin"] == ALLOWED
    query = {"ticket": ticket.get_json()["ticket"]}

    with listening(client, conversation["id"], headers={"Origin": ALLOWED}, query=query) as reader:
        assert reader.response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert reader.event().event == "connected"
        # STREAMS_PER_USER=1: the second stream is refused, and the page can read how long to wait.
        refused = client.get(stream_url(conversation["id"]), query_string=query, headers={"Origin": ALLOWED})
        assert refused.status_code == 429 and refused.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]


def test_answers_without_an_origin_carry_no_cors_headers(client, ada):
    assert cors_headers(client.get("/v1/workspace", headers=ada.headers)) == {}


def test_the_page_and_health_are_not_opened_to_other_origins(client):
    for path in ("/", "/static/index.html", "/health"):
        assert cors_headers(client.get(path, headers={"Origin": ALLOWED})) == {}


# --- CORS: other origins ---------------------------------------------------------------------------------

@pytest.mark.parametrize("origin", [
    "https://evil.example",
    "http://chat.example.com",            # the allowed host over another scheme
    "https://chat.example.com:8443",      # another port
    "https://chat.example.com.evil.test",  # a look-alike that starts with the allowed origin
    "https://evil-chat.example.com",
    "http://localhost:5174",
    "null",                               # sandboxed frames, file: pages
])
def test_other_origins_get_no_cors_headers(client, ada, conversation, origin):
    asked = preflight(client, "/v1/workspace", origin=origin)
    answered = client.get("/v1/workspace", headers={**ada.headers, "Origin": origin})

    assert cors_headers(asked) == {}
    assert answered.status_code == 200 and cors_headers(answered) == {}


# --- the setting ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("", ()),
    (" , ", ()),
    ("https://chat.example.com", ("https://chat.example.com",)),
    ("HTTPS://Chat.Example.com:443/, http://127.0.0.1:8080", ("https://chat.example.com", "http://127.0.0.1:8080")),
    ("http://[::1]:3000,http://[::1]:3000", ("http://[::1]:3000",)),
    ("http://[0:0::1]:3000,http://[::1]:3000", ("http://[::1]:3000",)),
])
def test_the_setting_holds_exact_origins_as_browsers_write_them(raw, expected):
    assert load_config({"JWT_SECRET": "x" * 32, "CORS_ALLOWED_ORIGINS": raw}).cors_allowed_origins == expected


@pytest.mark.parametrize("value", [
    "*",
    "https://*.example.com",
    "http://localhost:*",
    "chat.example.com",
    "https://chat.example.com/app",
    "https://chat.example.com?x=1",
    "ftp://chat.example.com",
    "https://user@chat.example.com",
    "http://localhost:99999",
    "null",
    "https://chat.example.com https://other.example.com",
    "http://127.1",
    "http://0x7f.0.0.1",
    "http://[0:0::g]:8080",
])
def test_a_malformed_setting_stops_the_app_with_one_line_naming_it(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as stopped:
        create_app(core_config(tmp_path, CORS_ALLOWED_ORIGINS=f"https://fine.example.com,{value}"))

    assert stopped.value.code == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cortex: invalid configuration: CORS_ALLOWED_ORIGINS ")
    assert repr(value) in lines[0]
