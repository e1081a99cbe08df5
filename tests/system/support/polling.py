"""Waiting for something to become true, with a deadline: system tests poll, they never sleep to synchronise."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
