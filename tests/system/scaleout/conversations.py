"""What the scale-out tests share: posting with an Idempotency-Key until some Core process acknowledges it,
the events Redis holds for a conversation (the truth a stream client is compared with), a conversation's
whole history, and the shape of a turn on the stream."""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis
import requests

from tests.system.support.api import Api
from tests.system.support.sse_reader import Received
from tests.system.support.stack import ScaledStack

# Answers after which the same POST, with the same key, is tried again through another Core process.
RETRIED = {429, 500, 502, 503, 504}


def event_key(event_id: str | None) -> tuple[int, int]:
    """A Redis stream id as a sortable pair."""
    ms, _, seq = (event_id or "0-0").partition("-")
    return int(ms), int(seq)


def post_acknowledged(apis: Sequence[Api], conversation_id: str, content: str, key: str, first: int = 0,
                      attempts: int = 10) -> tuple[dict, int]:
    """POST `content` with Idempotency-Key `key` through `apis[first]`, and on a failure (a 5xx, a 429, a
    connection error) again with the same key through the next one, and so on, until one answers 202.
    Returns the stored message and the number of attempts; fails after `attempts`."""
    problems: list[str] = []
    for attempt in range(attempts):
        api = apis[(first + attempt) % len(apis)]
        try:
            answer = api.request("POST", f"/v1/conversation/{conversation_id}/messages", json={"content": content},
                                 headers={"Idempotency-Key": key}, timeout=10)
        except requests.RequestException as exc:
            problems.append(f"{api.base}: {exc.__class__.__name__}")
        else:
            if answer.status_code == 202:
                return answer.json()["message"], attempt + 1
            assert answer.status_code in RETRIED, f"{answer.status_code}: {answer.text}"
            problems.append(f"{api.base}: {answer.status_code}")
        time.sleep(min(0.05 * (attempt + 1), 0.3))
    raise AssertionError(f"{key} never acknowledged: {problems}")


def history(api: Api, conversation_id: str) -> list[dict]:
    """Every message of the conversation, page after page, in order."""
    messages: list[dict] = []
    after = 0
    for _ in range(100):
        page = api.request("GET", f"/v1/conversation/{conversation_id}/messages",
                           params={"after_sequence": after, "limit": 100})
        assert page.status_code == 200, page.text
        body = page.json()
        messages += body["messages"]
        if not body["has_more"]:
            return messages
        after = body["next_after_sequence"]
    raise AssertionError("more than 100 pages")


def redis_events(stack: ScaledStack, conversation_id: str) -> list[tuple[str, str]]:
    """(id, type) of every event Redis retains for the conversation, oldest first."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        entries = client.xrange(f"{stack.redis_prefix}:conversation:{conversation_id}")
    finally:
        client.close()
    return [(raw_id.decode(), fields[b"t"].decode()) for raw_id, fields in entries]


def replies_published(stack: ScaledStack, conversation_id: str) -> int:
    """How many replies' `message` events Redis holds for the conversation (every other is the input's)."""
    kinds = [kind for _, kind in redis_events(stack, conversation_id)]
    return kinds.count("response.completed")


def assert_turns(events: Sequence[Received], posted_ids: Sequence[str]) -> None:
    """`events` are whole turns, one per posted message and in the order posted: the input's `message`,
    `response.started` (perhaps a `warning`), at least one `response.delta`, `response.completed`, the reply's
    `message`, whose content is the deltas joined. Event ids are all there, unique and increasing."""
    ids = [e.id for e in events]
    assert all(ids), "an event without an id"
    assert len(set(ids)) == len(ids), "an event twice"
    assert ids == sorted(ids, key=event_key), "events out of order"
    at = 0
    for message_id in posted_ids:
        turn = events[at:]
        assert turn and turn[0].event == "message" and turn[0].data["id"] == message_id, \
            f"expected the input {message_id} at event {at}, got {[e.event for e in turn[:3]]}"
        end = next((i for i, e in enumerate(turn) if e.event == "message" and i > 0), None)
        assert end is not None, f"no reply to {message_id}: {[e.event for e in turn]}"
        kinds = [e.event for e in turn[1:end]]
        assert kinds[0] == "response.started" and kinds[-1] == "response.completed", kinds
        # A `warning` (Cognition gave no context in time, on a busy machine) may follow `response.started`.
        deltas = kinds[2:-1] if kinds[1] == "warning" else kinds[1:-1]
        assert deltas and set(deltas) == {"response.delta"}, kinds
        reply = turn[end].data
        assert reply["role"] == "assistant" and reply["content"] == "".join(
            e.data["delta"] for e in turn[1:end] if e.event == "response.delta")
        at += end + 1
    assert at == len(events), f"{len(events) - at} events beyond the last turn: {[e.event for e in events[at:]]}"
