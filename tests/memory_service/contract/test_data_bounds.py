"""The storage contract for what Memory keeps and hands out: metadata size, page bytes, search statistics over
the caller's own messages, idempotency keys that expire."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from common.errors import PayloadTooLarge
from memory_service.store import IdempotencyKey, Store
from tests.memory_service.contract.conftest import MakeStore
from tests.memory_service.worlds import Clock, bounds_world, without_replayed

METADATA_BYTES = 16 * 1024
PAGE_BYTES = 512 * 1024


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(make_store: MakeStore, clock: Clock) -> Store:
    return make_store(clock=clock, max_page_bytes=PAGE_BYTES)


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    return bounds_world(store)


def metadata_of(size: int) -> dict[str, str]:
    """An object whose JSON is exactly `size` bytes."""
    return {"k": "x" * (size - len('{"k": ""}'))}


# --- metadata ----------------------------------------------------------------------------------------------

def test_metadata_up_to_the_limit_is_stored_and_one_byte_more_is_413(store: Store, world: dict) -> None:
    stored = store.store_input(world["ann"], world["conv"], "hi", metadata=metadata_of(METADATA_BYTES))
    assert len(json.dumps(stored["message"]["metadata"])) == METADATA_BYTES
    too_big = metadata_of(METADATA_BYTES + 1)
    for write in (
        lambda: store.store_input(world["ann"], world["conv"], "hi", metadata=too_big),
        lambda: store.update_message(world["ann"], stored["item_id"], metadata=too_big),
        lambda: store.create_workspace(world["ann"], "Big", metadata=too_big),
        lambda: store.create_conversation(world["ann"], world["ws"], "Big", metadata=too_big),
        lambda: store.update_conversation(world["ann"], world["conv"], metadata=too_big),
    ):
        with pytest.raises(PayloadTooLarge) as error:
            write()
        assert error.value.status == 413 and error.value.details["max_bytes"] == METADATA_BYTES


def test_escaped_characters_count_as_the_bytes_they_take(store: Store, world: dict) -> None:
    # 3,000 emoji are 3,000 characters but 36,000 bytes of JSON.
    with pytest.raises(PayloadTooLarge):
        store.store_input(world["ann"], world["conv"], "hi", metadata={"k": "🙂" * 3000})


# --- pages in bytes ----------------------------------------------------------------------------------------

@pytest.fixture
def heavy(store: Store, world: dict) -> list[str]:
    """60 messages of ~32 KB content and 16 KiB metadata each (about 3 MB): several pages' worth."""
    return [store.store_input(world["ann"], world["conv"], f"walrus {n} " + "w" * 32_000,
                                 metadata=metadata_of(METADATA_BYTES))["item_id"] for n in range(60)]


def test_message_pages_stay_under_the_budget_and_paging_returns_each_once(store: Store, world: dict,
                                                                           heavy: list[str]) -> None:
    seen, after, pages = [], 0, 0
    while True:
        page = store.list_messages(world["ann"], world["conv"], after_sequence=after, limit=1000)
        assert len(json.dumps(page)) <= PAGE_BYTES
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        if not page["has_more"]:
            break
        assert page["count"] > 0 and page["next_after_sequence"] > after
        after = page["next_after_sequence"]
    assert seen == heavy and pages > 3


def test_latest_page_keeps_the_newest_that_fit(store: Store, world: dict, heavy: list[str]) -> None:
    page = store.list_messages(world["ann"], world["conv"], limit=1000, latest=True)
    assert page["has_more"] is True and len(json.dumps(page)) <= PAGE_BYTES
    assert [m["id"] for m in page["messages"]] == heavy[-page["count"]:]


def test_small_pages_are_cut_by_count_as_before(store: Store, world: dict) -> None:
    ids = [store.store_input(world["ann"], world["conv"], f"m{n}")["item_id"] for n in range(5)]
    page = store.list_messages(world["ann"], world["conv"], limit=3)
    assert [m["id"] for m in page["messages"]] == ids[:3] and page["has_more"] is True
    rest = store.list_messages(world["ann"], world["conv"], after_sequence=page["next_after_sequence"])
    assert [m["id"] for m in rest["messages"]] == ids[3:] and rest["has_more"] is False


def test_streamed_conversation_and_history_return_everything_once(store: Store, world: dict,
                                                                   heavy: list[str]) -> None:
    assert [m["id"] for m in store.iter_conversation(world["ann"], world["conv"])] == heavy
    history = [m["id"] for m in store.iter_history(world["ann"])]
    assert history == heavy[::-1] and all("_seq" not in m for m in store.iter_history(world["ann"], 3))
    assert [m["id"] for m in store.iter_history(world["ann"], limit=7)] == heavy[::-1][:7]


def test_search_pages_stay_under_the_budget_and_offsets_return_each_once(store: Store, world: dict,
                                                                         heavy: list[str]) -> None:
    seen, offset = [], 0
    while True:
        page = store.search_messages(world["ann"], "walrus", limit=1000, offset=offset)
        assert len(json.dumps(page)) <= PAGE_BYTES and page["count"] > 0
        seen += [hit["id"] for hit in page["results"]]
        if not page["has_more"]:
            break
        offset = page["next_offset"]
    assert sorted(seen) == sorted(heavy) and len(seen) == len(set(seen))


# --- search statistics -------------------------------------------------------------------------------------

def test_search_results_do_not_depend_on_other_users_messages(store: Store, world: dict) -> None:
    for text in ("the harbour at dawn", "harbour lights and a harbour wall", "a lantern by the harbour",
                 "nothing to see", "lantern lantern"):
        store.store_input(world["ann"], world["conv"], text)

    def ann_sees() -> list[dict]:
        return [store.search_messages(world["ann"], query, limit=50, conversation_id=scope)
                for query in ("harbour", "harbour lantern", "dawn wall") for scope in (None, world["conv"])]

    before = ann_sees()
    for n in range(300):  # another user's messages full of the same words, and of all lengths
        store.store_input(world["bob"], world["bob_conv"], "harbour " * (n % 7 + 1) + "lantern" * (n % 2))
    assert ann_sees() == before
    assert before[0]["count"] == 3 and all(hit["score"] > 0 for hit in before[0]["results"])


def test_search_ranks_by_the_callers_own_statistics(store: Store, world: dict) -> None:
    # In ann's messages "harbour" is common and "lantern" rare, so the rare word weighs more, however
    # often "lantern" occurs in messages of bob's that she cannot read.
    for text in ("harbour harbour harbour", "harbour one", "harbour two", "lantern"):
        store.store_input(world["ann"], world["conv"], text)
    for number in range(30):
        store.store_input(world["bob"], world["bob_conv"], f"lantern {number}")
    best = store.search_messages(world["ann"], "harbour lantern")["results"][0]
    assert best["content"] == "lantern"


def test_search_folds_case_and_accents_as_the_index_does(store: Store, world: dict) -> None:
    store.store_input(world["ann"], world["conv"], "Ein Café in Zürich, привет МИР, λόγος, İstanbul")
    for query in ("cafe", "CAFÉ", "zurich", "Привет", "мир", "λόγος", "ΛΌΓΟΣ", "istanbul", "İSTANBUL"):
        assert store.search_messages(world["ann"], query)["count"] == 1, query


# --- idempotency keys --------------------------------------------------------------------------------------

def key(name: str, tool: str = "store_input") -> IdempotencyKey:
    return IdempotencyKey(name, tool, "fingerprint")


def test_a_key_replays_within_a_day_and_stores_again_after(store: Store, world: dict, clock: Clock) -> None:
    first = store.store_input(world["ann"], world["conv"], "once", idempotency=key("k1"))
    clock.now += timedelta(hours=23)
    # Compared without `replayed`, the one key a replay changes.
    replay = store.store_input(world["ann"], world["conv"], "once", idempotency=key("k1"))
    assert without_replayed(replay) == without_replayed(first)
    clock.now += timedelta(hours=2)
    again = store.store_input(world["ann"], world["conv"], "once", idempotency=key("k1"))
    assert again["item_id"] != first["item_id"] and again["sequence"] == first["sequence"] + 1
    replay = store.store_input(world["ann"], world["conv"], "once", idempotency=key("k1"))
    assert without_replayed(replay) == without_replayed(again)



