"""SQLite-only behaviour of messages and search: how reads are paged, insert order, the FTS5 terms."""

from __future__ import annotations

import pytest

from memory_service.store.sqlite import SqliteStore, search
from memory_service.store.sqlite import messages as sqlite_messages
from tests.memory_service.worlds import post, readers_world


@pytest.fixture
def world(store: SqliteStore) -> dict[str, str]:
    return readers_world(store)


def test_iter_conversation_reads_every_message_in_pages(store: SqliteStore, world: dict[str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(1, 6):
        post(store, world, "ann", f"m{n}")
    reads = []
    real_read = store.db.read
    monkeypatch.setattr(store.db, "read", lambda fn: reads.append(1) or real_read(fn))
    items = list(store.iter_conversation(world["bob"], world["conv"], page_size=2))
    assert [m["sequence"] for m in items] == [1, 2, 3, 4, 5]
    assert len(reads) == 1 + 3  # the access check, then pages of 2, 2 and 1


def test_iter_history_follows_insert_order_not_the_clock(store: SqliteStore, world: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(["2030-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00", "2010-01-01T00:00:00+00:00"])
    monkeypatch.setattr(sqlite_messages, "utc_now", lambda: next(clock))
    for text in ("first", "second", "third"):
        post(store, world, "ann", text)
    assert [m["content"] for m in store.iter_history(world["ann"])] == ["third", "second", "first"]


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


def test_delete_workspace_empties_the_messages_table_and_the_index(store: SqliteStore,
                                                                   world: dict[str, str]) -> None:
    post(store, world, "bob", "remember the zebra")
    store.delete_workspace(world["ann"], world["ws"])
    db = store.db
    assert db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]) == 0
    # The external-content FTS index must agree with the messages table.
    db.write(lambda conn: conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')"))


def test_claims_are_rows_deleted_with_their_message(store: SqliteStore, world: dict[str, str]) -> None:
    first, second = post(store, world, "bob", "one"), post(store, world, "bob", "two")
    store.claim_reply(world["bob"], first["id"])
    store.claim_reply(world["bob"], second["id"])

    def claims() -> int:
        return store.db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM reply_claims").fetchone()[0])

    assert claims() == 2
    store.delete_message(world["bob"], first["id"])
    assert claims() == 1
    store.delete_workspace(world["ann"], world["ws"])  # cascades: conversation, messages, claims
    assert claims() == 0


def test_a_database_from_before_claims_gets_the_table(store: SqliteStore, world: dict[str, str]) -> None:
    message = post(store, world, "bob", "stored before the upgrade")
    store.db.write(lambda conn: conn.execute("DROP TABLE reply_claims"))
    store.close()
    upgraded = SqliteStore(store.db.path)
    try:
        assert upgraded.claim_reply(world["bob"], message["id"])["claimed"] is True
        assert upgraded.claim_reply(world["bob"], message["id"])["claimed"] is False
    finally:
        upgraded.close()
