"""The storage contract for message vectors: every message is queued for one in its own write, embedding
workers lease and answer the queue, and similarity search (`VectorIndex`, with its per-process copies) finds
only what the user may read, current with every write, deletion and change of membership."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import ValidationError

from common.errors import Forbidden, InvalidArguments, NotFound
from common.server.protocol import CallContext
from memory_service.store import Store
from memory_service.store.vectors import VectorIndex, WorkItem, to_bytes
from memory_service.tools import build_tools
from tests.memory_service.worlds import post, readers_world

MODEL = "test-embed-3"
EAST, NORTH, UP = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
LEASE = 0.5  # seconds: short enough to wait out, long enough for two claims in a row to fall inside it


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    return readers_world(store)


def embed(store: Store, vectors: dict[str, list[float]], model: str = MODEL) -> None:
    """Work as an embedding worker would: claim the queue and store the vector given for each message in
    `vectors` (which must all be queued and free); other claimed messages stay leased."""
    items = store.claim_embedding_work(256, 60)
    answers = [(item.ticket, item.message_id, to_bytes(vectors[item.message_id]))
               for item in items if item.message_id in vectors]
    assert len(answers) == len(vectors), "a message to embed was not handed out"
    assert store.store_embeddings(model, answers) == {"stored": len(vectors), "skipped": 0}


def answer(store: Store, item: WorkItem, vector: list[float], model: str = MODEL) -> dict:
    return store.store_embeddings(model, [(item.ticket, item.message_id, to_bytes(vector))])


def found(index: VectorIndex, store: Store, user_id: str, vector: list[float] = EAST,
          conversation_id: str | None = None, model: str = MODEL, limit: int = 50) -> list[str]:
    """The contents of the search's results, best first."""
    hits = index.search(store, user_id, model, vector, limit, conversation_id)
    assert hits["count"] == len(hits["results"]) and hits["model"] == model
    return [hit["content"] for hit in hits["results"]]


# --- the queue ---------------------------------------------------------------------------------------------

def test_every_stored_message_is_queued_and_claims_lease_the_oldest_first(store: Store,
                                                                          world: dict[str, str]) -> None:
    assert store.embedding_backlog() == 0
    first, second = post(store, world, "ann", "first"), post(store, world, "bob", "second")
    third = post(store, world, "cat", "third", "cat_conv")
    assert store.embedding_backlog() == 3

    claimed = store.claim_embedding_work(2, 60)
    assert [(item.message_id, item.content) for item in claimed] == [(first["id"], "first"),
                                                                     (second["id"], "second")]
    assert claimed[0].ticket < claimed[1].ticket
    rest = store.claim_embedding_work(10, 60)
    assert [(item.message_id, item.content) for item in rest] == [(third["id"], "third")]
    assert rest[0].ticket > claimed[1].ticket
    assert store.claim_embedding_work(10, 60) == []  # all three are leased
    assert store.embedding_backlog() == 3  # leased is still waiting


def test_a_leased_message_is_handed_out_again_only_when_its_lease_ends(store: Store,
                                                                       world: dict[str, str]) -> None:
    one, two = post(store, world, "ann", "one"), post(store, world, "ann", "two")
    leased = store.claim_embedding_work(10, LEASE)
    assert [item.message_id for item in leased] == [one["id"], two["id"]]
    assert store.claim_embedding_work(10, LEASE) == []
    assert answer(store, leased[0], EAST) == {"stored": 1, "skipped": 0}

    time.sleep(LEASE + 0.2)

    again = store.claim_embedding_work(10, 60)
    assert again == [WorkItem(leased[1].ticket, two["id"], "two")]  # the stored one is not queued any more
    assert store.embedding_backlog() == 1


def test_concurrent_claims_never_hand_out_a_message_twice(store: Store, world: dict[str, str]) -> None:
    ids = [post(store, world, "ann", f"m{n}")["id"] for n in range(12)]
    start, handed = threading.Barrier(4), []

    def claim() -> None:
        start.wait()
        handed.extend(item.message_id for item in store.claim_embedding_work(3, 60))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    handed.extend(item.message_id for item in store.claim_embedding_work(256, 60))  # any left over
    assert sorted(handed) == sorted(ids)


def test_storing_a_claimed_vector_dequeues_it_and_a_second_answer_is_skipped(store: Store,
                                                                               world: dict[str, str]) -> None:
    message, other = post(store, world, "bob", "hello"), post(store, world, "bob", "other")
    item, other_item = store.claim_embedding_work(10, 60)

    assert store.store_embeddings(MODEL, [(item.ticket, other["id"], to_bytes(NORTH))]) == {
        "stored": 0, "skipped": 1}  # a ticket with another message's id
    assert answer(store, item, EAST) == {"stored": 1, "skipped": 0}
    assert store.embedding_backlog() == 1
    assert answer(store, item, NORTH) == {"stored": 0, "skipped": 1}  # another worker's late answer

    hits = VectorIndex().search(store, world["bob"], MODEL, EAST, 10)
    assert hits == {"results": [{**store.get_message(world["bob"], message["id"])["message"], "score": 1.0}],
                    "count": 1, "model": MODEL}  # the first answer's vector, the message as stored
    assert answer(store, other_item, NORTH) == {"stored": 1, "skipped": 0}
    assert store.embedding_backlog() == 0
    assert store.claim_embedding_work(10, 60) == []


def test_a_ticket_claimed_before_the_content_changed_stores_nothing(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "draft")
    [stale] = store.claim_embedding_work(10, 60)
    store.update_message(world["bob"], message["id"], content="final")
    assert store.embedding_backlog() == 1

    assert answer(store, stale, EAST) == {"stored": 0, "skipped": 1}
    assert found(VectorIndex(), store, world["bob"]) == []

    [fresh] = store.claim_embedding_work(10, 60)  # at once, though the stale lease has a minute to run
    assert (fresh.message_id, fresh.content) == (message["id"], "final") and fresh.ticket > stale.ticket
    assert answer(store, fresh, EAST) == {"stored": 1, "skipped": 0}
    assert store.embedding_backlog() == 0
    assert found(VectorIndex(), store, world["bob"]) == ["final"]


def test_a_ticket_of_a_message_deleted_since_its_claim_stores_nothing(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "regret")
    [item] = store.claim_embedding_work(10, 60)
    store.delete_message(world["bob"], message["id"])

    assert store.embedding_backlog() == 0
    assert answer(store, item, EAST) == {"stored": 0, "skipped": 1}
    assert store.vectors_after(world["conv"], MODEL, 0) == []


# --- deletions ---------------------------------------------------------------------------------------------

def test_deleting_a_message_conversation_or_workspace_deletes_its_vectors_and_queue_rows(
        store: Store, world: dict[str, str]) -> None:
    ann = world["ann"]
    ws2 = store.create_workspace(ann, "Second")["workspace"]["id"]
    world["conv2"] = store.create_conversation(ann, world["ws"], "Other")["conversation"]["id"]
    world["conv3"] = store.create_conversation(ann, ws2, "Elsewhere")["conversation"]["id"]
    embedded = {name: post(store, world, "ann", name, conv)["id"]
                for name, conv in (("keep", "conv"), ("m1", "conv"), ("m2", "conv2"), ("m3", "conv3"))}
    cat_message = post(store, world, "cat", "cat's", "cat_conv")["id"]
    embed(store, {message_id: EAST for message_id in [*embedded.values(), cat_message]})
    queued = {name: post(store, world, "ann", name, conv)["id"]
              for name, conv in (("q1", "conv"), ("q2", "conv2"), ("q3", "conv3"))}
    store.claim_embedding_work(256, 60)  # leased rows are deleted too
    index = VectorIndex()
    assert sorted(found(index, store, ann)) == ["keep", "m1", "m2", "m3"]
    assert store.embedding_backlog() == 3

    store.delete_message(ann, embedded["m1"])
    store.delete_message(ann, queued["q1"])
    assert sorted(found(index, store, ann)) == ["keep", "m2", "m3"]
    assert store.vector_versions(ann, MODEL)[world["conv"]][1] == 1
    assert store.embedding_backlog() == 2

    store.delete_conversation(ann, world["conv2"])
    assert sorted(found(index, store, ann)) == ["keep", "m3"]
    assert store.vectors_after(world["conv2"], MODEL, 0) == []
    assert store.embedding_backlog() == 1

    store.delete_workspace(ann, ws2)
    assert found(index, store, ann) == ["keep"]
    assert store.vectors_after(world["conv3"], MODEL, 0) == []
    assert store.embedding_backlog() == 0
    assert store.queue_missing_embeddings(MODEL) == 0  # the messages left kept their vectors
    assert found(index, store, world["cat"]) == ["cat's"]


# --- changes -----------------------------------------------------------------------------------------------

def test_changing_a_messages_content_drops_its_vector_at_once_and_queues_it_again(
        store: Store, world: dict[str, str]) -> None:
    changed, kept = post(store, world, "bob", "before"), post(store, world, "bob", "kept")
    embed(store, {changed["id"]: EAST, kept["id"]: NORTH})
    index = VectorIndex()
    assert found(index, store, world["bob"]) == ["before", "kept"]  # the index now holds both

    store.update_message(world["bob"], changed["id"], content="after")

    assert found(index, store, world["bob"]) == ["kept"]
    assert found(VectorIndex(), store, world["bob"]) == ["kept"]
    assert store.embedding_backlog() == 1
    [item] = store.claim_embedding_work(10, 60)
    assert (item.message_id, item.content) == (changed["id"], "after")
    assert answer(store, item, UP) == {"stored": 1, "skipped": 0}
    assert found(index, store, world["bob"], UP, limit=1) == ["after"]


def test_a_change_that_leaves_the_content_as_it_was_does_not_queue_it(store: Store, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "same words")
    embed(store, {message["id"]: EAST})
    index = VectorIndex()
    assert found(index, store, world["bob"]) == ["same words"]

    store.update_message(world["bob"], message["id"], metadata={"pinned": True})
    store.update_message(world["bob"], message["id"], content="same words")

    assert store.embedding_backlog() == 0
    assert store.claim_embedding_work(10, 60) == []
    hits = index.search(store, world["bob"], MODEL, EAST, 10)["results"]
    assert [(hit["content"], hit["metadata"], hit["score"]) for hit in hits] == [("same words", {"pinned": True}, 1.0)]


# --- who finds what ----------------------------------------------------------------------------------------

def test_search_finds_only_what_the_user_may_read_as_memberships_change(store: Store,
                                                                        world: dict[str, str]) -> None:
    ann, bob, cat, conv = world["ann"], world["bob"], world["cat"], world["conv"]
    private = store.create_conversation(ann, world["ws"], "Ann alone")["conversation"]["id"]
    messages = [post(store, world, "ann", "shared plans"), post(store, world, "bob", "bob's reply"),
                store.store_input(ann, private, "ann's diary")["message"],
                post(store, world, "cat", "cat's secret", "cat_conv")]
    embed(store, {message["id"]: EAST for message in messages})  # all equally near the query
    index = VectorIndex()

    assert sorted(found(index, store, ann)) == ["ann's diary", "bob's reply", "shared plans"]
    assert sorted(found(index, store, bob)) == ["bob's reply", "shared plans"]
    assert found(index, store, cat) == ["cat's secret"]
    for user, conversation in ((cat, conv), (bob, private), (bob, world["cat_conv"])):
        with pytest.raises(Forbidden):
            index.search(store, user, MODEL, EAST, 10, conversation)

    invitation = store.invite_participant(ann, conv, cat)["invitation"]
    assert found(index, store, cat) == ["cat's secret"]  # invited is not yet a member
    store.respond_invitation(cat, invitation["id"], accept=True)
    assert sorted(found(index, store, cat)) == ["bob's reply", "cat's secret", "shared plans"]
    assert sorted(found(index, store, cat, conversation_id=conv)) == ["bob's reply", "shared plans"]

    store.leave_conversation(cat, conv)
    store.remove_participant(ann, conv, bob)

    assert found(index, store, cat) == ["cat's secret"]  # the index still holds conv's vectors
    assert found(index, store, bob) == []
    for user in (cat, bob):
        with pytest.raises(Forbidden):
            index.search(store, user, MODEL, EAST, 10, conv)
    assert sorted(found(index, store, ann, conversation_id=conv)) == ["bob's reply", "shared plans"]


def test_each_of_the_searchs_two_access_checks_holds_by_itself(store: Store, world: dict[str, str]) -> None:
    """The search reads only conversations `vector_versions` lists and keeps only hits `readable_messages`
    returns: either alone must keep others' messages out."""
    ann_message, cat_message = post(store, world, "ann", "ann's"), post(store, world, "cat", "cat's", "cat_conv")
    embed(store, {ann_message["id"]: EAST, cat_message["id"]: EAST})
    both = [ann_message["id"], cat_message["id"], "no-such-message"]

    assert set(store.vector_versions(world["cat"], MODEL)) == {world["cat_conv"]}
    assert set(store.vector_versions(world["bob"], MODEL)) == {world["conv"]}
    assert store.vector_versions(world["bob"], "another-model") == {}
    assert [m["content"] for m in store.readable_messages(world["cat"], both)] == ["cat's"]
    assert [m["content"] for m in store.readable_messages(world["bob"], both)] == ["ann's"]
    store.remove_participant(world["ann"], world["conv"], world["bob"])
    assert store.vector_versions(world["bob"], MODEL) == {}
    assert store.readable_messages(world["bob"], both) == []


def test_an_unknown_user_or_conversation_is_not_found(store: Store, world: dict[str, str]) -> None:
    embed(store, {post(store, world, "ann", "hello")["id"]: EAST})
    index = VectorIndex()
    for conversation in (None, world["conv"]):
        with pytest.raises(NotFound) as raised:
            index.search(store, "ghost", MODEL, EAST, 10, conversation)
        assert raised.value.details == {"object": "user"}
    with pytest.raises(NotFound, match="conversation not found"):
        index.search(store, world["ann"], MODEL, EAST, 10, "no-such-conversation")


# --- models and dimensions ---------------------------------------------------------------------------------

def test_queue_missing_embeddings_queues_the_messages_without_a_vector_of_the_model(
        store: Store, world: dict[str, str]) -> None:
    ids = [post(store, world, "ann", f"m{n}")["id"] for n in range(3)]
    assert store.queue_missing_embeddings("old-model") == 0  # all three are queued already
    embed(store, {message_id: EAST for message_id in ids}, model="old-model")
    assert store.queue_missing_embeddings("old-model") == 0
    fresh = post(store, world, "ann", "fresh")["id"]

    assert store.queue_missing_embeddings(MODEL) == 3  # the fresh one is queued already
    assert store.embedding_backlog() == 4
    assert store.queue_missing_embeddings(MODEL) == 0
    claimed = [item.message_id for item in store.claim_embedding_work(256, 60)]
    assert claimed[0] == fresh and sorted(claimed[1:]) == sorted(ids)  # the backfill queues behind it


def test_a_search_finds_only_vectors_of_its_model(store: Store, world: dict[str, str]) -> None:
    old, new = post(store, world, "ann", "old model's"), post(store, world, "ann", "new model's")
    items = {item.message_id: item for item in store.claim_embedding_work(10, 60)}
    assert answer(store, items[old["id"]], EAST, model="old-model") == {"stored": 1, "skipped": 0}
    assert answer(store, items[new["id"]], [1.0, 0.0, 0.0, 0.0], model=MODEL) == {"stored": 1, "skipped": 0}
    index = VectorIndex()

    assert found(index, store, world["ann"], EAST, model="old-model") == ["old model's"]
    assert found(index, store, world["ann"], [1.0, 0.0, 0.0, 0.0]) == ["new model's"]
    assert found(index, store, world["ann"], EAST, model="no-such-model") == []


def test_a_query_of_another_size_than_the_models_vectors_is_invalid(store: Store, world: dict[str, str]) -> None:
    embed(store, {post(store, world, "ann", "three numbers")["id"]: EAST})
    cold, warm = VectorIndex(), VectorIndex()
    assert found(warm, store, world["ann"]) == ["three numbers"]

    for index in (cold, warm):
        for query in ([1.0, 0.0], [1.0, 0.0, 0.0, 0.0]):
            with pytest.raises(InvalidArguments):
                index.search(store, world["ann"], MODEL, query, 10)
    assert found(warm, store, world["ann"]) == ["three numbers"]  # the failed query spoiled nothing


# --- ranking and several processes -------------------------------------------------------------------------

def test_results_are_nearest_first_with_cosine_scores_and_at_most_limit(store: Store,
                                                                       world: dict[str, str]) -> None:
    vectors = {"same way": [2.0, 0.0, 0.0], "close": [0.8, 0.6, 0.0], "square": [0.0, 0.0, 5.0],
               "opposite": [-1.0, 0.0, 0.0], "leaning away": [-0.6, 0.8, 0.0]}
    embed(store, {post(store, world, "ann", content)["id"]: vector for content, vector in vectors.items()})
    index = VectorIndex()

    hits = index.search(store, world["bob"], MODEL, [3.0, 0.0, 0.0], 10)
    assert [(hit["content"], hit["score"]) for hit in hits["results"]] == pytest.approx(
        [("same way", 1.0), ("close", 0.8), ("square", 0.0), ("leaning away", -0.6), ("opposite", -1.0)])
    assert hits["count"] == 5
    limited = index.search(store, world["bob"], MODEL, [3.0, 0.0, 0.0], 2)
    assert ([hit["content"] for hit in limited["results"]], limited["count"]) == (["same way", "close"], 2)
    assert found(index, store, world["bob"], NORTH, limit=1) == ["leaning away"]


def test_two_processes_indexes_see_each_others_writes(store: Store, world: dict[str, str]) -> None:
    first, second = VectorIndex(), VectorIndex()
    one = post(store, world, "ann", "one")
    embed(store, {one["id"]: EAST})
    assert found(first, store, world["bob"]) == ["one"]
    assert found(second, store, world["bob"]) == ["one"]  # both copies warm

    two = post(store, world, "bob", "two")
    embed(store, {two["id"]: [0.9, 0.1, 0.0]})  # stored by a worker serving the first process
    assert found(second, store, world["bob"]) == ["one", "two"]
    assert found(first, store, world["bob"], limit=1) == ["one"]

    store.update_message(world["ann"], one["id"], content="one, revised")
    embed(store, {one["id"]: NORTH})  # replaced, and newer than either copy
    assert found(second, store, world["bob"], limit=1) == ["two"]
    assert found(first, store, world["bob"], NORTH) == ["one, revised", "two"]
    assert found(second, store, world["bob"], NORTH) == ["one, revised", "two"]


def test_a_small_cache_still_finds_everything(store: Store, world: dict[str, str]) -> None:
    other = store.create_conversation(world["ann"], world["ws"], "Other")["conversation"]["id"]
    embed(store, {post(store, world, "ann", "in conv")["id"]: EAST,
                  store.store_input(world["ann"], other, "in other")["message"]["id"]: [0.5, 0.5, 0.0]})
    index, unbounded = VectorIndex(max_bytes=1), VectorIndex()  # room for one conversation's copy at most

    for _ in range(2):
        assert found(index, store, world["ann"]) == ["in conv", "in other"]
    assert found(unbounded, store, world["ann"]) == ["in conv", "in other"]
    assert 0 < index.cached_bytes < unbounded.cached_bytes


# --- the worker tools --------------------------------------------------------------------------------------

def test_the_embedding_tools_round_trip(store: Store, world: dict[str, str]) -> None:
    tools = {tool.name: tool for tool in build_tools(store)}

    def call(name: str, **arguments: object) -> dict:
        tool = tools[name]
        return tool.func(tool.arguments.model_validate(arguments), CallContext())

    message = post(store, world, "bob", "via tools")
    assert call("embedding_backlog") == {"backlog": 1}
    [item] = call("claim_embedding_work", limit=5)["items"]
    assert item == {"ticket": item["ticket"], "message_id": message["id"], "content": "via tools"}
    claimed = {"ticket": item["ticket"], "message_id": message["id"]}
    with pytest.raises(InvalidArguments):  # one call's vectors are of one size
        call("store_embeddings", model=MODEL, items=[{**claimed, "vector": EAST}, {**claimed, "vector": [1.0, 0.0]}])
    assert store.embedding_backlog() == 1
    assert call("store_embeddings", model=MODEL, items=[{**claimed, "vector": EAST}]) == {"stored": 1, "skipped": 0}
    hits = call("search_similar", user_id=world["bob"], model=MODEL, vector=[0.5, 0.0, 0.0])
    assert [(hit["id"], hit["score"]) for hit in hits["results"]] == [(message["id"], 1.0)]
    assert call("queue_missing_embeddings", model="another-model") == {"queued": 1, "backlog": 1}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow and 0/0 on the way to NaN
@pytest.mark.parametrize("bad", [1e39, float("nan"), float("inf")], ids=["1e39", "nan", "inf"])
def test_a_vector_the_tools_accept_never_makes_a_score_outside_minus_one_to_one(
        store: Store, world: dict[str, str], bad: float) -> None:
    """docs/API.md: `score` is the cosine, -1 to 1. Each vector is either refused by the tools'
    validation or scored as a number in that range, whether it was stored or is the query."""
    tools = {tool.name: tool for tool in build_tools(store)}

    def call(name: str, **arguments: object) -> dict:
        tool = tools[name]
        return tool.func(tool.arguments.model_validate(arguments), CallContext())

    def refused(name: str, **arguments: object) -> bool:
        try:
            call(name, **arguments)
        except (ValidationError, InvalidArguments):
            return True
        return False

    message = post(store, world, "bob", "huge")
    [item] = call("claim_embedding_work")["items"]
    claimed = {"ticket": item["ticket"], "message_id": message["id"]}
    if refused("store_embeddings", model=MODEL, items=[{**claimed, "vector": [bad, 0.0, 0.0]}]):
        # then answer the ticket with a sound vector, to query against
        assert call("store_embeddings", model=MODEL, items=[{**claimed, "vector": EAST}])["stored"] == 1
    for query in ([1.0, 0.0, 0.0], [bad, 0.0, 0.0]):
        if refused("search_similar", user_id=world["bob"], model=MODEL, vector=query):
            continue
        scores = [hit["score"] for hit in call("search_similar", user_id=world["bob"], model=MODEL,
                                               vector=query)["results"]]
        assert scores and all(-1.0 <= score <= 1.0 for score in scores), scores
