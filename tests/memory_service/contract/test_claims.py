"""The storage contract for reply claims: exactly one claim per message wins, ever, whoever makes it."""

from __future__ import annotations

import threading

import pytest

from common.errors import Forbidden, NotFound
from memory_service.store import IdempotencyKey, Store
from tests.memory_service.worlds import post, readers_world


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    return readers_world(store)


def test_the_first_claim_wins_and_every_later_one_loses(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "hello")
    assert store.claim_reply(world["bob"], message["id"]) == {"claimed": True, "message_id": message["id"]}
    assert store.claim_reply(world["bob"], message["id"]) == {"claimed": False, "message_id": message["id"]}
    assert store.claim_reply(world["ann"], message["id"])["claimed"] is False  # another reader: still lost
    other = post(store, world, "bob", "again")
    assert store.claim_reply(world["ann"], other["id"])["claimed"] is True  # per message


def test_concurrent_claims_have_exactly_one_winner(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "everyone at once")
    start, results = threading.Barrier(8), []

    def claim() -> None:
        start.wait()
        results.append(store.claim_reply(world["bob"], message["id"])["claimed"])

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == [False] * 7 + [True]


def test_a_retried_claim_replays_its_answer(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "hello")
    key = IdempotencyKey("claim-1", "claim_reply", "fp")
    assert store.claim_reply(world["bob"], message["id"], idempotency=key)["claimed"] is True
    # The answer was lost on the way back; the transport retries with the same key and is still the winner.
    assert store.claim_reply(world["bob"], message["id"], idempotency=key)["claimed"] is True
    assert store.claim_reply(world["bob"], message["id"], idempotency=key._replace(key="claim-2"))["claimed"] is False


def test_claims_need_read_access_like_get_message(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "hello")
    with pytest.raises(Forbidden):
        store.claim_reply(world["cat"], message["id"])
    with pytest.raises(NotFound, match="message not found"):
        store.claim_reply(world["bob"], "no-such-message")
    with pytest.raises(NotFound, match="user not found"):
        store.claim_reply("ghost", message["id"])
    assert store.claim_reply(world["bob"], message["id"])["claimed"] is True  # the refused ones claimed nothing


def test_a_deleted_message_takes_its_claim_with_it(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "hello")
    store.claim_reply(world["bob"], message["id"])
    store.delete_message(world["bob"], message["id"])
    with pytest.raises(NotFound, match="message not found"):
        store.claim_reply(world["bob"], message["id"])
    conversation_gone = post(store, world, "bob", "in a conversation about to go")
    store.claim_reply(world["bob"], conversation_gone["id"])
    store.delete_conversation(world["ann"], world["conv"])
    with pytest.raises(NotFound):
        store.claim_reply(world["ann"], conversation_gone["id"])
