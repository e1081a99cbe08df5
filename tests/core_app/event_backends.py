"""The event-log backends the contract tests run against, and helpers shared by the event-log tests.

Adding a backend to the contract suite is one entry in `BACKENDS`: a function from the retention and
fan-out settings a test asks for to a fresh log."""

from __future__ import annotations

import time
from collections.abc import Callable

from core_app.events import EventLog, FanOut, InProcessEventLog, Position, Subscription

CONV = "c1"
OTHER = "c2"


def in_process(retention: int = 1000, **fanout: int) -> EventLog:
    return InProcessEventLog(FanOut(**fanout), retention=retention)


BACKENDS: dict[str, Callable[..., EventLog]] = {
    "inprocess": in_process,
}


def publish_many(log: EventLog, count: int, conversation: str = CONV, data: dict | None = None) -> list[Position]:
    return [log.publish(conversation, "message", data or {"n": n}).id for n in range(count)]


def received_ids(sub: Subscription, expected: int | None = None, deadline: float = 5.0) -> list[Position]:
    """Everything the subscription has ready; with `expected`, keep waiting (up to a deadline) until
    that many events have arrived."""
    ids: list[Position] = []
    give_up = time.monotonic() + deadline
    while True:
        events = sub.wait(0.02)
        if events:
            ids += [event.id for event in events]
            continue
        if events is None or expected is None or len(ids) >= expected or time.monotonic() > give_up:
            return ids
