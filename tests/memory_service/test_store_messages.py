"""The Memory Service store: messages, conversation and history iteration, full-text search."""

from __future__ import annotations

import pytest

from common.errors import Conflict, Forbidden, InvalidArguments, NotFound
from memory_service import conversations, messages, participants, search, users, workspaces
from memory_service.db import Database, IdempotencyKey


@pytest.fixture
def world(db: Database) -> dict[str, str]:
    """ann owns a workspace with one conversation that bob takes part in; cat owns a separate one."""
    ann, bob, cat = (users.create_user(db, f"{n}@example.com", n, "pw")["user"]["id"]
                     for n in ("ann", "bob", "cat"))
    ws = workspaces.create_workspace(db, ann, "Home")["workspace"]["id"]
    created = conversations.create_conversation(db, ann, ws, "Plans", [bob])
    participants.respond_invitation(db, bob, created["invitations"][0]["id"], accept=True)
    conv = created["conversation"]["id"]
    cat_ws = workspaces.create_workspace(db, cat, "Cat's")["workspace"]["id"]
    cat_conv = conversations.create_conversation(db, cat, cat_ws, "Secret")["conversation"]["id"]
    return {"ann": ann, "bob": bob, "cat": cat, "ws": ws, "conv": conv, "cat_conv": cat_conv}


def post(db: Database, world: dict[str, str], who: str, content: str, conv: str = "conv") -> dict:
    return messages.store_input(db, world[who], world[conv], content)["message"]


# --- storing and reading ------------------------------------------------------------------------------------

def test_store_input_numbers_messages_per_conversation(db: Database, world: dict[str, str]) -> None:
    before = conversations.get_conversation(db, world["ann"], world["conv"])["conversation"]
    first = messages.store_input(db, world["bob"], world["conv"], "hello", metadata={"client": "cli"})
    assert first["status"] == "stored" and first["user_id"] == world["bob"] and first["sequence"] == 1
    message = first["message"]
    assert message["id"] == first["item_id"] and message["sender_id"] == world["bob"]
    assert (message["role"], message["content"], message["metadata"]) == ("user", "hello", {"client": "cli"})
    assert message["created_at"].endswith("+00:00")
    assert [post(db, world, "ann", t)["sequence"] for t in ("a", "b")] == [2, 3]
    assert post(db, world, "cat", "elsewhere", "cat_conv")["sequence"] == 1
    after = conversations.get_conversation(db, world["ann"], world["conv"])["conversation"]
    assert after["updated_at"] > before["updated_at"]


def test_stranger_cannot_post(db: Database, world: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        messages.store_input(db, world["cat"], world["conv"], "let me in")
    with pytest.raises(NotFound, match="conversation not found"):
        messages.store_input(db, world["ann"], "no-such-conversation", "hi")


def test_unknown_role_is_invalid(db: Database, world: dict[str, str]) -> None:
    with pytest.raises(InvalidArguments):
        messages.store_input(db, world["ann"], world["conv"], "hi", role="wizard")


def test_store_input_retry_with_same_key_stores_once(db: Database, world: dict[str, str]) -> None:
    key = IdempotencyKey("retry-1", "store_input", "fp")
    first = messages.store_input(db, world["ann"], world["conv"], "once", idempotency=key)
    assert messages.store_input(db, world["ann"], world["conv"], "once", idempotency=key) == first
    assert messages.list_messages(db, world["ann"], world["conv"])["count"] == 1
    with pytest.raises(Conflict):
        messages.store_input(db, world["ann"], world["conv"], "other",
                             idempotency=key._replace(fingerprint="x"))


@pytest.mark.parametrize("actor, may_read, may_change", [
    ("bob", True, True),     # the sender
    ("ann", True, True),     # the workspace owner
    ("cat", False, False),   # a stranger
])
def test_message_permissions(db: Database, world: dict[str, str], actor: str, may_read: bool,
                             may_change: bool) -> None:
    message_id = post(db, world, "bob", "original")["id"]
    calls = {
        "get": (may_read, lambda: messages.get_message(db, world[actor], message_id)),
        "update": (may_change,
                   lambda: messages.update_message(db, world[actor], message_id, content="edited")),
        "delete": (may_change, lambda: messages.delete_message(db, world[actor], message_id)),
    }
    for allowed, call in calls.values():
        if allowed:
            call()
        else:
            with pytest.raises(Forbidden):
                call()


def test_participant_who_is_not_the_sender_cannot_change_a_message(db: Database,
                                                                   world: dict[str, str]) -> None:
    message_id = post(db, world, "ann", "owner's words")["id"]
    assert messages.get_message(db, world["bob"], message_id)["message"]["content"] == "owner's words"
    with pytest.raises(Forbidden):
        messages.update_message(db, world["bob"], message_id, content="bob's words")
    with pytest.raises(Forbidden):
        messages.delete_message(db, world["bob"], message_id)


def test_update_message_changes_given_fields_and_the_search_index(db: Database,
                                                                  world: dict[str, str]) -> None:
    message = post(db, world, "bob", "walrus")
    updated = messages.update_message(db, world["bob"], message["id"], content="narwhal")["message"]
    assert (updated["content"], updated["sequence"], updated["metadata"]) == ("narwhal", 1, {})
    assert messages.update_message(db, world["bob"], message["id"], metadata={"a": 1})["message"]["content"] \
        == "narwhal"
    assert search.search_messages(db, world["bob"], "walrus")["count"] == 0
    assert search.search_messages(db, world["bob"], "narwhal")["count"] == 1


def test_deleted_message_is_gone_and_its_sequence_is_not_reused(db: Database,
                                                                 world: dict[str, str]) -> None:
    message = post(db, world, "bob", "oops")
    assert messages.delete_message(db, world["bob"], message["id"]) == {"deleted": True, "id": message["id"]}
    with pytest.raises(NotFound, match="message not found"):
        messages.get_message(db, world["bob"], message["id"])
    assert post(db, world, "bob", "again")["sequence"] == 2


def test_list_messages_is_chronological_after_a_sequence(db: Database, world: dict[str, str]) -> None:
    for n in range(1, 6):
        post(db, world, "ann", f"m{n}")
    page = messages.list_messages(db, world["bob"], world["conv"], after_sequence=2, limit=2)
    assert [m["content"] for m in page["messages"]] == ["m3", "m4"]
    assert (page["count"], page["conversation_id"]) == (2, world["conv"])
    with pytest.raises(Forbidden):
        messages.list_messages(db, world["cat"], world["conv"])


# --- iteration ---------------------------------------------------------------------------------------------

def test_iter_conversation_checks_access_before_iterating(db: Database, world: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        messages.iter_conversation(db, world["cat"], world["conv"])  # not iterated: must raise anyway
    with pytest.raises(NotFound):
        messages.iter_conversation(db, world["ann"], "no-such-conversation")


def test_iter_conversation_reads_every_message_in_pages(db: Database, world: dict[str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(1, 6):
        post(db, world, "ann", f"m{n}")
    reads = []
    real_read = db.read
    monkeypatch.setattr(db, "read", lambda fn: reads.append(1) or real_read(fn))
    items = list(messages.iter_conversation(db, world["bob"], world["conv"], page_size=2))
    assert [m["sequence"] for m in items] == [1, 2, 3, 4, 5]
    assert len(reads) == 1 + 3  # the access check, then pages of 2, 2 and 1


def test_iter_history_is_newest_first_over_readable_conversations(db: Database,
                                                                  world: dict[str, str]) -> None:
    own = conversations.create_conversation(db, world["bob"], workspaces.create_workspace(
        db, world["bob"], "Bob's")["workspace"]["id"], "Mine")["conversation"]["id"]
    post(db, world, "ann", "one")
    messages.store_input(db, world["bob"], own, "two")
    post(db, world, "cat", "hidden", "cat_conv")
    post(db, world, "bob", "three")
    history = list(messages.iter_history(db, world["bob"], page_size=2))
    assert [m["content"] for m in history] == ["three", "two", "one"]
    limited = messages.iter_history(db, world["bob"], limit=2, page_size=1)
    assert [m["content"] for m in limited] == ["three", "two"]
    assert list(messages.iter_history(db, world["bob"], limit=0)) == []
    assert messages.count_history(db, world["bob"]) == 3
    assert [m["content"] for m in messages.iter_history(db, world["cat"])] == ["hidden"]


def test_iter_history_follows_insert_order_not_the_clock(db: Database, world: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(["2030-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00", "2010-01-01T00:00:00+00:00"])
    monkeypatch.setattr(messages, "utc_now", lambda: next(clock))
    for text in ("first", "second", "third"):
        post(db, world, "ann", text)
    assert [m["content"] for m in messages.iter_history(db, world["ann"])] == ["third", "second", "first"]


# --- search ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("Hello world", ["hello", "world"]),
    ('a OR b "a"', ["a", "or", "b"]),
    ("col:x NEAR(y", ["col", "x", "near", "y"]),
    ("Zürich ÉCOLE", ["zurich", "ecole"]),
    ("Привет мир", ["привет", "мир"]),
    ('"', []),
    ("*", []),
    ("  ", []),
    ("(((", []),
])
def test_query_words_are_index_terms(query: str, expected: list[str]) -> None:
    assert search.terms(query) == expected


def test_a_query_keeps_at_most_64_words() -> None:
    assert len(search.terms(" ".join(f"w{n}" for n in range(200)))) == 64


@pytest.mark.parametrize("query", [
    '"', "*", "NEAR(", "AND", "a OR b", "(unbalanced", "col:x", "content:hello", "hello*", "^hello", "-hello",
    "'; DROP TABLE messages; --", "\x00", "🙂", "a" * 10_000, "hello world " * 900, "NOT", "OR OR OR",
])
def test_any_query_text_is_safe(db: Database, world: dict[str, str], query: str) -> None:
    post(db, world, "ann", "hello world and more")
    result = search.search_messages(db, world["ann"], query)
    assert result["query"] == query and result["count"] == len(result["results"])


@pytest.mark.parametrize("query", ["AND", '"hello', "OR", "Zürich", "zurich"])
def test_operator_words_are_searched_as_words(db: Database, world: dict[str, str], query: str) -> None:
    wanted = post(db, world, "ann", 'hello AND goodbye OR not, said the man from Zurich')
    post(db, world, "ann", "something else entirely")
    results = search.search_messages(db, world["bob"], query)["results"]
    assert [r["id"] for r in results] == [wanted["id"]]


def test_search_ranks_best_first_with_positive_scores(db: Database, world: dict[str, str]) -> None:
    post(db, world, "ann", "the weather is nice, lovely weather, weather all day")
    post(db, world, "ann", "a long note about many things, one of them the weather, and much more besides")
    post(db, world, "ann", "nothing relevant")
    results = search.search_messages(db, world["ann"], "weather")["results"]
    assert [r["content"][:11] for r in results] == ["the weather", "a long note"]
    assert results[0]["score"] > results[1]["score"] > 0
    assert set(results[0]) == {"id", "conversation_id", "sender_id", "role", "content", "metadata",
                               "sequence", "created_at", "score"}


def test_search_never_returns_other_users_messages(db: Database, world: dict[str, str]) -> None:
    post(db, world, "cat", "secret platypus", "cat_conv")
    mine = post(db, world, "bob", "public platypus")
    assert [r["id"] for r in search.search_messages(db, world["bob"], "platypus")["results"]] == [mine["id"]]
    assert search.search_messages(db, world["ann"], "platypus")["count"] == 1


def test_search_within_one_conversation_checks_access(db: Database, world: dict[str, str]) -> None:
    post(db, world, "cat", "secret platypus", "cat_conv")
    post(db, world, "ann", "platypus here too")
    result = search.search_messages(db, world["cat"], "platypus", conversation_id=world["cat_conv"])
    assert [r["content"] for r in result["results"]] == ["secret platypus"]
    with pytest.raises(Forbidden):
        search.search_messages(db, world["bob"], "platypus", conversation_id=world["cat_conv"])
    with pytest.raises(NotFound):
        search.search_messages(db, world["bob"], "platypus", conversation_id="no-such-conversation")


def test_query_without_words_returns_nothing(db: Database, world: dict[str, str]) -> None:
    post(db, world, "ann", "hello")
    assert search.search_messages(db, world["ann"], "?!*") == {"results": [], "count": 0, "query": "?!*",
                                                               "has_more": False, "next_offset": 0}


def test_search_finds_the_oldest_of_500_messages(db: Database, world: dict[str, str]) -> None:
    post(db, world, "ann", "the quokka smiled at dawn")
    for n in range(499):
        post(db, world, "bob", f"ordinary message number {n} about the day")
    results = search.search_messages(db, world["ann"], "what did the quokka do?", limit=3)["results"]
    assert results[0]["content"] == "the quokka smiled at dawn" and results[0]["sequence"] == 1
