from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_service.store.sqlite import SqliteStore
from memory_service.store.sqlite.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """The SQLite backend's bare database (schema, pool, transactions), without the store on top."""
    database = Database(str(tmp_path / "memory.db"))
    yield database
    database.close()


@pytest.fixture
def store(tmp_path: Path, fast_hashing: None) -> Iterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "store" / "memory.db"))
    yield store
    store.close()
