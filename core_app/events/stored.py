"""What every event-log backend stores and hands out: the position of an event, the event encoded once,
and the backlog a new subscriber is owed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from common.sse import Event

# What one retained or buffered event costs besides its wire bytes (objects, deque slot).
EVENT_OVERHEAD = 200


class Position(Protocol):
    """Where an event sits in its conversation's log. Each backend has its own type (the in-process log's
    `EventId`, a Redis stream id); the positions of one conversation are totally ordered."""

    def __str__(self) -> str:
        """The id as clients see it (the SSE `id:` line); the backend's `parse_position` reads it back."""
        ...

    def __lt__(self, other: Any, /) -> bool:
        """Whether this position is before `other`, a position of the same conversation."""
        ...

    def __le__(self, other: Any, /) -> bool:
        """Whether this position is at or before `other`, a position of the same conversation."""
        ...


@dataclass(frozen=True, order=True)
class RetiredId:
    """A well-formed id that no log of this backend ever holds: one another backend wrote before a deployment
    switched backends (a Redis stream id on the in-process log, an in-process id on Redis), or an older
    server's plain number. Resuming from it is `replay_window_exceeded` (reload the history), not a bad
    request."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class StoredEvent:
    id: Position
    type: str
    # Encoded once when published, not once per subscriber: with thousands of streams on a conversation
    # the JSON encoding would otherwise dominate a broadcast. Only these bytes are kept.
    wire: bytes

    @classmethod
    def create(cls, event_id: Position, event_type: str, data: dict[str, Any]) -> StoredEvent:
        return cls(event_id, event_type, Event(data, event=event_type, id=str(event_id)).encode())

    @property
    def data(self) -> Any:
        """The payload, decoded from the wire bytes (the data line is always the last one)."""
        return json.loads(self.wire[self.wire.index(b"\ndata: ") + 7:])

    @property
    def size(self) -> int:
        return len(self.wire) + EVENT_OVERHEAD

    def encode(self) -> bytes:
        return self.wire


@dataclass(frozen=True)
class Backlog:
    """What a new subscriber is owed: the retained `events` after its position, and the `position` live
    delivery continues from (the last of those events, else the subscriber's own, else the log's end)."""

    events: list[StoredEvent]
    position: Position
