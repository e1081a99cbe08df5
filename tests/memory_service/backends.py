"""The storage backends the contract suite runs against, and how a test opens a fresh store on each.

Adding a backend to the suite is one entry in OPENERS (and its skip when its engine is unreachable).
PostgreSQL stores each live in a schema of their own (`cortex_test_<random>`, named by the URL's
search_path), dropped when the store is closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from memory_service.store import Store
from memory_service.store.sqlite import SqliteStore
from tests.engines import postgres_url, require_engine


def schema_url(url: str, schema: str) -> str:
    """`url` with its connections' search_path set to `schema` (libpq's `options`)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}', safe='')}"


def create_schema(prefix: str = "cortex_test") -> tuple[str, str]:
    """A new empty schema on the test PostgreSQL (skipping the test when there is none): (name, URL)."""
    import psycopg

    url = require_engine("PostgreSQL", postgres_url())
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, schema_url(url, schema)


def drop_schema(schema: str) -> None:
    """Drop a schema `create_schema` made, with everything in it."""
    import psycopg

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _open_postgresql(directory: Path, **options: Any) -> Store:
    from memory_service.store.postgresql import PostgresStore

    class SchemaStore(PostgresStore):
        """A store in a schema of its own, dropped on close."""

        def close(self) -> None:
            super().close()
            drop_schema(schema)

    schema, url = create_schema()
    try:
        return SchemaStore(url, **options)
    except BaseException:
        drop_schema(schema)
        raise


OPENERS: dict[str, Callable[..., Store]] = {
    "sqlite": lambda directory, **options: SqliteStore(str(directory / "memory.db"), **options),
    "postgresql": _open_postgresql,
}
BACKENDS = list(OPENERS)


def open_test_store(backend: str, directory: Path, **options: Any) -> Store:
    """A new, empty store of `backend` holding its data under `directory` (a backend on a server uses a
    database of its own); `options` are the backend's keyword settings (clock, max_page_bytes, limits ...)."""
    return OPENERS[backend](directory, **options)
