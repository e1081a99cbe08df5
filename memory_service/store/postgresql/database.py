"""The PostgreSQL backend's database: a psycopg_pool of connections, transactions, idempotency, and what a
refused or lost connection becomes (a 503 `unavailable`, never a 500).

psycopg is cooperative under gevent when imported after monkey-patching, so unlike sqlite3 nothing here
goes through the threadpool: a query waiting on the server parks its greenlet and the hub serves others.

Round trips are what a call costs here, so the pooled connections are in autocommit: a read is its
statements and nothing else (no BEGIN, no ROLLBACK; under READ COMMITTED each statement had its own snapshot
inside a transaction too), and only a write opens a transaction. psycopg prepares a statement on a
connection once it has run it `prepare_threshold` (5) times; that stays on, so the hot queries are parsed
and planned once per connection (it would not survive a transaction-pooling pgbouncer, which is not used).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from common import metrics
from common.errors import ServiceUnavailable
from common.models import DEFAULT_MAX_METADATA_BYTES
from memory_service.store.idempotency import DEFAULT_TTL_SECONDS, IdempotencyKey
from memory_service.store.interface import StoreUnavailable
from memory_service.store.postgresql.idempotency import remembered
from memory_service.store.postgresql.schema import SchemaTooNew, ensure_schema
from memory_service.store.values import DEFAULT_PAGE_BYTES

T = TypeVar("T")
Connection = psycopg.Connection[dict[str, Any]]
log = logging.getLogger(__name__)

RETRIES = 3
"""Attempts of a transaction PostgreSQL rolled back to break a deadlock (nothing of it was stored)."""
BACKEND = "postgresql"
SIZE_TIMEOUT_SECONDS = 1.0
"""How long a scrape waits for a connection to read the database's size before it reports none."""


def one(cursor: Any) -> dict[str, Any]:
    """The row of a statement that always returns one (an INSERT ... RETURNING, a COUNT)."""
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("the statement returned no row")
    return dict(row)


def first_line(exc: BaseException) -> str:
    """An error's message as one line (libpq's span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    """A pool of connections to one PostgreSQL database (its schema from the URL's search_path)."""

    def __init__(self, url: str, pool_size: int = 8, *, pool_timeout: float = 5.0, connect_timeout: int = 5,
                 idempotency_ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES, max_page_bytes: int = DEFAULT_PAGE_BYTES,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.max_metadata_bytes = max_metadata_bytes
        self.max_page_bytes = max_page_bytes
        self._idempotency_ttl = timedelta(seconds=idempotency_ttl_seconds)
        self._clock = clock
        self._pool_timeout = pool_timeout
        try:
            # A direct connection first: a refused or misspelt URL fails now, with libpq's reason, instead
            # of the pool retrying in the background until a call times out.
            with psycopg.connect(url, connect_timeout=connect_timeout, autocommit=True,
                                 row_factory=dict_row) as conn:
                self.schema_version_before = ensure_schema(conn)
        except (psycopg.Error, SchemaTooNew) as exc:
            raise StoreUnavailable(f"PostgreSQL cannot be used: {first_line(exc)}") from None
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url, min_size=1, max_size=pool_size, timeout=pool_timeout, open=False,
            kwargs={"row_factory": dict_row, "connect_timeout": connect_timeout, "autocommit": True},
            name="cortex-memory")
        self.pool.open(wait=False)

    def _run(self, job: Callable[[Connection], T], timeout: float | None = None, kind: str | None = None) -> T:
        """`job(conn)` on a pooled connection (in autocommit), mapping what broke to the errors callers see.
        With a `kind` (read, write), each attempt's time on its connection is recorded as a transaction's; psycopg
        runs on the calling greenlet, so this records on the greenlet side."""
        for attempt in range(1, RETRIES + 1):
            try:
                with self.pool.connection(timeout=timeout or self._pool_timeout) as conn:
                    if kind is None:
                        return job(conn)
                    started = time.perf_counter()
                    try:
                        return job(conn)
                    finally:
                        metrics.transaction_finished(BACKEND, kind, time.perf_counter() - started)
            except psycopg.errors.TransactionRollback:  # a deadlock or serialisation victim: run again
                if attempt == RETRIES:
                    raise ServiceUnavailable("the database kept rolling this write back; try again") from None
            except PoolTimeout as exc:
                raise ServiceUnavailable(f"the database is unavailable: {first_line(exc)}") from None
            except psycopg.OperationalError as exc:
                raise ServiceUnavailable(f"the database is unavailable: {first_line(exc)}") from None
        raise AssertionError("unreachable")

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(conn)` outside a transaction: each statement reads its own snapshot, and a read of one
        statement is one round trip."""
        return self._run(fn, kind="read")

    lookup = read
    """A read of a few rows by key (SQLite has a cheaper path for these; here it is the same)."""

    def write(self, fn: Callable[[Connection], T], *, idempotency: IdempotencyKey | None = None,
              one_statement: bool = False) -> T:
        """Run `fn(conn)` in one transaction, rolled back if it raises. With an idempotency key, a completed
        request with the same key, on any process, replays its stored result without calling `fn`.

        `one_statement`: `fn` sends a single statement, atomic by itself; without a key it runs as its own
        transaction (one round trip instead of three, and its row locks end with it). psycopg's pipeline
        mode, which would also send BEGIN and COMMIT with the keyed write's statements, is not used: under
        gevent it waits for the socket to be readable or writable, and as it is always writable it spins
        (measured: 2.5 ms of CPU per keyed store_input instead of 0.5 ms)."""
        if idempotency is not None:
            key, ttl, inner = idempotency, self._idempotency_ttl, fn
            fn = lambda conn: remembered(conn, key, inner, self._clock(), ttl)  # noqa: E731
        elif one_statement:
            return self._run(fn, kind="write")

        def job(conn: Connection) -> T:
            with conn.transaction():
                return fn(conn)

        return self._run(job, kind="write")

    def ping(self) -> bool:
        """True when the database answers `SELECT 1` within two seconds."""
        try:
            return self._run(lambda conn: one(conn.execute("SELECT 1 AS one"))["one"] == 1, timeout=2.0)
        except Exception:  # noqa: BLE001 - a health check answers false, whatever broke
            return False

    def size_bytes(self) -> int:
        """The whole database's size on disk (`pg_database_size`: every schema in it, not only this store's);
        ServiceUnavailable when no connection is free within SIZE_TIMEOUT_SECONDS."""
        return int(self._run(lambda conn: one(conn.execute(
            "SELECT pg_database_size(current_database()) AS size"))["size"], timeout=SIZE_TIMEOUT_SECONDS))

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()
