"""How long an SQLite transaction took: measured in the thread that runs it, recorded by the caller waiting.

Under gevent a transaction runs in a native pool thread, while prometheus-client's locks are gevent's
patched ones (it imports `threading.Lock` after the worker's monkey-patching). gevent makes those locks
usable across threads only as a costly fallback and its maintainers advise against sharing them with native
threads (a greenlet waiting on one a thread holds can miss its wake-up, gevent issue #2013). So the thread
only writes a float here, and the greenlet that waited for it records the metric.
"""

from __future__ import annotations

import time

from common import metrics

BACKEND = "sqlite"


class Stopwatch:
    """The duration of one transaction of `kind` (`read` or `write`), once it has ended."""

    __slots__ = ("kind", "started", "seconds")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.started = 0.0
        self.seconds: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started

    def record(self) -> None:
        """Record the duration, if the transaction ended; call it on the greenlet that waited for it."""
        if self.seconds is not None:
            metrics.transaction_finished(BACKEND, self.kind, self.seconds)
