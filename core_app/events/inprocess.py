"""The in-process event log: the latest events of each conversation in this process's memory, bounded
in count and in bytes, handed to the fan-out as they are published. Ids mean nothing to another process,
so it serves one process only (`WEB_CONCURRENCY=1`)."""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from core_app.events.fanout import FanOut
from core_app.events.interface import EventLog, ReplayWindowExceeded
from core_app.events.stored import Backlog, Position, RetiredId, StoredEvent
from core_app.events.stream_ids import StreamId

# What one held conversation costs besides its events.
CONVERSATION_OVERHEAD = 1000

_ID = re.compile(r"^([0-9a-f]{12})-([0-9]{1,18})$")
# The plain numbers an older server sent: well-formed, but from no log that exists now.
_LEGACY_ID = re.compile(r"^[0-9]{1,20}$")


@dataclass(frozen=True, order=True)
class EventId:
    """Where an event sits: the `log` tag of its conversation's log and its sequence number there.

    Clients see the id as an opaque string; this class is the only place that writes or reads it. The
    sequence counts the conversation's own events only, so an id says nothing about other conversations;
    the tag is random and changes whenever a process (re)creates the conversation's log, so an id from
    another process, or from before a restart or an eviction, is recognised as unknown.
    """

    log: str
    sequence: int

    def __str__(self) -> str:
        return f"{self.log}-{self.sequence}"

    @classmethod
    def parse(cls, raw: str) -> EventId:
        """The id a client sent back; ValueError when it is not an id any version of this server sends."""
        text = raw.strip()
        match = _ID.match(text)
        if match:
            return cls(match.group(1), int(match.group(2)))
        if _LEGACY_ID.match(text):
            return cls("", int(text))
        raise ValueError("not an event id")


@dataclass
class _Conversation:
    tag: str
    events: deque[StoredEvent] = field(default_factory=deque)
    last_sequence: int = 0
    # Highest sequence that has been dropped from `events`; a client behind it has missed something.
    trimmed_up_to: int = 0
    bytes: int = CONVERSATION_OVERHEAD

    def position(self) -> EventId:
        return EventId(self.tag, self.last_sequence)

    def drop_oldest(self) -> int:
        """Forget the oldest retained event; the bytes freed."""
        dropped = self.events.popleft()
        self.trimmed_up_to = dropped.id.sequence  # type: ignore[attr-defined]  # an EventId: this log wrote it
        self.bytes -= dropped.size
        return dropped.size

    def after(self, after_id: Position) -> list[StoredEvent]:
        if (not isinstance(after_id, EventId) or after_id.log != self.tag
                or after_id.sequence > self.last_sequence or after_id.sequence < self.trimmed_up_to):
            raise ReplayWindowExceeded()
        return [event for event in self.events if event.id.sequence > after_id.sequence]  # type: ignore[attr-defined]


class InProcessEventLog(EventLog):
    """Events of this process only, bounded per conversation (`retention` events, `conversation_bytes`)
    and in all (`total_bytes`: the least recently used conversations go first, whole when nobody
    listens, otherwise their retained events)."""

    def __init__(self, fanout: FanOut | None = None, *, retention: int = 1000, conversation_bytes: int = 4 << 20,
                 total_bytes: int = 128 << 20) -> None:
        super().__init__(fanout)
        self.retention = retention
        self.conversation_bytes = conversation_bytes
        self.total_bytes = total_bytes
        self.bytes = 0
        # Least recently used first: publish and subscribe move a conversation to the end.
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent:
        """Append the event and hand it to the fan-out."""
        with self._lock:
            conv = self._conversation(conversation_id)
            conv.last_sequence += 1
            event = StoredEvent.create(EventId(conv.tag, conv.last_sequence), event_type, data)
            conv.events.append(event)
            conv.bytes += event.size
            self.bytes += event.size
            # Handing over inside the lock keeps every subscriber's events in id order; delivery never blocks.
            self.fanout.deliver(conversation_id, event)
            self._bound(conv)
        return event

    def backlog(self, conversation_id: str, after: Position | None) -> Backlog:
        """The retained events after `after`; without it none, and the log's end (a fresh log's too, which
        a client told `connected` at that position may resume from)."""
        with self._lock:
            conv = self._conversation(conversation_id)
            if after is None:
                return Backlog([], conv.position())
            events = conv.after(after)
            return Backlog(events, events[-1].id if events else after)

    def parse_position(self, raw: str) -> EventId | RetiredId:
        """An `EventId`, or a legacy plain number (which no log holds); a Redis stream id, sent before a
        deployment moved off Redis, is a `RetiredId` (replayable here never); ValueError for anything else."""
        try:
            return EventId.parse(raw)
        except ValueError:
            StreamId.parse(raw)
            return RetiredId(raw.strip())

    def read_after(self, conversation_id: str, after_id: EventId | None = None) -> list[StoredEvent]:
        """The retained events after `after_id` (all of them without one). In-process only, not part of
        the interface: tests look at what is retained with it."""
        with self._lock:
            conv = self._conversation(conversation_id)
            return list(conv.events) if after_id is None else conv.after(after_id)

    def _conversation(self, conversation_id: str) -> _Conversation:
        conv = self._conversations.get(conversation_id)
        if conv is None:
            conv = self._conversations[conversation_id] = _Conversation(secrets.token_hex(6))
            self.bytes += conv.bytes
        else:
            self._conversations.move_to_end(conversation_id)
        return conv

    def _bound(self, conv: _Conversation) -> None:
        """Trim `conv` to its own bounds, then the least recently used conversations to the total."""
        while conv.events and (len(conv.events) > self.retention or conv.bytes > self.conversation_bytes):
            self.bytes -= conv.drop_oldest()
        # Each conversation is visited at most once, so listened-to conversations with nothing left to
        # drop cannot keep this going.
        for _ in range(len(self._conversations)):
            if self.bytes <= self.total_bytes:
                return
            conversation_id, oldest = next(iter(self._conversations.items()))
            if self.fanout.count(conversation_id):
                while oldest.events and self.bytes > self.total_bytes:
                    self.bytes -= oldest.drop_oldest()
                self._conversations.move_to_end(conversation_id)
            else:
                # Nobody listens: forget it whole. Its next log has a new tag, so old ids are refused.
                del self._conversations[conversation_id]
                self.bytes -= oldest.bytes
