"""The SQLite backend keeps Memory's data bounded and private: keys pruned and deleted with their object (as
rows), an old key table upgraded, 0600 files in a 0700 directory."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from memory_service.store import IdempotencyKey
from memory_service.store.sqlite import SqliteStore, conversations, messages, workspaces
from memory_service.store.sqlite.database import Database
from tests.memory_service.worlds import Clock, bounds_world


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, fast_hashing: None, clock: Clock) -> Iterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "var" / "memory.db"), clock=clock)
    yield store
    store.close()


@pytest.fixture
def db(store: SqliteStore) -> Database:
    return store.db


@pytest.fixture
def world(store: SqliteStore) -> dict[str, str]:
    return bounds_world(store)


def key_rows(db: Database) -> int:
    return db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM idempotency_keys").fetchone()[0])


def key(name: str, tool: str = "store_input") -> IdempotencyKey:
    return IdempotencyKey(name, tool, "fingerprint")


def replay_copies(db: Database, text: str) -> int:
    return db.read(lambda conn: conn.execute(
        "SELECT COUNT(*) FROM idempotency_keys WHERE result_json LIKE ?", (f"%{text}%",)).fetchone()[0])


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)



def test_expired_keys_are_pruned_as_new_keys_are_written(db: Database, world: dict, clock: Clock) -> None:
    for n in range(250):
        messages.store_input(db, world["ann"], world["conv"], f"m{n}", idempotency=key(f"old-{n}"))
    assert key_rows(db) == 250
    clock.now += timedelta(days=2)
    for n in range(3):
        messages.store_input(db, world["ann"], world["conv"], f"new {n}", idempotency=key(f"new-{n}"))
    assert key_rows(db) == 3



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
