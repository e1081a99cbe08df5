"""Slots held per key (a user) in one process: how many of one user's streams, or searches, run at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from common import metrics
from common.errors import TooManyRequests


class KeyedSlots:
    """At most `limit` slots held at once for each key; one more is refused at once with 429 (`refusal`,
    Retry-After `retry_after` seconds) rather than queued, so one user cannot hold what all users share.
    Refusals are counted as `cortex_rate_limit_refusals{limit=name}` (the setting's name, lower case)."""

    def __init__(self, limit: int, refusal: str, retry_after: int = 1, *, name: str) -> None:
        self.name = name
        self.limit = limit
        self.refusal = refusal
        self.retry_after = retry_after
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def held(self, key: str) -> int:
        """How many slots `key` holds now."""
        with self._lock:
            return self._held.get(key, 0)

    def take(self, key: str) -> Callable[[], None]:
        """Hold one slot of `key` (TooManyRequests when all are held); returns its release, which frees the
        slot on its first call only, so a stream's several ways of ending cannot free a slot twice."""
        with self._lock:
            held = self._held.get(key, 0)
            if held >= self.limit:
                metrics.rate_limited("core", self.name)
                raise TooManyRequests(self.refusal, {"limit": self.limit}, retry_after=self.retry_after)
            self._held[key] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._held[key] - 1
                if left:
                    self._held[key] = left
                else:
                    del self._held[key]

        return release

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """One slot of `key` for the duration of the block."""
        release = self.take(key)
        try:
            yield
        finally:
            release()
