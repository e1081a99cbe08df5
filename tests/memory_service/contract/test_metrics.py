"""What every backend reports about itself: each read and write transaction timed under its backend's name,
and the database's size."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from common import metrics
from common.errors import Conflict, NotFound
from memory_service.store import Store
from memory_service.store.sqlite import SqliteStore

TRANSACTIONS = "cortex_db_transaction_duration_seconds"


pytestmark = pytest.mark.usefixtures("metrics_on")


def backend_of(store: Store) -> str:
    return "sqlite" if isinstance(store, SqliteStore) else "postgresql"


def transactions(backend: str, kind: str) -> tuple[float, float]:
    """How many `kind` transactions `backend` recorded in this process so far, and their total seconds."""
    labels = {"backend": backend, "kind": kind}
    return (REGISTRY.get_sample_value(f"{TRANSACTIONS}_count", labels) or 0.0,
            REGISTRY.get_sample_value(f"{TRANSACTIONS}_sum", labels) or 0.0)


def test_a_write_and_a_read_are_each_timed_as_a_transaction(store: Store) -> None:
    backend = backend_of(store)
    writes, write_seconds = transactions(backend, "write")
    reads, _ = transactions(backend, "read")
    user = store.create_user("ann@example.com", "Ann", "hash")["user"]["id"]
    after_writes, after_write_seconds = transactions(backend, "write")
    assert after_writes >= writes + 1 and after_write_seconds > write_seconds
    assert store.get_user(user)["user"]["id"] == user
    assert transactions(backend, "read")[0] >= reads + 1


def test_a_transaction_that_fails_is_timed_too(store: Store) -> None:
    backend = backend_of(store)
    store.create_user("ann@example.com", "Ann", "hash")
    writes = transactions(backend, "write")[0]
    with pytest.raises(Conflict):
        store.create_user("ann@example.com", "Ann again", "hash")
    assert transactions(backend, "write")[0] > writes
    reads = transactions(backend, "read")[0]
    with pytest.raises(NotFound):
        store.get_user("nobody")
    assert transactions(backend, "read")[0] > reads


def test_health_checks_are_not_counted_as_transactions(store: Store) -> None:
    backend = backend_of(store)
    before = [transactions(backend, kind)[0] for kind in ("read", "write")]
    assert store.ping() is True
    assert [transactions(backend, kind)[0] for kind in ("read", "write")] == before


def test_nothing_is_recorded_with_metrics_off(store: Store) -> None:
    backend = backend_of(store)
    metrics.enable(False)
    before = [transactions(backend, kind)[0] for kind in ("read", "write")]
    user = store.create_user("ann@example.com", "Ann", "hash")["user"]["id"]
    store.get_user(user)
    assert [transactions(backend, kind)[0] for kind in ("read", "write")] == before


def test_the_database_reports_its_size_and_it_grows_with_data(store: Store) -> None:
    empty = store.size_bytes()
    assert isinstance(empty, int) and empty > 0
    user = store.create_user("ann@example.com", "Ann", "hash")["user"]["id"]
    workspace = store.create_workspace(user, "Home")["workspace"]["id"]
    conversation = store.create_conversation(user, workspace, "Notes")["conversation"]["id"]
    for n in range(200):
        store.store_input(user, conversation, f"message {n}: " + "words to take some room " * 40)
    assert store.size_bytes() > empty
