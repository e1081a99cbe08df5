"""The input endpoint and the history (SPEC §6): a 202 means the message is stored, the reply follows in
the background, and a retried POST with the same Idempotency-Key stores once and replies once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.core_app.accounts import sign_up
from tests.core_app.api_calls import assert_error, history, new_conversation, post_message, wait_for_reply
from tests.core_app.output_stream import assistant_message_for, listening
from tests.core_app.polling import eventually


def messages_url(conversation_id: str) -> str:
    return f"/v1/conversation/{conversation_id}/messages"


def test_a_message_is_stored_before_the_202_and_the_reply_follows(client, alice):
    conversation = new_conversation(client, alice)

    response = client.post(messages_url(conversation["id"]), headers=alice.headers,
                           json={"content": "When do I sow tomatoes?", "metadata": {"client": "cli"}})

    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "received"
    message = body["message"]
    assert message["sequence"] == 1
    assert (message["conversation_id"], message["sender_id"], message["role"]) == (
        conversation["id"], alice.id, "user")
    assert (message["content"], message["metadata"]) == ("When do I sow tomatoes?", {"client": "cli"})
    # Durable already: the history has it whether or not the reply has been stored yet.
    assert history(client, alice, conversation["id"])[0] == message

    stored = wait_for_reply(client, alice, conversation["id"], message)

    assert [(m["role"], m["sequence"]) for m in stored] == [("user", 1), ("assistant", 2)]
    assert stored[0] == message
    assert stored[1]["metadata"]["in_reply_to"] == message["id"]
    assert stored[1]["content"]


def test_history_pages_with_after_sequence_and_limit(client, alice):
    conversation = new_conversation(client, alice)
    first = post_message(client, alice, conversation["id"], "first")
    wait_for_reply(client, alice, conversation["id"], first)
    second = post_message(client, alice, conversation["id"], "second")
    everything = wait_for_reply(client, alice, conversation["id"], second)
    assert [m["sequence"] for m in everything] == [1, 2, 3, 4]

    def page(**query: int) -> list[int]:
        response = client.get(messages_url(conversation["id"]), headers=alice.headers, query_string=query)
        assert response.status_code == 200
        assert response.get_json()["count"] == len(response.get_json()["messages"])
        return [m["sequence"] for m in response.get_json()["messages"]]

    assert page(after_sequence=2) == [3, 4]
    assert page(limit=1) == [1]
    assert page(after_sequence=1, limit=2) == [2, 3]
    assert page(after_sequence=4) == []


@pytest.mark.parametrize("query", [
    {"after_sequence": "-1"},
    {"after_sequence": "abc"},
    {"limit": "0"},
    {"limit": "1001"},
    {"limit": "many"},
    {"offset": "1"},
], ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
def test_history_rejects_bad_query_parameters(client, alice, query):
    conversation = new_conversation(client, alice)

    response = client.get(messages_url(conversation["id"]), headers=alice.headers, query_string=query)

    assert_error(response, 400, "invalid_arguments")


# --- Idempotency-Key ----------------------------------------------------------------------------------


def count_stays(client, reader, conversation_id: str, expected: int, seconds: float) -> None:
    """For `seconds`, the history keeps exactly `expected` messages (a second reply would show up here)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(history(client, reader, conversation_id)) == expected
        time.sleep(0.05)  # poll interval; the deadline decides how long we watch


def test_a_retried_post_with_the_same_idempotency_key_stores_once_and_replies_once(client, alice):
    conversation = new_conversation(client, alice)
    key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}

    first = client.post(messages_url(conversation["id"]), headers={**alice.headers, **key},
                        json={"content": "Is it too late for peas?"})
    retry = client.post(messages_url(conversation["id"]), headers={**alice.headers, **key},
                        json={"content": "Is it too late for peas?"})

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.get_json()["message"] == first.get_json()["message"]
    stored = wait_for_reply(client, alice, conversation["id"], first.get_json()["message"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    count_stays(client, alice, conversation["id"], 2, seconds=1.0)


def test_concurrent_retries_with_one_idempotency_key_store_once_and_reply_once(client, alice):
    conversation = new_conversation(client, alice)
    headers = {**alice.headers, "Idempotency-Key": f"burst-{uuid.uuid4().hex}"}
    answers: list = []

    def send() -> None:
        answers.append(client.post(messages_url(conversation["id"]), headers=headers, json={"content": "Radishes?"}))

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=10)

    assert [answer.status_code for answer in answers] == [202] * 4
    assert len({answer.get_json()["message"]["id"] for answer in answers}) == 1
    wait_for_reply(client, alice, conversation["id"], answers[0].get_json()["message"])
    count_stays(client, alice, conversation["id"], 2, seconds=1.0)


def test_an_idempotency_key_reused_for_other_content_is_a_conflict(client, alice):
    conversation = new_conversation(client, alice)
    key = {"Idempotency-Key": f"reuse-{uuid.uuid4().hex}"}
    first = post_message(client, alice, conversation["id"], "Peas", headers=key)

    other = client.post(messages_url(conversation["id"]), headers={**alice.headers, **key},
                        json={"content": "Beans"})

    assert_error(other, 409, "conflict")
    stored = wait_for_reply(client, alice, conversation["id"], first)
    assert [m["content"] for m in stored if m["role"] == "user"] == ["Peas"]


def test_idempotency_keys_belong_to_their_user(client, alice):
    """Two users who happen to pick the same key each get their own message stored."""
    dora = sign_up(client, "Dora")
    key = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    mine = new_conversation(client, alice)
    hers = new_conversation(client, dora)

    alices = post_message(client, alice, mine["id"], "Same words", headers=key)
    doras = post_message(client, dora, hers["id"], "Same words", headers=key)

    assert alices["id"] != doras["id"]
    assert doras["sender_id"] == dora.id
    wait_for_reply(client, alice, mine["id"], alices)
    wait_for_reply(client, dora, hers["id"], doras)


@pytest.mark.parametrize("key", ["k" * 8, "k" * 64, "a.B-c_d:9"], ids=["8-chars", "64-chars", "punctuation"])
def test_idempotency_keys_of_8_to_64_safe_characters_are_accepted(client, alice, key):
    conversation = new_conversation(client, alice)

    message = post_message(client, alice, conversation["id"], "ok", headers={"Idempotency-Key": key})

    wait_for_reply(client, alice, conversation["id"], message)


@pytest.mark.parametrize("key", [
    "",
    "short",
    "k" * 7,
    "k" * 65,
    "has spaces in it",
    "slash/in/the/key",
    "semi;colon;key",
    "caf\u00e9-caf\u00e9",
], ids=["empty", "5-chars", "7-chars", "65-chars", "spaces", "slash", "semicolon", "non-ascii"])
def test_bad_idempotency_keys_are_rejected_and_nothing_is_stored(client, alice, key):
    conversation = new_conversation(client, alice)

    response = client.post(messages_url(conversation["id"]), headers={**alice.headers, "Idempotency-Key": key},
                           json={"content": "hello"})

    assert_error(response, 400, "invalid_request")
    assert history(client, alice, conversation["id"]) == []


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"content": ""}, "content"),
    ({"content": "   "}, "content"),
    ({"content": "\n\t "}, "content"),
    ({"content": "x" * 32_001}, "content"),
    ({"content": 42}, "content"),
    ({"content": None}, "content"),
    ({"content": ["hello"]}, "content"),
    ({"content": {"text": "hello"}}, "content"),
    ({}, "content"),
    ({"content": "hi", "role": "assistant"}, "role"),
    ({"content": "hi", "sender_id": "someone"}, "sender_id"),
    ({"content": "hi", "metadata": "x"}, "metadata"),
], ids=lambda v: repr(v)[:30])
def test_bad_message_bodies_are_rejected_and_nothing_is_stored(client, alice, body, field):
    conversation = new_conversation(client, alice)

    response = client.post(messages_url(conversation["id"]), headers=alice.headers, json=body)

    error = assert_error(response, 400, "invalid_arguments")
    assert field in [item["field"] for item in error["details"]["errors"]]
    assert history(client, alice, conversation["id"]) == []


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"data": "content=hi", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"data": "hi", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": '{"content": "hi"', "content_type": "application/json"}, 400, "invalid_request"),
    ({"json": ["hi"]}, 400, "invalid_request"),
    ({"json": "hi"}, 400, "invalid_request"),
    ({"json": {"content": "x" * (1024 * 1024 + 1)}}, 413, "payload_too_large"),
], ids=["form", "text-plain", "bad-json", "json-array", "json-string", "over-1-MiB"])
def test_message_bodies_must_be_json_objects_within_the_size_limit(client, alice, kwargs, status, code):
    conversation = new_conversation(client, alice)

    assert_error(client.post(messages_url(conversation["id"]), headers=alice.headers, **kwargs), status, code)
    assert history(client, alice, conversation["id"]) == []


@pytest.mark.parametrize("content", [
    pytest.param(("leek " * 6400)[:32_000], id="32000-chars-of-words"),
    pytest.param("x" * 32_000, id="32000-chars-one-word"),
])
def test_the_longest_allowed_message_is_stored_and_answered(client, alice, content):
    conversation = new_conversation(client, alice)

    with listening(client, conversation["id"], headers=alice.headers) as stream:
        stream.event()
        message = post_message(client, alice, conversation["id"], content)
        events = stream.until(lambda e: e.event == "error" or assistant_message_for(message)(e), timeout=10)

    assert message["content"] == content
    assert events[-1].event == "message", events[-1].data
    assert events[-1].data["role"] == "assistant"


def test_posting_to_an_unknown_conversation_is_404(client, alice):
    response = client.post(messages_url(str(uuid.uuid4())), headers=alice.headers, json={"content": "hello?"})

    assert_error(response, 404, "not_found")


def test_messages_are_numbered_in_order_of_arrival(client, alice):
    conversation = new_conversation(client, alice)

    sent = [post_message(client, alice, conversation["id"], f"note {index}") for index in range(3)]

    sequences = [message["sequence"] for message in sent]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    eventually(lambda: len(history(client, alice, conversation["id"])) == 6, what="three replies")
