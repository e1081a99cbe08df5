"""`python -m memory_service.migrate`: a SQLite database built through the store, copied into a fresh
PostgreSQL schema and read back through the PostgreSQL store; a non-empty target is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from memory_service.store import IdempotencyKey
from memory_service.store.postgresql import PostgresStore
from memory_service.store.sqlite import SqliteStore
from tests.memory_service.worlds import readers_world

REPO = Path(__file__).resolve().parents[3]


def build_source(path: Path) -> tuple[dict[str, str], dict]:
    store = SqliteStore(str(path))
    world = readers_world(store)
    invited = store.create_user("dan@example.com", "dan", "hash-d")["user"]["id"]
    store.invite_participant(world["ann"], world["conv"], invited)
    key = IdempotencyKey("k-1", "store_input", "fp")
    first = store.store_input(world["ann"], world["conv"], "the harbour at dawn", idempotency=key)
    for text in ("lanterns by the harbour", "gone soon", "Café in Zürich"):
        store.store_input(world["bob"], world["conv"], text)
    store.delete_message(world["bob"], store.list_messages(world["bob"], world["conv"])["messages"][2]["id"])
    store.claim_reply(world["ann"], first["message"]["id"])
    store.store_input(world["cat"], world["cat_conv"], "cat's own")
    expected = {
        "history": list(store.iter_history(world["ann"])),
        "conversation": store.get_conversation(world["ann"], world["conv"]),
        "invitations": store.list_invitations(invited),
        "workspaces": store.list_workspaces(world["ann"], 10, 0),
        "login": store.find_login("bob@example.com"),
        "first": first,
    }
    store.close()
    return world, expected


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memory_service.migrate", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_migrate_copies_everything_and_keeps_ids_and_sequences(tmp_path: Path, pg_url: str,
                                                               fast_hashing: None) -> None:
    world, expected = build_source(tmp_path / "memory.db")
    out = run(f"sqlite:///{tmp_path}/memory.db", pg_url)
    assert out.returncode == 0, out.stderr
    assert "migrate: messages 4/4 copied" in out.stdout and "migrate: done" in out.stdout
    store = PostgresStore(pg_url)
    try:
        assert list(store.iter_history(world["ann"])) == expected["history"]
        assert store.get_conversation(world["ann"], world["conv"]) == expected["conversation"]
        assert store.list_invitations(expected["invitations"]["invitations"][0]["invitee_id"]) == expected[
            "invitations"]
        assert store.list_workspaces(world["ann"], 10, 0) == expected["workspaces"]
        assert store.find_login("bob@example.com") == expected["login"]
        key = IdempotencyKey("k-1", "store_input", "fp")
        replay = store.store_input(world["ann"], world["conv"], "the harbour at dawn", idempotency=key)
        assert replay["replayed"] and replay["item_id"] == expected["first"]["item_id"]
        assert store.claim_reply(world["ann"], expected["first"]["item_id"])["claimed"] is False
        assert store.search_messages(world["ann"], "zurich")["count"] == 1
        # New writes go on after the copied ones: the next sequence, and newest first in history.
        after = store.store_input(world["ann"], world["conv"], "after the move")
        assert after["sequence"] == 5
        assert next(store.iter_history(world["ann"]))["id"] == after["item_id"]
    finally:
        store.close()


def test_migrate_refuses_a_target_holding_data(tmp_path: Path, pg_url: str, fast_hashing: None) -> None:
    build_source(tmp_path / "memory.db")
    target = PostgresStore(pg_url)
    target.create_user("someone@example.com", "someone", "hash")
    target.close()
    out = run(f"sqlite:///{tmp_path}/memory.db", pg_url)
    assert out.returncode == 2
    assert out.stderr.strip() == ("migrate: refused: the target already holds data (1 users);"
                                  " migrate into an empty database or schema")


def test_migrate_refuses_a_missing_source(tmp_path: Path, pg_url: str) -> None:
    out = run(f"sqlite:///{tmp_path}/nothing.db", pg_url)
    assert out.returncode == 2 and "there is no SQLite database at" in out.stderr
    assert not (tmp_path / "nothing.db").exists()
