"""Exactly one reply per stored input across Core processes (issue 12 step 3): a POST retried with the same
`Idempotency-Key` on another Core process, both on one Memory, stores one message and gets one reply."""

from __future__ import annotations

import uuid

import pytest

from tests.system.support.api import Api
from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import start_stack


@pytest.fixture(scope="module")
def two_cores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replies-across")
    stack = start_stack(tmp)
    other = ServiceProcess("core_app.app:create_app()", stack.core.env, tmp / "core-b.log").start()
    yield stack.core, other
    other.stop()
    stack.stop()


def completed_for(reader: StreamReader, message_id: str) -> list:
    return [e for e in reader.events if e.event == "response.completed"
            and e.data["message"]["metadata"].get("in_reply_to") == message_id]


def test_a_retry_with_the_same_key_on_another_core_stores_once_and_replies_once(two_cores):
    core_a, core_b = two_cores
    alice = Api(core_a.url, f"alice-{uuid.uuid4().hex[:8]}@example.com")
    conv = alice.conversation()
    on_b = Api.__new__(Api)  # the same user, signed in with the same token, talking to Core B
    on_b.base, on_b.token, on_b.user = core_b.url, alice.token, alice.user
    stream_a = StreamReader(alice.stream_url(conv), token=alice.token)
    stream_b = StreamReader(on_b.stream_url(conv), token=alice.token)
    try:
        stream_a.wait_for("connected")
        stream_b.wait_for("connected")
        key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}
        body = {"content": "Is Porto lovely in spring?"}

        first = alice.request("POST", f"/v1/conversation/{conv}/messages", json=body, headers=key)
        assert first.status_code == 202, first.text
        message_id = first.json()["message"]["id"]
        stream_a.wait_for("response.completed")
        retry = on_b.request("POST", f"/v1/conversation/{conv}/messages", json=body, headers=key)
        assert retry.status_code == 202, retry.text
        assert retry.json()["message"]["id"] == message_id

        # Core B answers its requests in order: once a later message's reply has completed there, anything
        # it was going to publish for the retry has been published.
        sentinel = on_b.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "And in May?"})
        assert sentinel.status_code == 202, sentinel.text
        sentinel_id = sentinel.json()["message"]["id"]
        wait_until(lambda: completed_for(stream_b, sentinel_id), 20, message="the sentinel's reply on Core B")

        history = alice.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
        assert [m["id"] for m in history if m["content"] == body["content"]] == [message_id]
        replies = [m for m in history if m["role"] == "assistant" and m["metadata"]["in_reply_to"] == message_id]
        assert len(replies) == 1
        assert len(completed_for(stream_a, message_id)) == 1
        assert completed_for(stream_b, message_id) == []
        assert not [e for e in stream_b.events if e.event == "response.started"
                    and e.data["in_reply_to"] == message_id]
        assert not [e for e in stream_b.events if e.event == "message" and e.data["id"] == message_id]
    finally:
        stream_a.close()
        stream_b.close()
