"""Password hashing on threads of its own, so a flood of logins cannot starve the shared threadpool that
every database transaction needs, and a full queue answers at once instead of waiting for ever."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import gevent.threadpool

from common.errors import TooManyRequests
from memory_service.blocking import captured, patched, unwrap

T = TypeVar("T")


class PasswordHashing:
    """At most `threads` hashes run at once and at most `queue` more wait; any further caller gets a
    TooManyRequests (429: back-pressure the Core passes on, never a failure its breaker counts)."""

    def __init__(self, threads: int = 2, queue: int = 16) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("threads must be at least 1 and queue at least 0")
        self.threads = threads
        self._admitted = threading.BoundedSemaphore(threads + queue)
        self._pool: gevent.threadpool.ThreadPool | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a hashing thread (inline without gevent), or TooManyRequests when full."""
        if not self._admitted.acquire(blocking=False):
            raise TooManyRequests("too many password checks at once; try again shortly",
                                  {"reason": "busy"}, retry_after=1)
        try:
            if not patched():
                return fn(*args)
            if self._pool is None:  # made on first use, on the worker's hub (after gunicorn patched it)
                self._pool = gevent.threadpool.ThreadPool(self.threads)
            return unwrap(self._pool.apply(captured, (fn, *args)))
        finally:
            self._admitted.release()
