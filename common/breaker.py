"""Circuit breaking with pybreaker's state machine, minus the lock it holds across the guarded call.

`pybreaker.CircuitBreaker.call` runs the whole call under one RLock, which under gevent serialises
every greenlet using the breaker (SPEC §3.5). Here only the state transitions take the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

T = TypeVar("T")

STATE_NAMES = {pybreaker.STATE_CLOSED: "closed", pybreaker.STATE_OPEN: "open",
               pybreaker.STATE_HALF_OPEN: "half_open"}


class ConcurrentBreaker(pybreaker.CircuitBreaker):
    """A breaker whose calls run concurrently. While half-open, calls that overlap the trial all run:
    the first outcome decides the state, which is what pybreaker's own storage allows anyway."""

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.state.call(func, *args, **kwargs)

    @property
    def circuit(self) -> str:
        """The state as the health endpoint reports it: closed, open or half_open."""
        return STATE_NAMES.get(self.current_state, self.current_state)

    def trip(self) -> None:
        """Open the circuit now (the health monitor saw the service down)."""
        if self.current_state != pybreaker.STATE_OPEN:
            self.open()

    def recover_if_due(self) -> None:
        """Close the circuit after a successful health probe, once the reset timeout has passed."""
        if self.current_state == pybreaker.STATE_CLOSED:
            return
        opened_at = self._state_storage.opened_at
        if opened_at is None or datetime.now(UTC) >= opened_at + timedelta(seconds=self.reset_timeout):
            self.close()
