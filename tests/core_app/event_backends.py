"""The event-log backends the contract tests run against, and helpers shared by the event-log tests.

Adding a backend to the contract suite is one entry in `BACKENDS`: a function from the retention and
fan-out settings a test asks for to a fresh log. A log on an engine (Redis) skips the test when the engine
is unreachable (`tests.engines.require_engine`), uses keys under a prefix of its own, and is closed and its
keys deleted after the test (`close_opened`, run by an autouse fixture in conftest)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from core_app.events import EventLog, FanOut, InProcessEventLog, Position, Subscription
from tests.engines import redis_url, require_engine

CONV = "c1"
OTHER = "c2"


def in_process(retention: int = 1000, **fanout: int) -> EventLog:
    return InProcessEventLog(FanOut(**fanout), retention=retention)


# Logs on an engine opened by the current test, closed (and their keys deleted) after it.
OPENED: list[Any] = []


def on_redis(retention: int = 1000, **fanout: Any) -> Any:
    """A Redis event log under a key prefix of its own (skips the test without Redis)."""
    url = require_engine("Redis", redis_url())
    from core_app.events.redis import RedisEventLog  # redis-py only where a test asks for it

    options = {key: fanout.pop(key) for key in ("pool_size", "block_seconds") if key in fanout}
    log = RedisEventLog(FanOut(**fanout), url, prefix=f"test-{uuid.uuid4().hex[:12]}", retention=retention,
                        **options)
    OPENED.append(log)
    return log


def close_opened() -> None:
    """Close the logs the test opened and delete every key under their prefixes."""
    while OPENED:
        log = OPENED.pop()
        log.close()
        try:
            keys = list(log.client.scan_iter(match=f"{log.prefix}:*", count=1000))
            if keys:
                log.client.delete(*keys)
        except Exception:  # noqa: BLE001 - a test that stopped Redis on purpose leaves nothing to delete
            pass
        log.pool.disconnect()


BACKENDS: dict[str, Callable[..., EventLog]] = {
    "inprocess": in_process,
    "redis": on_redis,
}

# Well-formed ids each backend never holds: the other backend's (written before a deployment switched
# backends) and, on Redis, an older server's plain number. Resuming from one is replay_window_exceeded.
FOREIGN_IDS: dict[str, list[str]] = {
    "inprocess": ["1700000000000-0", "0-0", " 17-3 "],
    "redis": ["0123456789ab-3", "0123456789ab-0", "17"],
}


def settle(log: EventLog, conversation: str, last: Position, deadline: float = 5.0) -> None:
    """Wait until the log has handed `last` to this process's subscribers of the conversation. The in-process
    log does so inside `publish`; a Redis log's reader does it a moment later (nothing to wait for once the
    conversation has no local subscriber left)."""
    reader = getattr(log, "reader", None)
    give_up = time.monotonic() + deadline
    while reader is not None and conversation in log.fanout.conversations():
        cursor = reader.cursors.get(conversation)
        if cursor is None or cursor >= last or time.monotonic() > give_up:
            return
        time.sleep(0.005)  # poll interval; the deadline bounds it


def publish_many(log: EventLog, count: int, conversation: str = CONV, data: dict | None = None) -> list[Position]:
    """Publish `count` events and return their ids once they have reached this process's subscribers."""
    ids = [log.publish(conversation, "message", data or {"n": n}).id for n in range(count)]
    if ids:
        settle(log, conversation, ids[-1])
    return ids


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
