"""The SQLite backend's database: connection pool, schema creation, transactions and idempotency.

sqlite3 calls block the gevent hub, so under monkey-patching every transaction runs in gevent's native
threadpool while the pool of connections is managed on the greenlet side.
"""

from __future__ import annotations

import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import gevent

from common.models import DEFAULT_MAX_METADATA_BYTES
from memory_service.blocking import captured, patched, run_blocking, unwrap
from memory_service.store.idempotency import DEFAULT_TTL_SECONDS, IdempotencyKey
from memory_service.store.sqlite.idempotency import remembered
from memory_service.store.sqlite.schema import ADDED_COLUMNS, SCHEMA, SCHEMA_AFTER_COLUMNS
from memory_service.store.sqlite.timing import Stopwatch
from memory_service.store.sqlite.writes import GroupCommitter
from memory_service.store.values import DEFAULT_PAGE_BYTES

T = TypeVar("T")


def create_private(path: str) -> None:
    """Make sure the database file exists readable by its owner only; SQLite gives its -wal and -shm
    files the database file's mode, so they are private too. A directory we create is private as well.

    A database left world-readable by an older version is tightened on start.
    """
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError:  # another user's file: its owner decides who may read it
            pass


def _transaction(conn: sqlite3.Connection, begin: str, fn: Callable[[sqlite3.Connection], T],
                 commit: bool, watch: Stopwatch | None = None) -> T:
    if watch is not None:
        watch.start()
    conn.execute(begin)
    try:
        result = fn(conn)
        conn.execute("COMMIT" if commit else "ROLLBACK")
        return result
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        if watch is not None:
            watch.stop()


OPEN_WAIT_SECONDS = 30.0


class Database:
    """A pool of SQLite connections to one database file, with short read and write transactions."""

    def __init__(self, path: str, pool_size: int = 8, synchronous: str = "normal", *,
                 idempotency_ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES, max_page_bytes: int = DEFAULT_PAGE_BYTES,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if synchronous not in ("normal", "full"):
            raise ValueError("synchronous must be normal or full")
        self.path = path
        self.max_metadata_bytes = max_metadata_bytes
        self.max_page_bytes = max_page_bytes
        self._idempotency_ttl = timedelta(seconds=idempotency_ttl_seconds)
        self._clock = clock
        self._synchronous = synchronous.upper()
        self._pool_size = pool_size
        # LIFO keeps the few hot connections in use and lets idle ones stay idle.
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue(maxsize=pool_size)
        self._lock = threading.Lock()
        self._writes = GroupCommitter(self._run)
        self._created = 0
        self._closed = False
        create_private(path)
        self._run(self._opening(self._create_schema))

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves instead of sqlite3's implicit transactions.
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        try:
            conn.execute("SELECT ln(1)")
        except sqlite3.OperationalError:  # an SQLite built without its math functions; search needs ln()
            conn.create_function("ln", 1, math.log, deterministic=True)
        return conn

    @staticmethod
    def _opening(step: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
        """`step`, tried again while the file stays locked past the busy timeout: processes (or stores) opening
        one new database together each wait for the others' schema transactions, which on a loaded machine
        can outlast the 5 s one wait allows. Gives up after OPEN_WAIT_SECONDS."""

        def attempts(conn: sqlite3.Connection) -> None:
            deadline = time.monotonic() + OPEN_WAIT_SECONDS
            while True:
                try:
                    return step(conn)
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(0.05)

        return attempts

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        # One transaction, so processes starting together never see half a schema. executescript commits
        # whatever is pending before it runs, so the transaction has to live inside the script.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}")
            for table, column, kind in ADDED_COLUMNS:
                if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            for statement in SCHEMA_AFTER_COLUMNS:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _acquire(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("database is closed")
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._created < self._pool_size
            if create:
                self._created += 1
        if not create:
            return self._pool.get()
        try:
            return run_blocking(self._connect)
        except BaseException:
            with self._lock:
                self._created -= 1
            raise

    def _release(self, conn: sqlite3.Connection) -> None:
        # A connection stuck in a transaction would poison the next caller; drop it and open another later.
        if not self._closed and not conn.in_transaction:
            self._pool.put_nowait(conn)
            return
        conn.close()
        with self._lock:
            self._created -= 1

    def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._acquire()
        if not patched():
            try:
                return job(conn)
            finally:
                self._release(conn)
        try:
            done = gevent.get_hub().threadpool.spawn(captured, job, conn)
        except BaseException:  # killed while waiting for a free thread: the job never started
            self._release(conn)
            raise
        try:
            return unwrap(done.get())
        finally:
            if done.ready():
                self._release(conn)
            else:
                # Killed while waiting (timeout, shutdown): the thread still uses the connection, so it
                # goes back to the pool only when the thread is finished with it.
                done.rawlink(lambda _: gevent.spawn(self._release, conn))

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one read transaction, so its queries see a single consistent snapshot."""
        watch = Stopwatch("read")
        try:
            return self._run(lambda conn: _transaction(conn, "BEGIN", fn, commit=False, watch=watch))
        finally:
            watch.record()  # here, on the caller's greenlet: not in the pool thread that ran it

    def lookup(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Like `read`, but on the calling greenlet: for a few rows fetched by key. In WAL mode a reader
        never waits for a writer, so such a read takes microseconds, less than the threadpool round trip
        it would otherwise pay. Anything that scans (search, lists, history) must use `read`."""
        conn, watch = self._acquire(), Stopwatch("read")
        try:
            return _transaction(conn, "BEGIN", fn, commit=False, watch=watch)
        finally:
            self._release(conn)
            watch.record()

    def write(self, fn: Callable[[sqlite3.Connection], T], *, idempotency: IdempotencyKey | None = None) -> T:
        """Run `fn(conn)` in one BEGIN IMMEDIATE transaction, rolled back if it raises.

        With an idempotency key, a completed request with the same key replays its stored result without
        calling `fn` until the key expires; the same key for a different tool or arguments is a Conflict.
        """
        # Writes queue here, in the process, rather than in SQLite's busy handler (which sleeps in
        # millisecond steps), and the queue is committed in batches.
        if idempotency is None:
            return self._writes.submit(fn)
        key, ttl = idempotency, self._idempotency_ttl
        return self._writes.submit(lambda conn: remembered(conn, key, fn, self._clock(), ttl))

    def ping(self) -> bool:
        """True when the database answers `SELECT 1` (not counted as a transaction: health checks are not
        the work the transaction metric is about)."""
        try:
            return self._run(lambda conn: conn.execute("SELECT 1").fetchone()[0] == 1)
        except (sqlite3.Error, RuntimeError):
            return False

    def size_bytes(self) -> int:
        """What the database takes on disk now: its file plus its write-ahead log (which keeps its size after
        a checkpoint). Two stat calls, no connection; OSError if the file is gone."""
        size = os.stat(self.path).st_size
        try:
            size += os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:  # no write since the last connection closed
            pass
        return size

    def close(self) -> None:
        """Close every idle connection; connections still in use are closed when they are returned."""
        self._closed = True
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                return
            self._release(conn)
