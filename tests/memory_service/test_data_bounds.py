"""What Memory keeps and hands out is bounded and private: metadata size, page bytes, search statistics
over the caller's own messages, idempotency keys that expire and die with their object, 0600 files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.errors import PayloadTooLarge
from memory_service import conversations, messages, search, users, workspaces
from memory_service.db import Database, IdempotencyKey

METADATA_BYTES = 16 * 1024
PAGE_BYTES = 512 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path, fast_hashing: None, clock: Clock):
    database = Database(str(tmp_path / "var" / "memory.db"), clock=clock, max_page_bytes=PAGE_BYTES)
    yield database
    database.close()


@pytest.fixture
def world(db: Database) -> dict[str, str]:
    ann, bob = (users.create_user(db, f"{name}@example.com", name, "correct horse")["user"]["id"]
                for name in ("ann", "bob"))
    ws = workspaces.create_workspace(db, ann, "Home")["workspace"]["id"]
    conv = conversations.create_conversation(db, ann, ws, "Plans")["conversation"]["id"]
    bob_ws = workspaces.create_workspace(db, bob, "Elsewhere")["workspace"]["id"]
    bob_conv = conversations.create_conversation(db, bob, bob_ws, "Own")["conversation"]["id"]
    return {"ann": ann, "bob": bob, "ws": ws, "conv": conv, "bob_conv": bob_conv}


def metadata_of(size: int) -> dict[str, str]:
    """An object whose JSON is exactly `size` bytes."""
    return {"k": "x" * (size - len('{"k": ""}'))}


def key_rows(db: Database) -> int:
    return db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM idempotency_keys").fetchone()[0])


# --- metadata ----------------------------------------------------------------------------------------------

def test_metadata_up_to_the_limit_is_stored_and_one_byte_more_is_413(db: Database, world: dict) -> None:
    stored = messages.store_input(db, world["ann"], world["conv"], "hi", metadata=metadata_of(METADATA_BYTES))
    assert len(json.dumps(stored["message"]["metadata"])) == METADATA_BYTES
    too_big = metadata_of(METADATA_BYTES + 1)
    for write in (
        lambda: messages.store_input(db, world["ann"], world["conv"], "hi", metadata=too_big),
        lambda: messages.update_message(db, world["ann"], stored["item_id"], metadata=too_big),
        lambda: workspaces.create_workspace(db, world["ann"], "Big", metadata=too_big),
        lambda: conversations.create_conversation(db, world["ann"], world["ws"], "Big", metadata=too_big),
        lambda: conversations.update_conversation(db, world["ann"], world["conv"], metadata=too_big),
    ):
        with pytest.raises(PayloadTooLarge) as error:
            write()
        assert error.value.status == 413 and error.value.details["max_bytes"] == METADATA_BYTES


def test_escaped_characters_count_as_the_bytes_they_take(db: Database, world: dict) -> None:
    # 3,000 emoji are 3,000 characters but 36,000 bytes of JSON.
    with pytest.raises(PayloadTooLarge):
        messages.store_input(db, world["ann"], world["conv"], "hi", metadata={"k": "🙂" * 3000})


# --- pages in bytes ----------------------------------------------------------------------------------------

@pytest.fixture
def heavy(db: Database, world: dict) -> list[str]:
    """60 messages of ~32 KB content and 16 KiB metadata each (about 3 MB): several pages' worth."""
    return [messages.store_input(db, world["ann"], world["conv"], f"walrus {n} " + "w" * 32_000,
                                 metadata=metadata_of(METADATA_BYTES))["item_id"] for n in range(60)]


def test_message_pages_stay_under_the_budget_and_paging_returns_each_once(db: Database, world: dict,
                                                                           heavy: list[str]) -> None:
    seen, after, pages = [], 0, 0
    while True:
        page = messages.list_messages(db, world["ann"], world["conv"], after_sequence=after, limit=1000)
        assert len(json.dumps(page)) <= PAGE_BYTES
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        if not page["has_more"]:
            break
        assert page["count"] > 0 and page["next_after_sequence"] > after
        after = page["next_after_sequence"]
    assert seen == heavy and pages > 3


def test_latest_page_keeps_the_newest_that_fit(db: Database, world: dict, heavy: list[str]) -> None:
    page = messages.list_messages(db, world["ann"], world["conv"], limit=1000, latest=True)
    assert page["has_more"] is True and len(json.dumps(page)) <= PAGE_BYTES
    assert [m["id"] for m in page["messages"]] == heavy[-page["count"]:]


def test_small_pages_are_cut_by_count_as_before(db: Database, world: dict) -> None:
    ids = [messages.store_input(db, world["ann"], world["conv"], f"m{n}")["item_id"] for n in range(5)]
    page = messages.list_messages(db, world["ann"], world["conv"], limit=3)
    assert [m["id"] for m in page["messages"]] == ids[:3] and page["has_more"] is True
    rest = messages.list_messages(db, world["ann"], world["conv"], after_sequence=page["next_after_sequence"])
    assert [m["id"] for m in rest["messages"]] == ids[3:] and rest["has_more"] is False


def test_streamed_conversation_and_history_return_everything_once(db: Database, world: dict,
                                                                   heavy: list[str]) -> None:
    assert [m["id"] for m in messages.iter_conversation(db, world["ann"], world["conv"])] == heavy
    history = [m["id"] for m in messages.iter_history(db, world["ann"])]
    assert history == heavy[::-1] and all("_seq" not in m for m in messages.iter_history(db, world["ann"], 3))
    assert [m["id"] for m in messages.iter_history(db, world["ann"], limit=7)] == heavy[::-1][:7]


def test_search_pages_stay_under_the_budget_and_offsets_return_each_once(db: Database, world: dict,
                                                                         heavy: list[str]) -> None:
    seen, offset = [], 0
    while True:
        page = search.search_messages(db, world["ann"], "walrus", limit=1000, offset=offset)
        assert len(json.dumps(page)) <= PAGE_BYTES and page["count"] > 0
        seen += [hit["id"] for hit in page["results"]]
        if not page["has_more"]:
            break
        offset = page["next_offset"]
    assert sorted(seen) == sorted(heavy) and len(seen) == len(set(seen))


# --- search statistics -------------------------------------------------------------------------------------

def test_search_results_do_not_depend_on_other_users_messages(db: Database, world: dict) -> None:
    for text in ("the harbour at dawn", "harbour lights and a harbour wall", "a lantern by the harbour",
                 "nothing to see", "lantern lantern"):
        messages.store_input(db, world["ann"], world["conv"], text)

    def ann_sees() -> list[dict]:
        return [search.search_messages(db, world["ann"], query, limit=50, conversation_id=scope)
                for query in ("harbour", "harbour lantern", "dawn wall") for scope in (None, world["conv"])]

    before = ann_sees()
    for n in range(300):  # another user's messages full of the same words, and of all lengths
        messages.store_input(db, world["bob"], world["bob_conv"], "harbour " * (n % 7 + 1) + "lantern" * (n % 2))
    assert ann_sees() == before
    assert before[0]["count"] == 3 and all(hit["score"] > 0 for hit in before[0]["results"])


def test_search_ranks_by_the_callers_own_statistics(db: Database, world: dict) -> None:
    # In ann's messages "harbour" is common and "lantern" rare, so the rare word weighs more, however
    # often "lantern" occurs in messages of bob's that she cannot read.
    for text in ("harbour harbour harbour", "harbour one", "harbour two", "lantern"):
        messages.store_input(db, world["ann"], world["conv"], text)
    for number in range(30):
        messages.store_input(db, world["bob"], world["bob_conv"], f"lantern {number}")
    best = search.search_messages(db, world["ann"], "harbour lantern")["results"][0]
    assert best["content"] == "lantern"


def test_search_folds_case_and_accents_as_the_index_does(db: Database, world: dict) -> None:
    messages.store_input(db, world["ann"], world["conv"], "Ein Café in Zürich, привет МИР, λόγος, İstanbul")
    for query in ("cafe", "CAFÉ", "zurich", "Привет", "мир", "λόγος", "ΛΌΓΟΣ", "istanbul", "İSTANBUL"):
        assert search.search_messages(db, world["ann"], query)["count"] == 1, query


# --- idempotency keys --------------------------------------------------------------------------------------

def key(name: str, tool: str = "store_input") -> IdempotencyKey:
    return IdempotencyKey(name, tool, "fingerprint")


def test_a_key_replays_within_a_day_and_stores_again_after(db: Database, world: dict, clock: Clock) -> None:
    first = messages.store_input(db, world["ann"], world["conv"], "once", idempotency=key("k1"))
    clock.now += timedelta(hours=23)
    assert messages.store_input(db, world["ann"], world["conv"], "once", idempotency=key("k1")) == first
    clock.now += timedelta(hours=2)
    again = messages.store_input(db, world["ann"], world["conv"], "once", idempotency=key("k1"))
    assert again["item_id"] != first["item_id"] and again["sequence"] == first["sequence"] + 1
    assert messages.store_input(db, world["ann"], world["conv"], "once", idempotency=key("k1")) == again


def test_expired_keys_are_pruned_as_new_keys_are_written(db: Database, world: dict, clock: Clock) -> None:
    for n in range(250):
        messages.store_input(db, world["ann"], world["conv"], f"m{n}", idempotency=key(f"old-{n}"))
    assert key_rows(db) == 250
    clock.now += timedelta(days=2)
    for n in range(3):
        messages.store_input(db, world["ann"], world["conv"], f"new {n}", idempotency=key(f"new-{n}"))
    assert key_rows(db) == 3


def replay_copies(db: Database, text: str) -> int:
    return db.read(lambda conn: conn.execute(
        "SELECT COUNT(*) FROM idempotency_keys WHERE result_json LIKE ?", (f"%{text}%",)).fetchone()[0])


def test_deleting_a_message_deletes_its_replay_copies(db: Database, world: dict) -> None:
    stored = messages.store_input(db, world["ann"], world["conv"], "secret one", idempotency=key("s1"))
    messages.update_message(db, world["ann"], stored["item_id"], content="secret two",
                            idempotency=key("u1", "update_message"))
    assert replay_copies(db, "secret") == 2
    messages.delete_message(db, world["ann"], stored["item_id"], idempotency=key("d1", "delete_message"))
    assert replay_copies(db, "secret") == 0
    # A retry of the deleted message's store runs again (the copy it would replay is gone).
    assert messages.store_input(db, world["ann"], world["conv"], "secret one",
                                idempotency=key("s1"))["item_id"] != stored["item_id"]


@pytest.mark.parametrize("delete", ["conversation", "workspace"])
def test_deleting_a_conversation_or_workspace_deletes_replay_copies(db: Database, world: dict,
                                                                     delete: str) -> None:
    conv = conversations.create_conversation(db, world["ann"], world["ws"], "Private topic",
                                             idempotency=key("c1", "create_conversation"))["conversation"]
    for n in range(3):
        messages.store_input(db, world["ann"], conv["id"], f"secret {n}", idempotency=key(f"s{n}"))
    assert replay_copies(db, "secret") == 3 and replay_copies(db, "Private topic") == 1
    if delete == "conversation":
        conversations.delete_conversation(db, world["ann"], conv["id"])
    else:
        workspaces.delete_workspace(db, world["ann"], world["ws"])
    assert replay_copies(db, "secret") == 0 and replay_copies(db, "Private topic") == 0


def test_a_database_from_before_key_expiry_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, tool TEXT NOT NULL, fingerprint TEXT"
                 " NOT NULL, result_json TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID")
    conn.execute("INSERT INTO idempotency_keys VALUES ('k', 't', 'f', '{}', '2020-01-01T00:00:00+00:00')")
    conn.commit()
    conn.close()
    db = Database(str(path))
    try:
        columns = db.read(lambda c: [row[1] for row in c.execute("PRAGMA table_info(idempotency_keys)")])
        assert "subject_id" in columns
        assert db.write(lambda c: None, idempotency=IdempotencyKey("new", "t", "f")) is None
        assert key_rows(db) == 1  # the 2020 key was pruned by the new one
    finally:
        db.close()


# --- file modes --------------------------------------------------------------------------------------------

def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_files_and_new_directory_are_private(db: Database, world: dict, tmp_path: Path) -> None:
    messages.store_input(db, world["ann"], world["conv"], "in the WAL")
    base = tmp_path / "var" / "memory.db"
    assert {name: mode(Path(f"{base}{name}")) for name in ("", "-wal", "-shm")} == dict.fromkeys(
        ("", "-wal", "-shm"), 0o600)
    assert mode(tmp_path / "var") == 0o700


def test_a_world_readable_database_is_tightened_on_start(tmp_path: Path) -> None:
    path = tmp_path / "loose.db"
    Database(str(path)).close()
    os.chmod(path, 0o644)
    Database(str(path)).close()
    assert mode(path) == 0o600


# --- through the tool endpoint -----------------------------------------------------------------------------

def test_the_tool_answers_413_in_the_one_error_shape_and_the_limit_is_a_setting(tmp_path: Path) -> None:
    from memory_service.app import create_app

    client = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/m.db", "SERVICE_TOKEN": "",
                         "MAX_METADATA_BYTES": "100"}).test_client()

    def call(tool: str, **arguments):
        return client.post(f"/tool/{tool}", json={"arguments": arguments})

    user = call("create_user", email="a@example.com", name="A", password="password1").json["result"]["user"]
    assert call("create_workspace", user_id=user["id"], name="W", metadata=metadata_of(100)).status_code == 200
    response = call("create_workspace", user_id=user["id"], name="W", metadata=metadata_of(101))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert response.json["error"]["details"] == {"field": "metadata", "bytes": 101, "max_bytes": 100}
