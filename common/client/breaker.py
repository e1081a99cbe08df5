"""Circuit breaking with pybreaker's state machine, minus the lock it holds across the guarded call.

`pybreaker.CircuitBreaker.call` runs the whole call under one RLock, which under gevent serialises
every greenlet using the breaker (SPEC §3.5). Here only the state transitions take the lock. A named
breaker reports its state, and every change of it, to the metrics. A call cut off by its caller (a killed
greenlet, a `gevent.Timeout`: any `BaseException` that is not an `Exception`) touches no counter and no state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

from common import metrics

T = TypeVar("T")

STATE_NAMES = {pybreaker.STATE_CLOSED: "closed", pybreaker.STATE_OPEN: "open",
               pybreaker.STATE_HALF_OPEN: "half_open"}


class StateMetrics(pybreaker.CircuitBreakerListener):
    """Counts each state a breaker enters. pybreaker notifies on every assignment of the state, also one that
    keeps it (two calls failing together both open it): only a real change is a transition."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: pybreaker.CircuitBreakerState | None,
                     new_state: pybreaker.CircuitBreakerState) -> None:
        if cb.name and (old_state is None or old_state.name != new_state.name):
            metrics.circuit_changed(cb.name, STATE_NAMES.get(new_state.name, new_state.name))


class ConcurrentBreaker(pybreaker.CircuitBreaker):
    """A breaker whose calls run concurrently. Once the reset timeout has passed, exactly one call is
    let through as the trial; until it ends, the others still fail at once, as while open. While the
    health monitor reports the service down (`reason`), no call is spent on a trial: a good probe decides."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trial_running = False
        self.reason: str | None = None
        if self.name:
            self.add_listener(StateMetrics())
            metrics.circuit_changed(self.name, self.circuit, transition=False)

    def _reset_due(self) -> bool:
        opened_at = self._state_storage.opened_at
        return opened_at is None or datetime.now(UTC) >= opened_at + timedelta(seconds=self.reset_timeout)

    def refuses_calls(self) -> bool:
        """Whether a call made now would fail at once without running."""
        state = self.current_state
        if state == pybreaker.STATE_CLOSED:
            return False
        if self.reason is not None or self._trial_running:
            return True
        return state == pybreaker.STATE_OPEN and not self._reset_due()

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            state = self.current_state
            if state != pybreaker.STATE_CLOSED and self.reason is not None:
                raise pybreaker.CircuitBreakerError(f"circuit open: {self.reason}")
            trial = state == pybreaker.STATE_HALF_OPEN or (state == pybreaker.STATE_OPEN and self._reset_due())
            if trial:
                if self._trial_running:
                    raise pybreaker.CircuitBreakerError("a trial call is in progress; circuit still open")
                self._trial_running = True
                if state == pybreaker.STATE_OPEN:
                    self.half_open()
        try:
            # The lock is not held here: calls in the closed state run side by side.
            return self._guarded(self.state, func, *args, **kwargs)
        finally:
            if trial:
                with self._lock:
                    self._trial_running = False

    def _guarded(self, state: pybreaker.CircuitBreakerState, func: Callable[..., T], *args: Any,
                 **kwargs: Any) -> T:
        """`CircuitBreakerState.call` (pybreaker 1.4.1) but for cancellation, which it counts as a failure.
        An exclusion cannot help: pybreaker counts an excluded error as a success, which resets the failure
        count and closes a half-open circuit. A cancelled trial leaves the circuit half-open for the next one.
        Guarded functions return values, never generators (pybreaker's generator wrapping is left out)."""
        if state.name == pybreaker.STATE_OPEN:
            # Refuses at once, or (reset timeout passed) turns half-open and calls again through `call`.
            return state.call(func, *args, **kwargs)
        state.before_call(func, *args, **kwargs)
        for listener in self.listeners:
            listener.before_call(self, func, *args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            state._handle_error(exc)  # counts it (unless excluded), then raises it or CircuitBreakerError
        else:
            state._handle_success()
        return result

    @property
    def circuit(self) -> str:
        """The state as the health endpoint reports it: closed, open or half_open."""
        return STATE_NAMES.get(self.current_state, self.current_state)

    def trip(self, reason: str = "its health probe failed") -> None:
        """Open the circuit now (the health monitor saw the service down, for `reason`), keeping the first
        opening time if it is open already, and hold it open until `recover_if_due`."""
        self.reason = reason
        if self.current_state != pybreaker.STATE_OPEN:
            self.open()

    def close(self) -> None:
        # A trial call that began before the monitor's failed probe may still succeed (a 4xx counts as
        # success, e.g. a wrong service's 404): while the monitor holds the circuit, that closes nothing.
        if self.reason is not None:
            return
        super().close()

    def recover_if_due(self) -> None:
        """After a good health probe: end the hold, and close the circuit once the reset timeout has passed."""
        self.reason = None
        if self.current_state != pybreaker.STATE_CLOSED and self._reset_due():
            self.close()
