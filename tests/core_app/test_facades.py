"""Core's typed facades over Memory and Cognition (`responses`, no sockets): the tools they name, and
another user's objects reported as missing."""

from __future__ import annotations

import json

import pytest
import responses

from common.client import ClientSettings, RetryPolicy, ServiceClient
from common.errors import NotFound, Unauthorized
from core_app.cognition import Cognition
from core_app.memory import Memory

BASE = "http://memory.test"
MESSAGE = {"id": "m-1", "conversation_id": "c-1", "sender_id": "u-1", "role": "user", "content": "hi",
           "metadata": {}, "sequence": 1, "created_at": "2026-01-01T00:00:00+00:00"}


def client(name: str = "memory") -> ServiceClient:
    return ServiceClient(name, BASE, settings=ClientSettings(retry=RetryPolicy(attempts=0)))


def error(status: int, code: str, details: dict | None = None) -> dict:
    return {"status": status, "json": {"error": {"code": code, "message": code, "details": details or {}}}}


@responses.activate
def test_a_foreign_conversation_is_not_found_and_a_deleted_user_is_signed_out():
    responses.post(f"{BASE}/tool/get_conversation", **error(403, "forbidden"))
    responses.post(f"{BASE}/tool/list_messages", **error(404, "not_found", {"object": "user"}))
    memory = Memory(client())

    with pytest.raises(NotFound, match="conversation not found"):
        memory.get_conversation("u-1", "c-1")
    with pytest.raises(Unauthorized):
        memory.list_messages("u-1", "c-1", 0, 10)


@responses.activate
def test_store_input_says_whether_it_replayed_and_passes_the_key():
    responses.post(f"{BASE}/tool/store_input", json={"result": {
        "status": "stored", "user_id": "u-1", "item_id": "m-1", "sequence": 1, "message": MESSAGE, "replayed": True}})

    stored = Memory(client()).store_input("u-1", "c-1", "hi", {}, idempotency_key="u-1:key-0001")

    assert stored.replayed is True and stored.message.body() == MESSAGE
    call = responses.calls[0].request
    assert call.headers["Idempotency-Key"] == "u-1:key-0001"
    assert json.loads(call.body)["arguments"]["input_data"] == {
        "conversation_id": "c-1", "content": "hi", "role": "user", "metadata": {}}


@responses.activate
def test_claim_reply_asks_memory():
    responses.post(f"{BASE}/tool/claim_reply", json={"result": {"claimed": False, "message_id": "m-1"}})

    assert Memory(client()).claim_reply("u-1", "m-1") == (False, [])
    assert json.loads(responses.calls[0].request.body)["arguments"] == {"user_id": "u-1", "message_id": "m-1"}


@responses.activate
def test_analysis_types_are_cognitions_to_check():
    responses.post(f"{BASE}/tool/analyze_conversation", json={"result": {
        "type": "mood", "conversation_id": "c-1", "results": {"x": 1}, "truncated": False, "analyzed_messages": 2}})

    analysis = Cognition(client("cognition")).analyze("u-1", "c-1", "mood")

    assert analysis.body() == {"type": "mood", "conversation_id": "c-1", "results": {"x": 1}, "truncated": False,
                               "analyzed_messages": 2}


def test_the_body_keeps_every_field_it_was_given_in_order():
    from core_app.responses import MessagePage

    page = {"messages": [{**MESSAGE, "extra": [1]}], "count": 1, "conversation_id": "c-1", "has_more": False,
            "next_after_sequence": 1}
    assert json.dumps(MessagePage.model_validate(page).body()) == json.dumps(page)
