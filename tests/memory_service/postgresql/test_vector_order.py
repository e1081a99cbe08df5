"""PostgreSQL hands out an identity value before commit, so vector seqs are a per-conversation counter taken
under its row's lock (SQLite commits one write at a time, so its seqs are visible in order already)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from memory_service.store.postgresql import PostgresStore
from memory_service.store.vectors import VectorIndex
from tests.memory_service.contract.test_vectors import EAST, NORTH, UP, answer, embed, found
from tests.memory_service.worlds import post, readers_world


@pytest.fixture
def world(store: PostgresStore) -> dict[str, str]:
    return readers_world(store)


def test_a_copy_is_not_fooled_by_a_late_commit_and_a_deletion(store: PostgresStore, world: dict[str, str]) -> None:
    """Two workers store vectors in one conversation at once. Were seqs handed out before commit (an
    identity column), worker A could take S1, worker B S2 > S1 and commit first; a search between the two
    commits would copy the conversation up to S2 without A's row, and after a vector deletion the
    database's (max seq, count) would equal the copy's again. The seq is the conversation's counter, taken
    under its row's lock, so B waits for A and rows become visible in seq order."""
    db, bob = store.db, world["bob"]
    changed = post(store, world, "bob", "before")
    embed(store, {changed["id"]: EAST})
    late, other = post(store, world, "bob", "late"), post(store, world, "bob", "other")
    items = {item.message_id: item for item in store.claim_embedding_work(10, 60)}
    # Worker A is slowed down between taking its seq and committing: its vector's insert waits on the
    # unique key of a row this transaction has written and not committed (and then rolls back); a batch of
    # 256 vectors has the same gap naturally.
    holder_pid: list[int] = []
    locked, release = threading.Event(), threading.Event()

    class RolledBack(Exception):
        pass

    def hold(conn: Any) -> None:
        conn.execute("INSERT INTO message_vectors (message_id, conversation_id, model, seq, vector)"
                     " VALUES (%s, %s, 'holder', 0, ''::bytea)", (late["id"], late["conversation_id"]))
        holder_pid.append(conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
        locked.set()
        release.wait(10)
        raise RolledBack

    def hold_and_roll_back() -> None:
        try:
            db.write(hold)
        except RolledBack:
            pass

    def blocked() -> int:
        return db.read(lambda conn: conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (holder_pid[0],)).fetchone()["n"])

    holder = threading.Thread(target=hold_and_roll_back)
    holder.start()
    assert locked.wait(5)
    a_result: list[dict] = []
    worker_a = threading.Thread(target=lambda: a_result.append(answer(store, items[late["id"]], NORTH)))
    worker_a.start()
    deadline = time.monotonic() + 5
    while not blocked():  # A has its seq and waits
        assert time.monotonic() < deadline, "worker A never reached its insert"
        time.sleep(0.01)
    b_result: list[dict] = []
    worker_b = threading.Thread(target=lambda: b_result.append(answer(store, items[other["id"]], UP)))
    try:
        worker_b.start()
        time.sleep(0.3)
        assert b_result == []  # B waits behind A for the conversation's counter
        index = VectorIndex()
        assert sorted(found(index, store, bob)) == ["before"]  # the copy: neither row is visible yet
    finally:
        release.set()
        holder.join(5)
        worker_a.join(5)
        worker_b.join(5)
    assert a_result == b_result == [{"stored": 1, "skipped": 0}]

    store.update_message(bob, changed["id"], content="after")  # its vector goes: (S2, 2) as in the copy

    assert found(VectorIndex(), store, bob, NORTH) == ["late", "other"]  # the database is right
    assert found(index, store, bob, NORTH) == ["late", "other"]  # the warm copy: ["after", "other"]
