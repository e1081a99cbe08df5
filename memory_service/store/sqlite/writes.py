"""Group commit: writes that arrive together share one transaction and one trip to the threadpool.

SQLite takes one writer at a time. With fifty callers writing, paying BEGIN, COMMIT and the hand-over to
a native thread once per batch instead of once per write is what keeps write throughput up; each write
still gets its own savepoint, so one that fails is rolled back alone, and nobody is answered before the
batch's COMMIT has returned.

Each batch's transaction time and size are recorded by the writer (a greenlet under gevent) before it
answers the batch's callers, never by the pool thread that ran the transaction (see timing.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from common import metrics
from memory_service.store.sqlite.timing import BACKEND, Stopwatch

log = logging.getLogger(__name__)

MAX_BATCH = 64
IDLE_SECONDS = 5.0


class _Job:
    __slots__ = ("fn", "done", "value", "error")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def commit_batch(conn: sqlite3.Connection, batch: list[_Job], watch: Stopwatch) -> None:
    """Run every job of the batch in one BEGIN IMMEDIATE ... COMMIT, each inside its own savepoint; `watch`
    times the transaction, whether it commits or not."""
    watch.start()
    try:
        _commit_batch(conn, batch)
    finally:
        watch.stop()


def _commit_batch(conn: sqlite3.Connection, batch: list[_Job]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                job.value = job.fn(conn)
            except BaseException as exc:  # noqa: BLE001 - handed to the job's caller, who re-raises it
                conn.execute("ROLLBACK TO job")
                job.error = exc
            conn.execute("RELEASE job")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for job in batch:  # nothing of this batch was stored
            job.value, job.error = None, job.error or exc
        raise


class GroupCommitter:
    """One writer (a greenlet under gevent, a thread otherwise) drains the queue of pending writes in
    batches through `run`, which executes a function on a pooled connection off the event loop."""

    def __init__(self, run: Callable[[Callable[[sqlite3.Connection], None]], None]) -> None:
        self._run = run
        self._pending: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None

    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        job = _Job(fn)
        with self._lock:
            self._pending.append(job)
            if self._writer is None:
                self._writer = threading.Thread(target=self._drain, name="sqlite-writer", daemon=True)
                self._writer.start()
        self._wake.set()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.value

    def _drain(self) -> None:
        while True:
            if not self._wake.wait(IDLE_SECONDS):
                with self._lock:
                    if not self._pending:  # idle: end, and let the next write start a new writer
                        self._writer = None
                        return
            self._wake.clear()
            while True:
                with self._lock:
                    batch = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]
                if not batch:
                    break
                watch, committed = Stopwatch("write"), False
                try:
                    self._run(partial(commit_batch, batch=batch, watch=watch))
                    committed = True
                except BaseException:  # noqa: BLE001 - every job already carries the error
                    pass
                # Before the callers are answered, so a write that has returned has been counted.
                try:
                    watch.record()
                    if committed:
                        metrics.batch_committed(BACKEND, len(batch))
                except Exception:  # a figure must never keep the batch's callers waiting
                    log.exception("the metrics of a committed batch could not be recorded")
                for job in batch:
                    job.done.set()
