"""Bounded reply work through the input endpoint (issue 11 item 3): over a limit the POST is 429 with
Retry-After and nothing is stored; a 202 still means "stored, and a reply is coming"; a retried POST
whose reply is still coming is never refused."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core_app.app import create_app
from core_app.generators import BuiltinGenerator, Prompt
from tests.core_app.accounts import Account, sign_up
from tests.core_app.api_calls import assert_error, history, new_conversation
from tests.core_app.embedded_config import core_config
from tests.core_app.polling import eventually

# One reply runs, two wait; a user may hold two of those three places.
LIMITS = {"REPLY_CONCURRENCY": "1", "REPLY_QUEUE": "2", "REPLIES_PER_USER": "2"}


class HeldGenerator(BuiltinGenerator):
    """The builtin reply, held before its first delta until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def stream(self, prompt: Prompt) -> Iterator[str]:
        self.gate.wait(10)
        yield from super().stream(prompt)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app(core_config(tmp_path_factory.mktemp("reply-limits"), **LIMITS))


@pytest.fixture
def held(app: Flask) -> Iterator[HeldGenerator]:
    """Replies held until the test ends (or opens the gate), then every place given back."""
    replier = app.extensions["cortex"].replier
    generator, replier.generator = replier.generator, HeldGenerator()
    try:
        yield replier.generator
    finally:
        replier.generator.gate.set()
        eventually(lambda: replier.pool.stats()["admitted"] == 0, what="every reply to end")
        replier.generator = generator


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def users(client: FlaskClient) -> list[Account]:
    return [sign_up(client, name) for name in ("Alice", "Bob", "Carol")]


def post(client: FlaskClient, user: Account, conversation_id: str, content: str, key: str | None = None):
    headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/v1/conversation/{conversation_id}/messages", headers=headers, json={"content": content})


def stats(app: Flask) -> dict:
    return app.extensions["cortex"].replier.pool.stats()


def test_over_the_per_user_limit_the_post_is_429_with_retry_after_and_stores_nothing(app, client, users, held):
    alice = users[0]
    conv = new_conversation(client, alice)["id"]
    assert [post(client, alice, conv, f"question {n}").status_code for n in range(2)] == [202, 202]

    refused = post(client, alice, conv, "one too many")

    error = assert_error(refused, 429, "too_many_requests")
    assert {**error["details"], "retry_after": None} == {"limit": "replies_per_user", "allowed": 2, "retry_after": None}
    assert int(refused.headers["Retry-After"]) >= 1
    assert [m["content"] for m in history(client, alice, conv)] == ["question 0", "question 1"]
    assert stats(app)["admitted"] == 2

    held.gate.set()
    eventually(lambda: stats(app)["admitted"] == 0, what="alice's replies to end")
    assert post(client, alice, conv, "and now?").status_code == 202


def test_a_full_process_refuses_everyone_new_with_429(app, client, users, held):
    alice, bob, carol = users
    for user in (alice, bob):
        conv = new_conversation(client, user)["id"]
        for n in range(2 if user is alice else 1):
            assert post(client, user, conv, f"{user.name} {n}").status_code == 202
    carols = new_conversation(client, carol)["id"]

    refused = post(client, carol, carols, "anyone there?")

    error = assert_error(refused, 429, "too_many_requests")
    assert {**error["details"], "retry_after": None} == {"limit": "reply_queue", "allowed": 3, "retry_after": None}
    assert refused.headers["Retry-After"]
    assert history(client, carol, carols) == []


def test_a_retry_whose_reply_is_still_coming_is_not_refused_and_stores_and_replies_once(app, client, users, held):
    alice = users[0]
    conv = new_conversation(client, alice)["id"]
    key = f"retry-{uuid.uuid4().hex}"
    first = post(client, alice, conv, "lost my answer", key)
    assert post(client, alice, conv, "and another").status_code == 202  # alice is at her limit now

    retry = post(client, alice, conv, "lost my answer", key)
    other = post(client, alice, conv, "a new one", f"new-{uuid.uuid4().hex}")

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.get_json()["message"] == first.get_json()["message"]
    assert_error(other, 429, "too_many_requests")
    held.gate.set()
    eventually(lambda: stats(app)["admitted"] == 0, what="every reply to end")
    stored = history(client, alice, conv)
    assert [m["content"] for m in stored if m["role"] == "user"] == ["lost my answer", "and another"]
    assert sorted(m["metadata"]["in_reply_to"] for m in stored if m["role"] == "assistant") == sorted(
        m["id"] for m in stored if m["role"] == "user")


def test_a_post_that_stores_nothing_gives_its_place_back(app, client, users, held):
    alice = users[0]
    missing = uuid.uuid4().hex
    for _ in range(5):
        assert_error(post(client, alice, missing, "into the void"), 404, "not_found")
    assert_error(client.post(f"/v1/conversation/{missing}/messages", headers=alice.headers, json={"content": ""}),
                 400, "invalid_arguments")

    assert stats(app)["admitted"] == 0
    conv = new_conversation(client, alice)["id"]
    assert [post(client, alice, conv, f"still room {n}").status_code for n in range(2)] == [202, 202]


def test_a_burst_of_retries_with_one_key_takes_one_place(app, client, users, held):
    alice = users[0]
    conv = new_conversation(client, alice)["id"]
    assert post(client, alice, conv, "the first").status_code == 202  # one place left for alice
    key = f"burst-{uuid.uuid4().hex}"
    answers: list = []
    senders = [threading.Thread(target=lambda: answers.append(post(client, alice, conv, "the burst", key)))
               for _ in range(8)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(10)

    assert [answer.status_code for answer in answers] == [202] * 8
    assert len({answer.get_json()["message"]["id"] for answer in answers}) == 1
    assert stats(app)["admitted"] == 2
    assert_error(post(client, alice, conv, "and one more"), 429, "too_many_requests")
    held.gate.set()
    eventually(lambda: stats(app)["admitted"] == 0, what="every reply to end")
    stored = history(client, alice, conv)
    assert [(m["role"], m["content"]) for m in stored if m["role"] == "user"] == [
        ("user", "the first"), ("user", "the burst")]
    assert [m["role"] for m in stored].count("assistant") == 2
