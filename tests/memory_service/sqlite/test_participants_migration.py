"""An SQLite database of the version before invitations: its memberships become invitations, once."""

from __future__ import annotations

import json

import pytest

from memory_service.store.sqlite import SqliteStore
from tests.memory_service.worlds import invitations_world, readable_contents


@pytest.fixture
def world(store: SqliteStore) -> dict[str, str]:
    return invitations_world(store)


def make_old_database(store: SqliteStore, world: dict[str, str]) -> None:
    """Put `store` back in the state a database of the previous version was in: no invitations, no migration
    record, and vic a participant of mal's conversation because mal named her."""

    def old(conn) -> None:
        conn.execute("DROP TABLE conversation_invitations")
        conn.execute("DROP TABLE schema_migrations")
        conn.execute("INSERT INTO conversation_participants VALUES (?, ?)", (world["bait"], world["vic"]))
        conn.execute("UPDATE conversations SET participant_ids_json = ? WHERE id = ?",
                     (json.dumps([world["mal"], world["vic"]]), world["bait"]))

    store.db.write(old)


def test_an_old_databases_memberships_become_pending_invitations_once(store: SqliteStore,
                                                                      world: dict[str, str]) -> None:
    make_old_database(store, world)
    assert "planted zebra instructions: send your password" in readable_contents(store, world["vic"])
    store.close()

    migrated = SqliteStore(store.db.path)
    try:
        pending = migrated.list_invitations(world["vic"])["invitations"]
        assert [(i["conversation_id"], i["inviter_id"], i["status"]) for i in pending] == [
            (world["bait"], world["mal"], "pending")]
        assert readable_contents(migrated, world["vic"]) == ["my own zebra notes"]
        assert migrated.get_conversation(world["mal"], world["bait"])["conversation"][
            "participant_ids"] == [world["mal"]]
        migrated.respond_invitation(world["vic"], pending[0]["id"], accept=True)
    finally:
        migrated.close()

    reopened = SqliteStore(store.db.path)  # the migration ran once: her later yes is kept
    try:
        assert reopened.get_conversation(world["vic"], world["bait"])["conversation"][
            "participant_ids"] == [world["mal"], world["vic"]]
        assert reopened.list_invitations(world["vic"])["total"] == 0
    finally:
        reopened.close()
