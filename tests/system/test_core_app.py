"""The Core App with real Memory and Cognition processes: a whole conversation over HTTP and SSE."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
import requests

from core_app.events import EventId
from tests.system.support.api import Api
from tests.system.support.fake_llm import FakeLLM
from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import JWT_SECRET, start_stack

REPLY_EVENTS = ["message", "response.started", "response.delta", "response.completed"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = start_stack(tmp_path_factory.mktemp("stack"))
    yield started
    started.stop()


def new_user(stack) -> Api:
    return Api(stack.core.url, f"user-{uuid.uuid4().hex[:10]}@example.com")


def reply_sequence(reader: StreamReader) -> list[str]:
    """The event types after `connected`, with runs of deltas collapsed to one entry."""
    collapsed: list[str] = []
    for event_type in reader.types()[1:]:
        if not (collapsed and collapsed[-1] == event_type == "response.delta"):
            collapsed.append(event_type)
    return collapsed


def test_a_conversation_end_to_end(stack):
    api = new_user(stack)
    conv = api.conversation("Travel")
    first = StreamReader(api.stream_url(conv), token=api.token)
    second = StreamReader(f"{api.stream_url(conv)}?access_token={api.token}")
    assert first.status == second.status == 200
    for reader in (first, second):
        reader.wait_for("connected")
    assert first.retry == "3000"

    posted = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "Plan a trip to Porto"})
    assert posted.status_code == 202, posted.text
    assert posted.json()["status"] == "received" and posted.json()["message"]["sequence"] == 1

    for reader in (first, second):
        completed = reader.wait_for("response.completed")[0]
        assert reply_sequence(reader)[:4] == REPLY_EVENTS
        deltas = [e.data["delta"] for e in reader.events if e.event == "response.delta"]
        assert len(deltas) >= 2
        assistant = completed.data["message"]
        assert assistant["role"] == "assistant" and assistant["content"] == "".join(deltas)
        user_message = reader.events[1]
        assert user_message.event == "message" and user_message.data["content"] == "Plan a trip to Porto"
        ids = [EventId.parse(e.id).sequence for e in reader.events]
        assert ids == sorted(set(ids)), "ids must be unique and increasing"
    assert [e.id for e in first.events[1:]] == [e.id for e in second.events[1:]]

    history = api.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
    assert [(m["role"], m["sequence"]) for m in history] == [("user", 1), ("assistant", 2)]
    assert history[1]["content"] == completed.data["message"]["content"]

    # Resume from the first event: everything after it, without gap or duplicate.
    wait_until(lambda: first.types()[-1] == "message", 10, message="the assistant's message event")
    third = StreamReader(api.stream_url(conv), token=api.token, last_event_id=first.events[0].id)
    wait_until(lambda: len(third.events) >= len(first.events), 10, message="the replayed events")
    assert [(e.id, e.event) for e in third.events[1:]] == [(e.id, e.event) for e in first.events[1:]]
    for reader in (first, second, third):
        reader.close()


def test_an_id_from_before_the_window_gets_replay_window_exceeded(stack):
    api = new_user(stack)
    conv = api.conversation()
    reader = StreamReader(api.stream_url(conv), token=api.token, last_event_id="12345")
    error = reader.wait_for("error")[0]
    assert error.data["code"] == "replay_window_exceeded"
    reader.close()


def forged_tokens(user_id: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + 600}
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return {
        "expired": jwt.encode({**claims, "iat": now - 100, "exp": now - 10}, JWT_SECRET, algorithm="HS256"),
        "other key": jwt.encode(claims, "another-secret-that-is-long-enough-0123", algorithm="HS256"),
        "alg none": f"{header}.{payload}.",
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("kind", ["missing", "expired", "other key", "alg none", "garbage"])
def test_bad_tokens_are_refused(stack, kind):
    api = new_user(stack)
    conv = api.conversation()
    headers = {} if kind == "missing" else {"Authorization": f"Bearer {forged_tokens(api.user['id'])[kind]}"}
    for method, path in [("GET", "/v1/auth/verify"), ("GET", f"/v1/conversation/{conv}"),
                         ("GET", f"/v1/conversation/{conv}/messages"), ("GET", "/v1/workspace"),
                         ("GET", f"/v1/conversation/{conv}/messages/stream")]:
        response = requests.request(method, f"{stack.core.url}{path}", headers=headers, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"


def test_another_users_conversation_is_invisible(stack):
    owner, intruder = new_user(stack), new_user(stack)
    conv = owner.conversation()
    owner.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "private words"})
    attempts = [
        ("GET", f"/v1/conversation/{conv}", {}),
        ("PUT", f"/v1/conversation/{conv}", {"json": {"topic": "mine now"}}),
        ("DELETE", f"/v1/conversation/{conv}", {}),
        ("GET", f"/v1/conversation/{conv}/messages", {}),
        ("POST", f"/v1/conversation/{conv}/messages", {"json": {"content": "let me in"}}),
        ("GET", f"/v1/conversation/{conv}/messages/stream", {}),
        ("POST", "/v1/analyze", {"json": {"conversation_id": conv, "analysis_type": "summary"}}),
        ("POST", "/v1/context", {"json": {"conversation_id": conv}}),
    ]
    for method, path, kwargs in attempts:
        response = intruder.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
        assert "private words" not in response.text
    found = intruder.request("POST", "/v1/search", json={"query": "private words"}).json()
    assert found["count"] == 0
    history = owner.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
    assert history[0]["content"] == "private words" and all(m["content"] != "let me in" for m in history)


@pytest.mark.parametrize("body,status,code", [
    ({"content": ""}, 400, "invalid_arguments"),
    ({"content": "x" * 32_001}, 400, "invalid_arguments"),
    ({"content": 42}, 400, "invalid_arguments"),
    ({"content": "hi", "extra": True}, 400, "invalid_arguments"),
    ({}, 400, "invalid_arguments"),
    ("{not json", 400, "invalid_request"),
    ("[1, 2]", 400, "invalid_request"),
])
def test_bad_input_is_refused(stack, body, status, code):
    api = new_user(stack)
    conv = api.conversation()
    if isinstance(body, str):
        response = api.request("POST", f"/v1/conversation/{conv}/messages", data=body,
                               headers={"Content-Type": "application/json"})
    else:
        response = api.request("POST", f"/v1/conversation/{conv}/messages", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert api.request("GET", f"/v1/conversation/{conv}/messages").json()["count"] == 0


def test_unknown_conversation_is_not_found(stack):
    api = new_user(stack)
    for path in ["/v1/conversation/0f0f0f0f/messages", "/v1/conversation/../../etc/passwd/messages"]:
        response = api.request("POST", path, json={"content": "hello"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_every_response_carries_a_request_id(stack):
    response = requests.get(f"{stack.core.url}/health", headers={"X-Request-ID": "trace-me-123"}, timeout=5)
    assert response.headers["X-Request-ID"] == "trace-me-123"
    assert requests.get(f"{stack.core.url}/v1/nothing", timeout=5).headers["X-Request-ID"]


def test_cognition_tools_for_the_calling_user(stack):
    api = new_user(stack)
    conv = api.conversation()
    api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "I love hiking in the Alps"})
    found = api.request("POST", "/v1/search", json={"query": "hiking"}).json()
    assert found["count"] >= 1 and "hiking" in found["results"][0]["content"]
    context = api.request("POST", "/v1/context", json={"query": "Alps"}).json()
    assert context["context"] and context["user_id"] == api.user["id"]
    analysis = api.request("POST", "/v1/analyze", json={"conversation_id": conv, "analysis_type": "activity"})
    assert analysis.status_code == 200 and analysis.json()["type"] == "activity"
    bad = api.request("POST", "/v1/analyze", json={"conversation_id": conv, "analysis_type": "astrology"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_arguments"


def test_memory_down_fails_fast_and_recovers(tmp_path):
    stack = start_stack(tmp_path)
    try:
        api = Api(stack.core.url, "down@example.com")
        conv = api.conversation()
        stack.memory.kill()
        wait_until(lambda: requests.get(f"{stack.core.url}/health", timeout=5).json()["dependencies"]["memory"]
                   ["circuit"] == "open", 10, message="memory's circuit to open")
        started = time.monotonic()
        response = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "anyone?"})
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert "memory" in response.json()["error"]["message"]
        assert elapsed < 0.5, elapsed

        stack.memory.start()
        wait_until(lambda: api.request("POST", f"/v1/conversation/{conv}/messages",
                                       json={"content": "back again"}).status_code == 202, 15,
                   interval=0.2, message="input to work again")
        assert requests.get(f"{stack.core.url}/health", timeout=5).json()["status"] == "healthy"
    finally:
        stack.stop()


def test_cognition_down_still_replies_with_a_warning(tmp_path):
    stack = start_stack(tmp_path)
    try:
        api = Api(stack.core.url, "nocontext@example.com")
        conv = api.conversation()
        stack.cognition.kill()
        reader = StreamReader(api.stream_url(conv), token=api.token)
        reader.wait_for("connected")
        assert api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "hi"}).status_code == 202
        reader.wait_for("response.completed")
        warning = reader.wait_for("warning")[0]
        assert warning.data["code"] == "context_unavailable"
        assert reader.types().index("warning") < reader.types().index("response.completed")
        reader.close()
    finally:
        stack.stop()


def test_openai_provider_streams_and_survives_a_failing_provider(stack, tmp_path):
    tokens = ["Porto ", "is ", "lovely ", "in ", "spring."]
    with FakeLLM(tokens) as good, FakeLLM(tokens, fail_after=2) as broken:
        for llm, expect_error in ((good, False), (broken, True)):
            core = ServiceProcess("core_app.app:create_app()", {
                **stack.core.env, "LLM_PROVIDER": "openai", "LLM_BASE_URL": llm.base_url, "LLM_API_KEY": "sk-test",
                "LLM_MODEL": "test-model"}, tmp_path / f"core-{expect_error}.log").start()
            try:
                api = Api(core.url, f"llm-{uuid.uuid4().hex[:8]}@example.com")
                conv = api.conversation()
                reader = StreamReader(api.stream_url(conv), token=api.token)
                reader.wait_for("connected")
                api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "When to visit Porto?"})
                if expect_error:
                    error = reader.wait_for("error")[0]
                    assert error.data["code"] == "provider_error"
                    assert [e.data["delta"] for e in reader.events if e.event == "response.delta"] == tokens[:2]
                    history = api.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
                    assert [m["content"] for m in history] == ["When to visit Porto?"]
                else:
                    completed = reader.wait_for("response.completed")[0]
                    assert completed.data["message"]["content"] == "".join(tokens)
                    sent = llm.requests[-1]
                    assert sent["body"]["stream"] is True and sent["body"]["model"] == "test-model"
                    assert sent["authorization"] == "Bearer sk-test"
                    assert sent["body"]["messages"][-1] == {"role": "user", "content": "When to visit Porto?"}
                reader.close()
            finally:
                core.stop()


def test_tokens_from_one_core_process_work_on_another(stack, tmp_path):
    api = new_user(stack)
    twin = ServiceProcess("core_app.app:create_app()", stack.core.env, tmp_path / "core-twin.log").start()
    other_env = {**stack.core.env, "JWT_SECRET": "a-different-secret-for-another-deployment"}
    stranger = ServiceProcess("core_app.app:create_app()", other_env, tmp_path / "core-other.log").start()
    try:
        verified = requests.get(f"{twin.url}/v1/auth/verify", headers=api.headers, timeout=10)
        assert verified.status_code == 200 and verified.json()["user_id"] == api.user["id"]
        refused = requests.get(f"{stranger.url}/v1/auth/verify", headers=api.headers, timeout=10)
        assert refused.status_code == 401
    finally:
        twin.stop()
        stranger.stop()
