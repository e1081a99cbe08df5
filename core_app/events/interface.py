"""The interface of an event log (SPEC §7): what a backend implements, and what the stream view and the
Replier call. A backend stores events and hands each one to the per-process fan-out; the fan-out owns the
local subscribers, so `subscribe` is written once, here, for every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from common.errors import ServiceError
from core_app.events.fanout import FanOut
from core_app.events.stored import Backlog, Position, StoredEvent


class ReplayWindowExceeded(ServiceError):
    status, code = 410, "replay_window_exceeded"
    default_message = "events after that id are no longer retained; reload the history"


class StreamUnavailable(ServiceError):
    """A shared event log cannot be reached: no stream opens, and open ones end with this code."""

    status, code = 503, "stream_unavailable"
    default_message = "the output stream is unavailable; the messages are stored, reconnect shortly"
    retry_after = 1


class Subscription(Protocol):
    """One client's live view of a conversation, as `common.sse.live_stream` relays it."""

    @property
    def position(self) -> Position:
        """The last event `wait` handed out; at first, the position subscribed from (what `connected` says)."""
        ...

    def wait(self, timeout: float) -> list[StoredEvent] | None:
        """Events ready within `timeout` ([] at the timeout or a heartbeat); None once ended."""
        ...

    def end(self) -> None:
        """Wake a waiting `wait` and make it return None (used at shutdown)."""
        ...

    def close(self) -> None:
        """Stop receiving and release the subscriber; safe to call more than once."""
        ...


class EventLog(ABC):
    """The events of each conversation, in order, kept for a while so a client can resume after an id.
    A backend overrides the abstract members and feeds every event it publishes to `self.fanout.deliver`
    (at once, or from one reader per process), one conversation at a time and in position order."""

    def __init__(self, fanout: FanOut | None = None) -> None:
        self.fanout = fanout if fanout is not None else FanOut()

    @abstractmethod
    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent:
        """Override to append an event at the conversation's next position and see it delivered to the fan-out."""

    @abstractmethod
    def backlog(self, conversation_id: str, after: Position | None) -> Backlog:
        """Override to return the retained events after `after` (none without it) and where live delivery
        continues; raise ReplayWindowExceeded when `after` is not a position this log still holds. Every
        event published after the read must reach the fan-out (an asynchronous backend starts reading there)."""

    @abstractmethod
    def parse_position(self, raw: str) -> Position:
        """Override to read back an id this backend wrote, as a client sends it (Last-Event-ID); ValueError
        for anything that is not one."""

    def subscribe(self, conversation_id: str, after: Position | None,
                  on_overflow: Callable[[], None] | None = None) -> Subscription:
        """The events after `after` (only new ones without it), with no gap and no duplicate between the
        backlog and live events; `on_overflow` runs once if the subscriber falls too far behind and is cut
        off. Not overridden: the fan-out holds the subscriber and drops live events the backlog gave."""
        sub = self.fanout.add(conversation_id, on_overflow)
        try:
            owed = self.backlog(conversation_id, after)
        except BaseException:
            sub.close()
            raise
        self.fanout.catch_up(sub, owed, after)
        return sub

    def subscriber_count(self, conversation_id: str | None = None) -> int:
        """The subscribers held in this process, of one conversation or of all. Not overridden."""
        return self.fanout.count(conversation_id)
