"""The per-conversation event log behind the output stream (SPEC §7).

- `interface`: `EventLog`, what a backend implements (publish, backlog after a position, position parsing)
  and what callers use (publish, subscribe, subscriber_count); `Subscription`; `ReplayWindowExceeded`;
  `StreamUnavailable` (a shared log that cannot be reached).
- `stored`: `Position`, `StoredEvent` (encoded once), `Backlog`.
- `fanout`: the per-process fan-out every backend feeds: subscribers, buffers, overflow, heartbeats.
- `inprocess`: the in-process backend (`EventId` positions, retention in events and bytes).
- `redis` (with `redis_reader`, `stream_ids`): the Redis Streams backend, shared by every Core process;
  not imported here, only by the factory when REDIS_URL is set (redis-py must load after gevent's patching).
- `factory`: `open_event_log(settings)`, the one place a backend is chosen.
"""

from __future__ import annotations

from core_app.events.factory import open_event_log
from core_app.events.fanout import FanOut
from core_app.events.inprocess import EventId, InProcessEventLog
from core_app.events.interface import EventLog, ReplayWindowExceeded, StreamUnavailable, Subscription
from core_app.events.stored import Backlog, Position, StoredEvent

__all__ = ["Backlog", "EventId", "EventLog", "FanOut", "InProcessEventLog", "Position", "ReplayWindowExceeded",
           "StoredEvent", "StreamUnavailable", "Subscription", "open_event_log"]
