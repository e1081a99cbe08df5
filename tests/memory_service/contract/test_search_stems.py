"""Search by stems (`match="stems"`, what get_context's words half uses), on every backend: a word finds the
others of its stem, accents fold as in the exact-word search, only what the caller may read is found, and
changed or deleted messages leave the index at once."""

from __future__ import annotations

import pytest

from common.errors import Forbidden
from memory_service.store import Store
from tests.memory_service.worlds import post, readers_world


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    return readers_world(store)


def found(store: Store, user: str, query: str, conversation_id: str | None = None) -> list[str]:
    hits = store.search_messages(user, query, conversation_id, limit=50, match="stems")
    assert hits["count"] == len(hits["results"]) and all(hit["score"] > 0 for hit in hits["results"])
    return [hit["content"] for hit in hits["results"]]


def test_a_word_finds_the_other_words_of_its_stem_and_exact_search_does_not(store: Store, world: dict) -> None:
    for text in ("I painted the old barn", "She paints every weekend", "We went hiking"):
        post(store, world, "ann", text)
    assert sorted(found(store, world["ann"], "painting")) == ["I painted the old barn", "She paints every weekend"]
    exact = store.search_messages(world["ann"], "painting", limit=50)
    assert exact["results"] == []


def test_accents_fold_as_in_the_exact_word_search(store: Store, world: dict) -> None:
    post(store, world, "ann", "Coffee at the Café in Zürich")
    assert found(store, world["ann"], "cafe zurich") == ["Coffee at the Café in Zürich"]
    assert found(store, world["ann"], "CAFÉ") == ["Coffee at the Café in Zürich"]


def test_only_what_the_caller_may_read_is_found(store: Store, world: dict) -> None:
    post(store, world, "ann", "the harbour lights were painted blue")
    post(store, world, "cat", "my secret harbour painting", conv="cat_conv")
    assert found(store, world["bob"], "harbour painting") == ["the harbour lights were painted blue"]
    assert found(store, world["cat"], "harbour painting") == ["my secret harbour painting"]
    assert found(store, world["ann"], "harbour", world["conv"]) == ["the harbour lights were painted blue"]
    with pytest.raises(Forbidden):
        store.search_messages(world["bob"], "harbour", world["cat_conv"], match="stems")


def test_changed_and_deleted_messages_leave_the_index_at_once(store: Store, world: dict) -> None:
    changed = post(store, world, "ann", "we went sailing")
    gone = post(store, world, "ann", "sailing lessons on sunday")
    store.update_message(world["ann"], changed["id"], content="we went climbing")
    store.delete_message(world["ann"], gone["id"])
    assert found(store, world["ann"], "sail") == []
    assert found(store, world["ann"], "climbs") == ["we went climbing"]
