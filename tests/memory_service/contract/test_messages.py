"""The Memory Service store: messages, conversation and history iteration, full-text search."""

from __future__ import annotations

import pytest

from common.errors import Conflict, Forbidden, InvalidArguments, NotFound
from memory_service.store import IdempotencyKey, Store
from tests.memory_service.worlds import post, readers_world, without_replayed


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    return readers_world(store)


# --- storing and reading ------------------------------------------------------------------------------------

def test_store_input_numbers_messages_per_conversation(store: Store, world: dict[str, str]) -> None:
    before = store.get_conversation(world["ann"], world["conv"])["conversation"]
    first = store.store_input(world["bob"], world["conv"], "hello", metadata={"client": "cli"})
    assert first["status"] == "stored" and first["user_id"] == world["bob"] and first["sequence"] == 1
    message = first["message"]
    assert message["id"] == first["item_id"] and message["sender_id"] == world["bob"]
    assert (message["role"], message["content"], message["metadata"]) == ("user", "hello", {"client": "cli"})
    assert message["created_at"].endswith("+00:00")
    assert [post(store, world, "ann", t)["sequence"] for t in ("a", "b")] == [2, 3]
    assert post(store, world, "cat", "elsewhere", "cat_conv")["sequence"] == 1
    after = store.get_conversation(world["ann"], world["conv"])["conversation"]
    assert after["updated_at"] > before["updated_at"]


def test_stranger_cannot_post(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        store.store_input(world["cat"], world["conv"], "let me in")
    with pytest.raises(NotFound, match="conversation not found"):
        store.store_input(world["ann"], "no-such-conversation", "hi")


def test_unknown_role_is_invalid(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(InvalidArguments):
        store.store_input(world["ann"], world["conv"], "hi", role="wizard")


def test_store_input_retry_with_same_key_stores_once(store: Store, world: dict[str, str]) -> None:
    key = IdempotencyKey("retry-1", "store_input", "fp")
    first = store.store_input(world["ann"], world["conv"], "once", idempotency=key)
    replay = store.store_input(world["ann"], world["conv"], "once", idempotency=key)
    # Compared without `replayed`, the one key a replay changes (false on the first write, true here).
    assert without_replayed(replay) == without_replayed(first)
    assert (first["replayed"], replay["replayed"]) == (False, True)
    assert store.list_messages(world["ann"], world["conv"])["count"] == 1
    with pytest.raises(Conflict):
        store.store_input(world["ann"], world["conv"], "other",
                             idempotency=key._replace(fingerprint="x"))


@pytest.mark.parametrize("actor, may_read, may_change", [
    ("bob", True, True),     # the sender
    ("ann", True, True),     # the workspace owner
    ("cat", False, False),   # a stranger
])
def test_message_permissions(store: Store, world: dict[str, str], actor: str, may_read: bool,
                             may_change: bool) -> None:
    message_id = post(store, world, "bob", "original")["id"]
    calls = {
        "get": (may_read, lambda: store.get_message(world[actor], message_id)),
        "update": (may_change,
                   lambda: store.update_message(world[actor], message_id, content="edited")),
        "delete": (may_change, lambda: store.delete_message(world[actor], message_id)),
    }
    for allowed, call in calls.values():
        if allowed:
            call()
        else:
            with pytest.raises(Forbidden):
                call()


def test_participant_who_is_not_the_sender_cannot_change_a_message(store: Store,
                                                                   world: dict[str, str]) -> None:
    message_id = post(store, world, "ann", "owner's words")["id"]
    assert store.get_message(world["bob"], message_id)["message"]["content"] == "owner's words"
    with pytest.raises(Forbidden):
        store.update_message(world["bob"], message_id, content="bob's words")
    with pytest.raises(Forbidden):
        store.delete_message(world["bob"], message_id)


def test_update_message_changes_given_fields_and_the_search_index(store: Store,
                                                                  world: dict[str, str]) -> None:
    message = post(store, world, "bob", "walrus")
    updated = store.update_message(world["bob"], message["id"], content="narwhal")["message"]
    assert (updated["content"], updated["sequence"], updated["metadata"]) == ("narwhal", 1, {})
    assert store.update_message(world["bob"], message["id"], metadata={"a": 1})["message"]["content"] \
        == "narwhal"
    assert store.search_messages(world["bob"], "walrus")["count"] == 0
    assert store.search_messages(world["bob"], "narwhal")["count"] == 1


def test_deleted_message_is_gone_and_its_sequence_is_not_reused(store: Store,
                                                                 world: dict[str, str]) -> None:
    message = post(store, world, "bob", "oops")
    assert store.delete_message(world["bob"], message["id"]) == {"deleted": True, "id": message["id"]}
    with pytest.raises(NotFound, match="message not found"):
        store.get_message(world["bob"], message["id"])
    assert post(store, world, "bob", "again")["sequence"] == 2


def test_list_messages_is_chronological_after_a_sequence(store: Store, world: dict[str, str]) -> None:
    for n in range(1, 6):
        post(store, world, "ann", f"m{n}")
    page = store.list_messages(world["bob"], world["conv"], after_sequence=2, limit=2)
    assert [m["content"] for m in page["messages"]] == ["m3", "m4"]
    assert (page["count"], page["conversation_id"]) == (2, world["conv"])
    with pytest.raises(Forbidden):
        store.list_messages(world["cat"], world["conv"])


# --- iteration ---------------------------------------------------------------------------------------------

def test_iter_conversation_checks_access_before_iterating(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        store.iter_conversation(world["cat"], world["conv"])  # not iterated: must raise anyway
    with pytest.raises(NotFound):
        store.iter_conversation(world["ann"], "no-such-conversation")


def test_iter_history_is_newest_first_over_readable_conversations(store: Store,
                                                                  world: dict[str, str]) -> None:
    own = store.create_conversation(world["bob"], store.create_workspace(
        world["bob"], "Bob's")["workspace"]["id"], "Mine")["conversation"]["id"]
    post(store, world, "ann", "one")
    store.store_input(world["bob"], own, "two")
    post(store, world, "cat", "hidden", "cat_conv")
    post(store, world, "bob", "three")
    history = list(store.iter_history(world["bob"], page_size=2))
    assert [m["content"] for m in history] == ["three", "two", "one"]
    limited = store.iter_history(world["bob"], limit=2, page_size=1)
    assert [m["content"] for m in limited] == ["three", "two"]
    assert list(store.iter_history(world["bob"], limit=0)) == []
    assert store.count_history(world["bob"]) == 3
    assert [m["content"] for m in store.iter_history(world["cat"])] == ["hidden"]


# --- search ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    '"', "*", "NEAR(", "AND", "a OR b", "(unbalanced", "col:x", "content:hello", "hello*", "^hello", "-hello",
    "'; DROP TABLE messages; --", "\x00", "🙂", "a" * 10_000, "hello world " * 900, "NOT", "OR OR OR",
])
def test_any_query_text_is_safe(store: Store, world: dict[str, str], query: str) -> None:
    post(store, world, "ann", "hello world and more")
    result = store.search_messages(world["ann"], query)
    assert result["query"] == query and result["count"] == len(result["results"])


@pytest.mark.parametrize("query", ["AND", '"hello', "OR", "Zürich", "zurich"])
def test_operator_words_are_searched_as_words(store: Store, world: dict[str, str], query: str) -> None:
    wanted = post(store, world, "ann", 'hello AND goodbye OR not, said the man from Zurich')
    post(store, world, "ann", "something else entirely")
    results = store.search_messages(world["bob"], query)["results"]
    assert [r["id"] for r in results] == [wanted["id"]]


def test_search_ranks_best_first_with_positive_scores(store: Store, world: dict[str, str]) -> None:
    post(store, world, "ann", "the weather is nice, lovely weather, weather all day")
    post(store, world, "ann", "a long note about many things, one of them the weather, and much more besides")
    post(store, world, "ann", "nothing relevant")
    results = store.search_messages(world["ann"], "weather")["results"]
    assert [r["content"][:11] for r in results] == ["the weather", "a long note"]
    assert results[0]["score"] > results[1]["score"] > 0
    assert set(results[0]) == {"id", "conversation_id", "sender_id", "role", "content", "metadata",
                               "sequence", "created_at", "score"}


def test_search_never_returns_other_users_messages(store: Store, world: dict[str, str]) -> None:
    post(store, world, "cat", "secret platypus", "cat_conv")
    mine = post(store, world, "bob", "public platypus")
    assert [r["id"] for r in store.search_messages(world["bob"], "platypus")["results"]] == [mine["id"]]
    assert store.search_messages(world["ann"], "platypus")["count"] == 1


def test_search_within_one_conversation_checks_access(store: Store, world: dict[str, str]) -> None:
    post(store, world, "cat", "secret platypus", "cat_conv")
    post(store, world, "ann", "platypus here too")
    result = store.search_messages(world["cat"], "platypus", conversation_id=world["cat_conv"])
    assert [r["content"] for r in result["results"]] == ["secret platypus"]
    with pytest.raises(Forbidden):
        store.search_messages(world["bob"], "platypus", conversation_id=world["cat_conv"])
    with pytest.raises(NotFound):
        store.search_messages(world["bob"], "platypus", conversation_id="no-such-conversation")


def test_query_without_words_returns_nothing(store: Store, world: dict[str, str]) -> None:
    post(store, world, "ann", "hello")
    assert store.search_messages(world["ann"], "?!*") == {"results": [], "count": 0, "query": "?!*",
                                                               "has_more": False, "next_offset": 0}


def test_search_finds_the_oldest_of_500_messages(store: Store, world: dict[str, str]) -> None:
    post(store, world, "ann", "the quokka smiled at dawn")
    for n in range(499):
        post(store, world, "bob", f"ordinary message number {n} about the day")
    results = store.search_messages(world["ann"], "what did the quokka do?", limit=3)["results"]
    assert results[0]["content"] == "the quokka smiled at dawn" and results[0]["sequence"] == 1
