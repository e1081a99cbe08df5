"""Two Memory processes (gunicorn + gevent) on one PostgreSQL schema: concurrent writers on one
conversation through both get unique, gap-free sequences, and one idempotency key sent to both at once
stores one message. Skipped with the reason when no PostgreSQL answers (failed under
CORTEX_REQUIRE_BACKENDS=1)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.memory_service.backends import create_schema, drop_schema
from tests.system.test_memory_service import make_client, seed, store

APP = "memory_service.app:create_app()"


@pytest.fixture
def memories(spawn) -> Iterator[tuple]:
    schema, url = create_schema("cortex_system")
    env = {"DATABASE_URL": url, "SERVICE_TOKEN": "", "DB_POOL_SIZE": "4"}
    started = []
    try:
        # Started together, not one after the other, so they also race to create the schema.
        started = [spawn(APP, env, name, wait=False) for name in ("memory-a", "memory-b")]
        for proc in started:
            proc.wait_healthy()
        yield tuple(started)
    finally:
        for proc in started:  # before the schema goes, so no worker is left writing into nothing
            proc.stop()
        drop_schema(schema)


def test_writers_through_two_memory_processes_get_gap_free_sequences(memories) -> None:
    clients = [make_client(proc.url) for proc in memories]
    user_id, conv_id = seed(clients[0])
    with ThreadPoolExecutor(10) as pool:
        stored = list(pool.map(lambda i: store(clients[i % 2], user_id, conv_id, f"message {i}"), range(200)))
    assert sorted(s["sequence"] for s in stored) == list(range(1, 201))
    for client in clients:  # both read the same conversation, in order
        chronological = list(client.read_resource(f"conversation/{conv_id}", {"user_id": user_id}))
        assert [m["sequence"] for m in chronological] == list(range(1, 201))


def test_one_key_sent_to_both_processes_at_once_stores_one_message(memories) -> None:
    clients = [make_client(proc.url) for proc in memories]
    user_id, conv_id = seed(clients[0])

    def send(i: int, key: str, start: threading.Barrier) -> dict:
        start.wait()
        return store(clients[i % 2], user_id, conv_id, "exactly once", key=key)

    for round_ in range(10):
        key, start = f"both-{round_:04d}", threading.Barrier(4)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: send(i, key, start), range(4)))  # noqa: B023 - used at once
        assert len({r["item_id"] for r in results}) == 1
        assert sorted(r["replayed"] for r in results) == [False, True, True, True]
    listed = clients[1].call_tool("list_messages", {"user_id": user_id, "conversation_id": conv_id})
    assert [m["sequence"] for m in listed["messages"]] == list(range(1, 11))


def test_a_memory_process_on_postgresql_stops_cleanly(memories) -> None:
    """Its pool is closed by the worker on exit, not torn down by the interpreter with a traceback."""
    memory_a, _ = memories
    assert memory_a.stop() == 0
    log = memory_a.log_text()
    assert "Worker exiting" in log
    assert "Traceback" not in log, memory_a.log_tail()
