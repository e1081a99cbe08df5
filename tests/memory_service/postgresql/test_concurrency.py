"""What PostgreSQL must hold across processes: schema set-up racing, per-conversation sequences and
idempotency keys under concurrent writers. Each writer here is a store of its own (its own pool and
sessions), as a second Memory process is to the server."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from memory_service.store import IdempotencyKey
from memory_service.store.postgresql import PostgresStore
from memory_service.store.postgresql.schema import SCHEMA_VERSION
from memory_service.store.sqlite import SqliteStore
from memory_service.store.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from tests.memory_service.worlds import readers_world


def together(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """`fn(0..count-1)` on `count` threads released at once."""
    start = threading.Barrier(count)

    def run(index: int) -> Any:
        start.wait()
        return fn(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def versions(url: str) -> list[tuple[int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version FROM schema_version").fetchall()


def test_stores_opening_a_fresh_schema_at_once_all_succeed_and_record_one_version(pg_url: str) -> None:
    stores = together(6, lambda _: PostgresStore(pg_url, pool_size=1))
    try:
        assert [store.db.schema_version_before for store in stores].count(0) == 1  # one created it
        assert versions(pg_url) == [(SCHEMA_VERSION,)]
        assert all(store.ping() for store in stores)
    finally:
        for store in stores:
            store.close()
    reopened = PostgresStore(pg_url, pool_size=1)
    assert reopened.db.schema_version_before == SCHEMA_VERSION
    reopened.close()


def test_sqlite_records_its_schema_version_too(tmp_path: Path) -> None:
    path = str(tmp_path / "memory.db")
    for store in together(4, lambda _: SqliteStore(path, pool_size=1)):
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SQLITE_SCHEMA_VERSION,)]


def test_concurrent_writers_on_two_stores_get_unique_gap_free_sequences(store: PostgresStore,
                                                                         pg_url: str) -> None:
    world = readers_world(store)
    other = PostgresStore(pg_url, pool_size=4)
    try:
        stores = (store, other)
        results = together(8, lambda i: [stores[i % 2].store_input(world["ann"], world["conv"], f"m{i}.{n}")
                                         for n in range(15)])
    finally:
        other.close()
    sequences = sorted(result["sequence"] for batch in results for result in batch)
    assert sequences == list(range(1, 121))
    listed = store.list_messages(world["ann"], world["conv"], limit=1000)["messages"]
    assert [m["sequence"] for m in listed] == list(range(1, 121))


def test_one_key_sent_to_two_stores_at_once_writes_once(store: PostgresStore, pg_url: str) -> None:
    world = readers_world(store)
    other = PostgresStore(pg_url, pool_size=4)
    try:
        stores = (store, other)
        for round_ in range(5):
            key = IdempotencyKey(f"race-{round_}", "store_input", "fp")
            results = together(6, lambda i, key=key: stores[i % 2].store_input(world["ann"], world["conv"], "once",
                                                                       idempotency=key))
            assert sorted(r["replayed"] for r in results) == [False] + [True] * 5
            assert len({r["item_id"] for r in results}) == 1
    finally:
        other.close()
    assert store.list_messages(world["ann"], world["conv"])["count"] == 5


def test_claims_race_across_stores_one_winner(store: PostgresStore, pg_url: str) -> None:
    world = readers_world(store)
    message = store.store_input(world["ann"], world["conv"], "reply to me")["message"]["id"]
    other = PostgresStore(pg_url, pool_size=4)
    try:
        stores = (store, other)
        claims = together(6, lambda i: stores[i % 2].claim_reply(world["ann"], message)["claimed"])
    finally:
        other.close()
    assert sorted(claims) == [False] * 5 + [True]


def test_a_version_1_database_is_upgraded_on_open_and_keeps_its_messages(pg_url: str, fast_hashing: None) -> None:
    store = PostgresStore(pg_url, pool_size=1)
    world = readers_world(store)
    first = store.store_input(world["ann"], world["conv"], "before the upgrade")["message"]
    store.close()
    # What version 1 was: the same tables without the store_input function.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION cortex_store_input")
        conn.execute("UPDATE schema_version SET version = 1")

    upgraded = PostgresStore(pg_url, pool_size=1)
    try:
        assert upgraded.db.schema_version_before == 1
        assert versions(pg_url) == [(SCHEMA_VERSION,)]
        second = upgraded.store_input(world["bob"], world["conv"], "after the upgrade")["message"]
        listed = upgraded.list_messages(world["ann"], world["conv"], 0, 10, False)["messages"]
        assert [(m["id"], m["sequence"]) for m in listed] == [(first["id"], 1), (second["id"], 2)]
    finally:
        upgraded.close()
