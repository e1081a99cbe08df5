"""Accounts, tokens, health and request ids of the Core App client API (SPEC §6), through the whole
embedded stack."""

from __future__ import annotations

import json
import re
import time
import uuid

import jwt
import pytest

from core_app.app import create_app
from tests.core_app.accounts import PASSWORD, sign_up, unique_email
from tests.core_app.api_calls import assert_error, new_conversation
from tests.core_app.embedded_config import JWT_SECRET, core_config

PUBLIC_USER_FIELDS = {"id", "email", "name", "created_at"}


# --- register -----------------------------------------------------------------------------------------


def test_register_returns_the_user_without_any_password(client):
    email = unique_email("Dora")
    response = client.post("/v1/auth/register", json={"email": email, "name": "Dora", "password": PASSWORD})

    assert response.status_code == 201
    user = response.get_json()["user"]
    assert set(user) == PUBLIC_USER_FIELDS
    assert (user["email"], user["name"]) == (email, "Dora")
    assert PASSWORD not in response.get_data(as_text=True)


@pytest.mark.parametrize("spelling", [
    pytest.param(lambda e: e, id="same"),
    pytest.param(str.upper, id="upper-case"),
    pytest.param(str.swapcase, id="swapped-case"),
    pytest.param(str.title, id="title-case"),
    pytest.param(lambda e: f"  {e}  ", id="surrounding-spaces"),
])
def test_register_rejects_an_email_taken_in_any_case(client, spelling):
    email = unique_email("Eve")
    first = client.post("/v1/auth/register", json={"email": email, "name": "Eve", "password": PASSWORD})
    assert first.status_code == 201

    again = client.post("/v1/auth/register", json={"email": spelling(email), "name": "Eve 2", "password": PASSWORD})

    assert_error(again, 409, "conflict")


GOOD_REGISTRATION = {"email": "frank@example.com", "name": "Frank", "password": PASSWORD}


@pytest.mark.parametrize(("changes", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"email": "frank@example"}, "email"),
    ({"email": "fr ank@example.com"}, "email"),
    ({"email": "@example.com"}, "email"),
    ({"email": ""}, "email"),
    ({"email": 42}, "email"),
    ({"password": "short12"}, "password"),
    ({"password": ""}, "password"),
    ({"password": "x" * 257}, "password"),
    ({"password": 12345678}, "password"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": None}, "name"),
    ({"email": None}, "email"),
    ({"is_admin": True}, "is_admin"),
    ({"password_hash": "scrypt:..."}, "password_hash"),
], ids=lambda v: repr(v)[:40])
def test_register_rejects_bad_fields(client, changes, field):
    response = client.post("/v1/auth/register", json={**GOOD_REGISTRATION, **changes})

    error = assert_error(response, 400, "invalid_arguments")
    assert field in [item["field"] for item in error["details"]["errors"]]


@pytest.mark.parametrize("missing", ["email", "name", "password"])
def test_register_requires_every_field(client, missing):
    body = {key: value for key, value in GOOD_REGISTRATION.items() if key != missing}

    error = assert_error(client.post("/v1/auth/register", json=body), 400, "invalid_arguments")
    assert missing in [item["field"] for item in error["details"]["errors"]]


@pytest.mark.parametrize(("data", "content_type", "status", "code"), [
    ("email=a@b.cd&name=A&password=password1", "application/x-www-form-urlencoded", 415,
     "unsupported_media_type"),
    ('{"email": "a@b.cd"}', "text/plain", 415, "unsupported_media_type"),
    ("", None, 415, "unsupported_media_type"),
    ('{"email": ', "application/json", 400, "invalid_request"),
    ("", "application/json", 400, "invalid_request"),
    ('["a@b.cd", "A", "password1"]', "application/json", 400, "invalid_request"),
    ('"a@b.cd"', "application/json", 400, "invalid_request"),
    (b'{"name": "\xff"}', "application/json", 400, "invalid_request"),
], ids=["form", "text-plain", "no-body", "truncated-json", "empty-json", "json-array", "json-string",
        "not-utf8"])
def test_register_needs_a_json_object(client, data, content_type, status, code):
    response = client.post("/v1/auth/register", data=data, content_type=content_type)

    assert_error(response, status, code)


def test_register_can_be_turned_off(tmp_path):
    closed = create_app(core_config(tmp_path, REGISTRATION_ENABLED="false")).test_client()

    response = closed.post("/v1/auth/register", json={**GOOD_REGISTRATION, "email": unique_email("Gus")})

    assert_error(response, 403, "forbidden")


# --- login --------------------------------------------------------------------------------------------


def assert_token_answer(body: dict, account) -> None:
    assert set(body) == {"access_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert set(body["user"]) == PUBLIC_USER_FIELDS
    assert body["user"]["id"] == account.id
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == account.id
    assert claims["exp"] - claims["iat"] == body["expires_in"]


@pytest.fixture(scope="module")
def henry(client):
    return sign_up(client, "Henry")


def test_login_with_json_returns_a_bearer_token_that_verifies(client, henry):
    response = client.post("/v1/auth/login", json={"email": henry.email, "password": PASSWORD})

    assert response.status_code == 200
    body = response.get_json()
    assert_token_answer(body, henry)
    verified = client.get("/v1/auth/verify", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert verified.status_code == 200
    assert verified.get_json() == {"user_id": henry.id, "email": henry.email, "name": "Henry"}


@pytest.mark.parametrize("form", [
    pytest.param(lambda a: {"username": a.email, "password": PASSWORD}, id="oauth2-username"),
    pytest.param(lambda a: {"email": a.email, "password": PASSWORD}, id="email-field"),
])
def test_login_with_a_form(client, henry, form):
    response = client.post("/v1/auth/login", data=form(henry))

    assert response.status_code == 200
    assert_token_answer(response.get_json(), henry)


def test_login_email_is_case_insensitive(client, henry):
    response = client.post("/v1/auth/login", json={"email": henry.email.upper(), "password": PASSWORD})

    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == henry.id


@pytest.mark.parametrize("attempt", [
    pytest.param(lambda a: {"json": {"email": a.email, "password": PASSWORD + "!"}}, id="wrong-password"),
    pytest.param(lambda a: {"json": {"email": a.email, "password": PASSWORD.upper()}}, id="password-case"),
    pytest.param(lambda a: {"json": {"email": unique_email("nobody"), "password": PASSWORD}}, id="unknown-email"),
    pytest.param(lambda a: {"data": {"username": a.email, "password": "nope"}}, id="form-wrong-password"),
    pytest.param(lambda a: {"data": {"username": unique_email("nobody"), "password": PASSWORD}},
                 id="form-unknown-email"),
])
def test_login_failures_all_look_the_same(client, henry, attempt):
    reference = client.post("/v1/auth/login", json={"email": henry.email, "password": "definitely wrong"})
    reference_error = assert_error(reference, 401, "invalid_credentials")

    error = assert_error(client.post("/v1/auth/login", **attempt(henry)), 401, "invalid_credentials")

    assert error == reference_error


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"json": {"email": "henry@example.com"}}, 400, "invalid_arguments"),
    ({"json": {"password": PASSWORD}}, 400, "invalid_arguments"),
    ({"json": {"email": "not-an-email", "password": PASSWORD}}, 400, "invalid_arguments"),
    ({"json": {"email": "henry@example.com", "password": ""}}, 400, "invalid_arguments"),
    ({"json": {"email": "henry@example.com", "password": PASSWORD, "remember": True}}, 400,
     "invalid_arguments"),
    ({"data": {"password": PASSWORD}}, 400, "invalid_arguments"),
    ({"data": {"username": "henry@example.com"}}, 400, "invalid_arguments"),
    ({"json": ["henry@example.com", PASSWORD]}, 400, "invalid_request"),
    ({"data": "{", "content_type": "application/json"}, 400, "invalid_request"),
    ({"data": "henry@example.com", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({}, 415, "unsupported_media_type"),
], ids=["no-password", "no-email", "bad-email", "empty-password", "extra-field", "form-no-username",
        "form-no-password", "json-array", "bad-json", "text-plain", "no-body"])
def test_login_rejects_malformed_requests(client, kwargs, status, code):
    assert_error(client.post("/v1/auth/login", **kwargs), status, code)


# --- tokens -------------------------------------------------------------------------------------------


def claims_for(user_id: str, **changes) -> dict:
    now = int(time.time())
    claims = {"sub": user_id, "email": "x@example.com", "name": "X", "iat": now, "exp": now + 600}
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


BAD_AUTHORIZATION = {
    "no-header": lambda a: None,
    "bearer-without-token": lambda a: "Bearer",
    "bearer-empty-token": lambda a: "Bearer ",
    "bearer-blank-token": lambda a: "Bearer    ",
    "basic": lambda a: "Basic YWxpY2VAZXhhbXBsZS5jb206cGFzc3dvcmQ=",
    "token-without-scheme": lambda a: a.token,
    "other-scheme": lambda a: f"Token {a.token}",
    "garbage": lambda a: "Bearer not-a-jwt",
    "expired": lambda a: "Bearer " + jwt.encode(
        claims_for(a.id, iat=int(time.time()) - 120, exp=int(time.time()) - 60), JWT_SECRET, algorithm="HS256"),
    "wrong-key": lambda a: "Bearer " + jwt.encode(
        claims_for(a.id), "another-secret-that-is-long-enough-123", algorithm="HS256"),
    "alg-none": lambda a: "Bearer " + jwt.encode(claims_for(a.id), None, algorithm="none"),
    "alg-hs512": lambda a: "Bearer " + jwt.encode(claims_for(a.id), JWT_SECRET, algorithm="HS512"),
    "no-exp": lambda a: "Bearer " + jwt.encode(claims_for(a.id, exp=None), JWT_SECRET, algorithm="HS256"),
    "no-iat": lambda a: "Bearer " + jwt.encode(claims_for(a.id, iat=None), JWT_SECRET, algorithm="HS256"),
    "no-sub": lambda a: "Bearer " + jwt.encode(claims_for(a.id, sub=None), JWT_SECRET, algorithm="HS256"),
    "sub-not-a-string": lambda a: "Bearer " + jwt.encode(claims_for(a.id, sub=12345), JWT_SECRET, algorithm="HS256"),
    "not-yet-valid": lambda a: "Bearer " + jwt.encode(
        claims_for(a.id, nbf=int(time.time()) + 3600), JWT_SECRET, algorithm="HS256"),
    "tampered-sub": lambda a: "Bearer " + tamper(a.token),
}


def tamper(token: str) -> str:
    """The same signature over a payload naming another user."""
    header, _, signature = token.split(".")
    payload = jwt.utils.base64url_encode(json.dumps(claims_for(str(uuid.uuid4()))).encode()).decode()
    return f"{header}.{payload}.{signature}"


PROTECTED = [
    ("get", "/v1/auth/verify"),
    ("get", "/v1/workspace"),
    ("post", "/v1/workspace"),
]


@pytest.mark.parametrize("endpoint", PROTECTED, ids=lambda e: f"{e[0]} {e[1]}")
@pytest.mark.parametrize("authorization", list(BAD_AUTHORIZATION.values()), ids=list(BAD_AUTHORIZATION))
def test_bad_tokens_are_unauthorized(client, alice, endpoint, authorization):
    method, path = endpoint
    value = authorization(alice)
    headers = {} if value is None else {"Authorization": value}

    response = getattr(client, method)(path, headers=headers, json={"name": "Never"})

    assert_error(response, 401, "unauthorized")


def test_the_bearer_scheme_is_case_insensitive(client, alice):
    response = client.get("/v1/auth/verify", headers={"Authorization": f"bearer {alice.token}"})

    assert response.status_code == 200
    assert response.get_json()["user_id"] == alice.id


# A valid signature for a user id that does not exist (deleted, or another deployment's user).
GHOST_REQUESTS = [
    ("get", "/v1/auth/verify", None),
    ("get", "/v1/workspace", None),
    ("post", "/v1/workspace", {"name": "Haunted"}),
    ("get", "/v1/workspace/{workspace}", None),
    ("put", "/v1/workspace/{workspace}", {"name": "Haunted"}),
    ("delete", "/v1/workspace/{workspace}", None),
    ("post", "/v1/conversation", {"workspace_id": "{workspace}", "topic": "Boo"}),
    ("get", "/v1/conversation?workspace_id={workspace}", None),
    ("get", "/v1/conversation/{conversation}", None),
    ("delete", "/v1/conversation/{conversation}", None),
    ("get", "/v1/conversation/{conversation}/messages", None),
    ("post", "/v1/conversation/{conversation}/messages", {"content": "boo"}),
    ("get", "/v1/conversation/{conversation}/messages/stream", None),
    ("post", "/v1/context", {}),
    ("post", "/v1/context", {"query": "tomatoes"}),
    ("post", "/v1/search", {"query": "tomatoes"}),
    ("post", "/v1/analyze", {"conversation_id": "{conversation}", "analysis_type": "summary"}),
]


@pytest.fixture(scope="module")
def alices_conversation(client, alice):
    conversation = new_conversation(client, alice)
    return {"workspace": conversation["workspace_id"], "conversation": conversation["id"]}


@pytest.mark.parametrize(("method", "path", "body"), GHOST_REQUESTS, ids=lambda v: v if isinstance(v, str) else "")
def test_a_token_for_a_user_that_no_longer_exists_is_unauthorized(client, alices_conversation, method, path, body):
    ghost = jwt.encode(claims_for(str(uuid.uuid4())), JWT_SECRET, algorithm="HS256")
    url = path.format(**alices_conversation)
    if body is not None:
        body = {key: value.format(**alices_conversation) if isinstance(value, str) else value
                for key, value in body.items()}

    response = getattr(client, method)(url, json=body, headers={"Authorization": f"Bearer {ghost}"},
                                       buffered=False)
    try:
        assert_error(response, 401, "unauthorized")
    finally:
        response.close()


# --- health and request ids ---------------------------------------------------------------------------


def test_health_lists_memory_and_cognition(client):
    response = client.get("/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["service"] == "core"
    assert body["dependencies"] == {"memory": {"status": "up", "circuit": "closed"},
                                    "cognition": {"status": "up", "circuit": "closed"}}


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("get", "/health", {}),
    ("post", "/v1/auth/login", {"json": {"email": "x@example.com", "password": "wrong"}}),
    ("post", "/v1/auth/register", {"data": "x", "content_type": "text/plain"}),
    ("get", "/v1/auth/register", {}),
    ("get", "/v1/workspace", {}),
    ("get", "/v1/workspace/bad.id", {}),
    ("get", "/v1/no-such-endpoint", {}),
    ("get", "/v1/conversation/abc/messages/stream", {}),
], ids=["health", "login-401", "register-415", "method-405", "auth-401", "bad-id-404", "route-404",
        "stream-401"])
def test_every_response_carries_a_request_id(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)

    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", response.headers.get("X-Request-ID", ""))
    if response.status_code >= 400:
        assert_error(response, response.status_code, response.get_json()["error"]["code"])


def test_a_wrong_method_is_405_in_the_error_shape(client):
    assert_error(client.get("/v1/auth/register"), 405, "method_not_allowed")


def test_a_request_id_sent_by_the_client_is_echoed(client, alice):
    response = client.get("/v1/workspace", headers={**alice.headers, "X-Request-ID": "trace-42.a:b"})

    assert response.headers["X-Request-ID"] == "trace-42.a:b"


def test_an_unsafe_request_id_is_replaced(client):
    response = client.get("/health", headers={"X-Request-ID": "two words\tand a tab"})

    assert response.headers["X-Request-ID"] != "two words\tand a tab"
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", response.headers["X-Request-ID"])


def test_a_streamed_response_carries_a_request_id(client, alice, alices_conversation):
    response = client.get(f"/v1/conversation/{alices_conversation['conversation']}/messages/stream",
                          headers=alice.headers, buffered=False)
    try:
        assert response.status_code == 200
        assert response.headers["X-Request-ID"]
        assert response.mimetype == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        response.close()
