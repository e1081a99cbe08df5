"""CPU-bound work (the analyses) off the gevent hub, so one long analysis cannot freeze every other request
of the worker, its /health included.

The work runs in a real OS thread of a small gevent thread pool while the calling greenlet waits
cooperatively. Pure-Python work still holds the GIL, but CPython hands the GIL to a waiting thread every
`sys.getswitchinterval()` (5 ms), so the hub keeps answering with a few milliseconds of extra latency
instead of stopping for the whole analysis. Measured figures are in docs/COGNITION.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CpuOffload:
    """Runs a function on one of `threads` OS threads when gevent has patched this process (under
    gunicorn's gevent worker), and inline otherwise (unit tests, scripts), where there is no hub to free."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool: Any = None

    def run(self, work: Callable[..., Any], *args: Any) -> Any:
        from gevent import monkey

        if not monkey.is_module_patched("threading"):
            return work(*args)
        if self._pool is None:  # created in the worker after the fork, never in gunicorn's master
            from gevent.threadpool import ThreadPool

            self._pool = ThreadPool(self.threads)
        # Beyond `threads` analyses at once, callers wait their turn here without blocking the hub.
        return self._pool.apply(work, args)
