"""The Core App through its client API (SPEC §6–§7), with the real Memory and Cognition apps running
in-process behind the requests adapter (`CORTEX_DISTRIBUTED_MODE=false`): the Flask test client drives
the whole stack without sockets. Shared helpers for the `test_api_*` modules live here."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core_app.app import create_app

JWT_SECRET = "core-api-tests-secret-" + "0123456789abcdef" * 3  # 64+ bytes: fine for HS512 too
PASSWORD = "correct horse battery"

T = TypeVar("T")


def core_config(directory: Path, **overrides: str) -> dict[str, str]:
    """Settings for an embedded Core App on its own SQLite file; no background health probes."""
    return {
        "DATABASE_URL": f"sqlite:///{directory}/m.db",
        "HEALTH_INTERVAL_SECONDS": "0",
        "JWT_SECRET": JWT_SECRET,
        "SSE_HEARTBEAT_SECONDS": "0.2",
        "SERVICE_TOKEN": "",
        "CORTEX_DISTRIBUTED_MODE": "false",
        "LLM_PROVIDER": "builtin",
        "REGISTRATION_ENABLED": "true",
        **overrides,
    }


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One whole system per test module: users are slow to create (password hashing), so they are shared."""
    return create_app(core_config(tmp_path_factory.mktemp("core-api")))


@pytest.fixture(scope="module")
def client(api_app: Flask) -> FlaskClient:
    return api_app.test_client()


# --- accounts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(name: str) -> str:
    return f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(client: FlaskClient, name: str) -> Account:
    """Register a new user and log in as them, as a client would."""
    email = unique_email(name)
    registered = client.post("/v1/auth/register", json={"email": email, "name": name, "password": PASSWORD})
    assert registered.status_code == 201, registered.get_json()
    login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    return Account(registered.get_json()["user"]["id"], email, name, login.get_json()["access_token"])


@pytest.fixture(scope="module")
def alice(client: FlaskClient) -> Account:
    return sign_up(client, "Alice")


@pytest.fixture(scope="module")
def bob(client: FlaskClient) -> Account:
    return sign_up(client, "Bob")


@pytest.fixture(scope="module")
def carol(client: FlaskClient) -> Account:
    return sign_up(client, "Carol")


# --- objects ------------------------------------------------------------------------------------------


def new_workspace(client: FlaskClient, owner: Account, name: str = "Garden") -> dict:
    response = client.post("/v1/workspace", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["workspace"]


def new_conversation(client: FlaskClient, owner: Account, workspace_id: str | None = None, *,
                     participants: tuple[Account, ...] = (), topic: str = "Tomatoes") -> dict:
    """A new conversation of `owner`; each of `participants` is invited and accepts."""
    if workspace_id is None:
        workspace_id = new_workspace(client, owner)["id"]
    response = client.post("/v1/conversation", headers=owner.headers, json={
        "workspace_id": workspace_id, "topic": topic, "participant_ids": [p.id for p in participants]})
    assert response.status_code == 201, response.get_json()
    conversation = response.get_json()["conversation"]
    for participant, invitation in zip(participants, response.get_json()["invitations"], strict=True):
        accepted = client.post(f"/v1/invitations/{invitation['id']}/accept", headers=participant.headers)
        assert accepted.status_code == 200, accepted.get_json()
        conversation = accepted.get_json()["conversation"]
    return conversation


def post_message(client: FlaskClient, author: Account, conversation_id: str, content: str,
                 headers: dict[str, str] | None = None) -> dict:
    response = client.post(f"/v1/conversation/{conversation_id}/messages", json={"content": content},
                           headers={**author.headers, **(headers or {})})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["message"]


def history(client: FlaskClient, reader: Account, conversation_id: str) -> list[dict]:
    response = client.get(f"/v1/conversation/{conversation_id}/messages", headers=reader.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"]


def eventually(check: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)  # poll interval, not synchronisation: the deadline decides


def wait_for_reply(client: FlaskClient, reader: Account, conversation_id: str, to: dict) -> list[dict]:
    """The conversation's history once the assistant's reply to message `to` has been stored."""
    def replied() -> list[dict] | None:
        messages = history(client, reader, conversation_id)
        done = any(m["role"] == "assistant" and m["metadata"].get("in_reply_to") == to["id"] for m in messages)
        return messages if done else None

    return eventually(replied, what=f"the reply to message {to['id']}")


# --- errors -------------------------------------------------------------------------------------------


def assert_error(response: Any, status: int, code: str) -> dict:
    """The response is `status` with exactly the §3.1 error shape and `code`; returns the error object."""
    body = response.get_json()
    assert response.status_code == status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return error


# --- the output stream --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One SSE frame as a client sees it; `comment` is set for heartbeat lines (`: ping`)."""

    id: str | None = None
    event: str | None = None
    data: Any = None
    retry: int | None = None
    comment: str | None = None


def parse_frame(raw: str) -> Frame:
    fields: dict[str, Any] = {}
    for line in raw.split("\n"):
        if line.startswith(":"):
            fields["comment"] = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            fields["data"] = json.loads(value)
        elif name == "retry":
            fields["retry"] = int(value)
        elif name in ("id", "event"):
            fields[name] = value
    return Frame(**fields)


class StreamEnded(AssertionError):
    """The server closed the stream (a test that did not expect it fails with this)."""


class EventReader:
    """Reads frames off a streamed test-client response. Heartbeats arrive every 0.2 s, so every read
    returns promptly and the deadline is checked between them."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self._chunks = iter(response.response)
        self._buffer = b""
        self.first_chunk: bytes | None = None

    def frame(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete SSE frame within {timeout} s")
            chunk = next(self._chunks, None)
            if chunk is None:
                raise StreamEnded("the server ended the stream")
            if self.first_chunk is None:
                self.first_chunk = chunk
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n\n", 1)
        return parse_frame(raw.decode("utf-8"))

    def event(self, timeout: float = 5.0) -> Frame:
        """The next event, skipping heartbeats."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frame(max(0.0, deadline - time.monotonic()))
            if frame.comment is None:
                return frame

    def until(self, done: Callable[[Frame], bool], timeout: float = 5.0) -> list[Frame]:
        """Events up to and including the first one for which `done` is true."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            event = self.event(max(0.0, deadline - time.monotonic()))
            events.append(event)
            if done(event):
                return events

    def rest(self, timeout: float = 5.0) -> list[Frame]:
        """Every event until the server ends the stream."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            try:
                events.append(self.event(max(0.0, deadline - time.monotonic())))
            except StreamEnded:
                return events

    def heartbeat(self, timeout: float = 2.0) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frame(max(0.0, deadline - time.monotonic()))
            if frame.comment is not None:
                return frame


def assistant_message_for(message: dict) -> Callable[[Frame], bool]:
    """True for the final `message` event carrying the assistant's reply to `message`."""
    return lambda e: (e.event == "message" and e.data["role"] == "assistant"
                      and e.data["metadata"].get("in_reply_to") == message["id"])


def stream_url(conversation_id: str) -> str:
    return f"/v1/conversation/{conversation_id}/messages/stream"


@contextmanager
def listening(client: FlaskClient, conversation_id: str, *, headers: dict[str, str] | None = None,
              query: dict[str, str] | None = None) -> Iterator[EventReader]:
    """An open output stream that must be accepted (200); always closed afterwards."""
    response = client.get(stream_url(conversation_id), headers=headers or {}, query_string=query or {},
                          buffered=False)
    try:
        assert response.status_code == 200, response.get_data()[:500]
        yield EventReader(response)
    finally:
        response.close()
