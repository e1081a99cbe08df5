"""PostgreSQL-only tests: each gets a schema of its own on the test server (skipped, with the reason, when
there is none; failed under CORTEX_REQUIRE_BACKENDS=1), dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memory_service.store.postgresql import PostgresStore
from tests.memory_service.backends import create_schema, drop_schema


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new empty schema (its search_path), dropped after the test."""
    schema, url = create_schema()
    yield url
    drop_schema(schema)


@pytest.fixture
def store(pg_url: str, fast_hashing: None) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_url)
    yield store
    store.close()
