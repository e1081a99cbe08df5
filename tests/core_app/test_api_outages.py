"""A dependency going away (SPEC §6): 503 `unavailable` naming the service, and a reply that cannot get
context is still generated, with a `warning` event. The embedded services are "killed" by routing the
Core App's client for them to an adapter that refuses every connection."""

from __future__ import annotations

import pytest
import requests
from requests.adapters import BaseAdapter

from core_app.app import create_app
from tests.core_app.accounts import sign_up
from tests.core_app.api_calls import assert_error, history, new_conversation, post_message
from tests.core_app.embedded_config import core_config
from tests.core_app.output_stream import assistant_message_for, listening


class Unreachable(BaseAdapter):
    """What a stopped service looks like to requests."""

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        raise requests.ConnectionError(f"connection refused: {request.url}")

    def close(self) -> None:
        pass


def build(directory):  # type: ignore[no-untyped-def]
    return create_app(core_config(directory, BREAKER_FAIL_MAX="2", CLIENT_RETRIES="0"))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A database with a user and a conversation; each test gets a fresh Core App (fresh circuits) on it."""
    directory = tmp_path_factory.mktemp("core-outages")
    client = build(directory).test_client()
    user = sign_up(client, "Olga")
    return directory, user, new_conversation(client, user)


@pytest.fixture
def system(seeded):
    directory, user, conversation = seeded
    app = build(directory)
    return app, app.test_client(), user, conversation


def stop(app, name: str) -> None:
    service = getattr(app.extensions["cortex"], name).client
    service.transport.mount(service.base_url + "/", Unreachable())


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/search", {"query": "beans"}),
    ("/v1/context", {"query": "beans"}),
    ("/v1/analyze", {"conversation_id": "{conversation}", "analysis_type": "topics"}),
])
def test_cognition_down_is_503_naming_it(system, path, body):
    app, client, user, conversation = system
    stop(app, "cognition")
    body = {key: value.format(conversation=conversation["id"]) for key, value in body.items()}

    for _ in range(3):  # closed circuit, then the open circuit answering at once
        error = assert_error(client.post(path, headers=user.headers, json=body), 503, "unavailable")
        assert error["details"]["service"] == "cognition"
        assert "cognition" in error["message"]

    health = client.get("/health").get_json()
    assert health["status"] == "degraded"
    assert health["dependencies"]["cognition"] == {"status": "down", "circuit": "open"}
    assert health["dependencies"]["memory"]["status"] == "up"


def test_a_reply_without_context_still_comes_with_a_warning(system):
    app, client, user, _ = system
    conversation = new_conversation(client, user)
    stop(app, "cognition")

    with listening(client, conversation["id"], headers=user.headers) as stream:
        stream.event()
        message = post_message(client, user, conversation["id"], "Anything about beans?")
        events = stream.until(assistant_message_for(message))

    kinds = [event.event for event in events]
    assert kinds[:3] == ["message", "response.started", "warning"]
    assert events[2].data["code"] == "context_unavailable"
    assert kinds[-2:] == ["response.completed", "message"]
    assert [m["role"] for m in history(client, user, conversation["id"])] == ["user", "assistant"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/v1/auth/verify", None),
    ("get", "/v1/workspace", None),
    ("post", "/v1/workspace", {"name": "Shed"}),
    ("get", "/v1/conversation/{conversation}", None),
    ("get", "/v1/conversation/{conversation}/messages", None),
    ("post", "/v1/conversation/{conversation}/messages", {"content": "hello?"}),
    ("get", "/v1/conversation/{conversation}/messages/stream", None),
])
def test_memory_down_is_503_naming_it(system, method, path, body):
    app, client, user, conversation = system
    stop(app, "memory")

    response = getattr(client, method)(path.format(conversation=conversation["id"]), headers=user.headers,
                                       json=body, buffered=False)
    try:
        error = assert_error(response, 503, "unavailable")
    finally:
        response.close()
    assert error["details"]["service"] == "memory"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/auth/login", {"email": "olga@example.com", "password": "correct horse battery"}),
    ("/v1/auth/register", {"email": "olga2@example.com", "name": "Olga", "password": "correct horse battery"}),
])
def test_accounts_need_memory(system, path, body):
    app, client, _, _ = system
    stop(app, "memory")

    response = client.post(path, json=body)

    assert assert_error(response, 503, "unavailable")["details"]["service"] == "memory"
