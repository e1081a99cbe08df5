"""The retry policy of the network client: urllib3's `Retry`, capped in attempts *and* in total time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from common import metrics


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. Only connection errors, read timeouts and 502/503/504 are retried."""

    attempts: int = 3
    backoff_factor: float = 0.1
    backoff_max: float = 2.0
    jitter: float = 0.1
    max_elapsed: float = 10.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({502, 503, 504}))


class BoundedRetry(Retry):
    """`Retry` that gives up once retrying would run past `max_elapsed` seconds, with an injectable
    clock and sleep so tests can check backoff without waiting for it. Each retry it allows is counted
    against `dependency` (the service called), when one is given."""

    # A Retry-After on 413 or 429 is the caller's problem to solve, not a reason to try again.
    RETRY_AFTER_STATUS_CODES = frozenset({502, 503, 504})

    def __init__(self, *args: Any, max_elapsed: float | None = None, started: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleeper: Callable[[float], None] = time.sleep,
                 dependency: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dependency = dependency
        self.max_elapsed = max_elapsed
        self.started = started
        self.clock = clock
        self.sleeper = sleeper

    def new(self, **kwargs: Any) -> BoundedRetry:
        kwargs.setdefault("dependency", self.dependency)
        kwargs.setdefault("max_elapsed", self.max_elapsed)
        # The first increment happens when the first attempt has failed: the clock starts there.
        kwargs.setdefault("started", self.started if self.started is not None else self.clock())
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("sleeper", self.sleeper)
        return super().new(**kwargs)  # type: ignore[return-value]

    def increment(self, method: str | None = None, url: str | None = None, *args: Any,
                  **kwargs: Any) -> BoundedRetry:
        retry: BoundedRetry = super().increment(method, url, *args, **kwargs)  # type: ignore[assignment]
        if retry.max_elapsed is not None and retry.started is not None:
            spent = retry.clock() - retry.started
            if spent + retry.next_wait(kwargs.get("response")) > retry.max_elapsed:
                error = kwargs.get("error") or (args[1] if len(args) > 1 else None)
                # urllib3 always passes its pool; the type says it may be missing.
                raise MaxRetryError(kwargs.get("_pool"), url or "", error)  # type: ignore[arg-type]
        # Returning (not raising) is what makes urllib3 send the request again: one retry, counted once.
        if retry.dependency is not None:
            metrics.retried(retry.dependency)
        return retry

    def next_wait(self, response: Any = None) -> float:
        """How long `sleep` will wait: the server's Retry-After when it sent one, else the backoff."""
        delay = None
        if self.respect_retry_after_header and response is not None:
            delay = self.get_retry_after(response)
        return self.get_backoff_time() if delay is None else delay

    def sleep(self, response: Any = None) -> None:
        delay = self.next_wait(response)
        if delay > 0:
            self.sleeper(delay)


def build_retry(policy: RetryPolicy, *, clock: Callable[[], float] = time.monotonic,
                sleeper: Callable[[float], None] = time.sleep, dependency: str | None = None) -> BoundedRetry:
    """The urllib3 retry object for one client, counting its retries against `dependency`. POST is allowed
    because the client sends an Idempotency-Key on every tool call and the services replay completed keys."""
    return BoundedRetry(
        total=policy.attempts, connect=policy.attempts, read=policy.attempts, status=policy.attempts,
        other=0, redirect=0, allowed_methods=None, status_forcelist=policy.statuses,
        backoff_factor=policy.backoff_factor, backoff_max=policy.backoff_max, backoff_jitter=policy.jitter,
        raise_on_status=False, raise_on_redirect=False, respect_retry_after_header=True,
        retry_after_max=max(1, int(policy.max_elapsed)), max_elapsed=policy.max_elapsed,
        clock=clock, sleeper=sleeper, dependency=dependency,
    )
