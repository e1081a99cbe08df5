"""The per-conversation event log behind the output stream (SPEC §7).

`EventLog` is the seam: publish, read-after-id, and subscribe (wait). `InProcessEventLog` keeps the
latest events of each conversation in memory, bounded in count and in bytes, and fans every event out
to every subscriber; a Redis-backed log plugs in here for multi-process deployments.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.errors import ServiceError
from common.sse import Event

# What one retained event or one held conversation costs besides its wire bytes (objects, deque slot).
EVENT_OVERHEAD = 200
CONVERSATION_OVERHEAD = 1000


class ReplayWindowExceeded(ServiceError):
    status, code = 410, "replay_window_exceeded"
    default_message = "events after that id are no longer retained; reload the history"


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


@dataclass(frozen=True)
class StoredEvent:
    id: EventId
    type: str
    # Encoded once when published, not once per subscriber: with thousands of streams on a conversation
    # the JSON encoding would otherwise dominate a broadcast. Only these bytes are kept.
    wire: bytes

    @classmethod
    def create(cls, event_id: EventId, event_type: str, data: dict[str, Any]) -> StoredEvent:
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


class Bell:
    """One wake-up shared by every subscriber of a conversation. Ringing it once wakes them all; setting
    an event per subscriber cost a scheduled callback each, which dominated a broadcast to thousands."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.beats = 0
        self.last_beat = time.monotonic()

    def current(self) -> threading.Event:
        return self._event

    def ring(self) -> None:
        rung, self._event = self._event, threading.Event()
        rung.set()

    def beat(self) -> None:
        """Ring as a heartbeat: subscribers with nothing to send write a heartbeat comment."""
        self.beats += 1
        self.last_beat = time.monotonic()
        self.ring()


class EventSubscription:
    """One client's view of a conversation: a buffer the publisher never waits on, bounded in events and
    in bytes. A client that falls that far behind is cut off and must resume with Last-Event-ID."""

    def __init__(self, log: InProcessEventLog, conversation_id: str, position: EventId, backlog: list[StoredEvent],
                 buffer_size: int, buffer_bytes: int, bell: Bell | None = None) -> None:
        self.log = log
        self.conversation_id = conversation_id
        self.position = position
        self.buffer: deque[StoredEvent] = deque(backlog)
        # The backlog is already retained by the log; the limits apply to what arrives after it.
        self.buffer_size = buffer_size + len(backlog)
        self.buffered_bytes = sum(event.size for event in backlog)
        self.buffer_bytes = buffer_bytes + self.buffered_bytes
        self.bell = bell or Bell()
        self.ended = False
        self.overflowed = False
        # Called once when the buffer overflows: the stream's writer may be stuck on a client that reads
        # nothing, so ending the subscription alone would never reach it (the view cuts the socket).
        self.on_overflow: Callable[[], None] | None = None

    def offer(self, event: StoredEvent) -> bool:
        """Queue the event (the publisher rings the bell afterwards); False when this subscriber is ended
        (now, by overflowing, or before). One event larger than the byte bound still fits an empty buffer."""
        if self.ended:
            return False
        if len(self.buffer) >= self.buffer_size or (
                self.buffer and self.buffered_bytes + event.size > self.buffer_bytes):
            self.overflowed = True
            self.ended = True
            return False
        self.buffer.append(event)
        self.buffered_bytes += event.size
        return True

    def wait(self, timeout: float) -> list[StoredEvent] | None:
        """Events ready now or within `timeout`; [] at the timeout or at the conversation's heartbeat
        (whichever comes first); None once ended."""
        deadline = time.monotonic() + timeout
        beats = self.bell.beats
        while not self.buffer and not self.ended and self.bell.beats == beats:
            # Take the bell before looking at the buffer: an event queued after the look rings this bell.
            bell = self.bell.current()
            if self.buffer or self.ended or self.bell.beats != beats:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # A timer per wait and per subscriber was a quarter of a broadcast's cost: a wait longer than
            # the ticker's interval takes none and ends at the conversation's next heartbeat instead.
            bell.wait(remaining if remaining < self.log.tick else None)
        events = []
        while self.buffer:
            stored = self.buffer.popleft()
            self.buffered_bytes -= stored.size
            self.position = stored.id
            events.append(stored)
        if not events and self.ended:
            return None
        return events

    def end(self) -> None:
        self.ended = True
        self.bell.ring()

    def close(self) -> None:
        self.ended = True
        self.log.unsubscribe(self)


@dataclass
class _Conversation:
    tag: str
    events: deque[StoredEvent] = field(default_factory=deque)
    last_sequence: int = 0
    # Highest sequence that has been dropped from `events`; a client behind it has missed something.
    trimmed_up_to: int = 0
    bytes: int = CONVERSATION_OVERHEAD
    subscribers: set[EventSubscription] = field(default_factory=set)
    bell: Bell = field(default_factory=Bell)

    def position(self) -> EventId:
        return EventId(self.tag, self.last_sequence)

    def drop_oldest(self) -> int:
        """Forget the oldest retained event; the bytes freed."""
        dropped = self.events.popleft()
        self.trimmed_up_to = dropped.id.sequence
        self.bytes -= dropped.size
        return dropped.size


class EventLog(Protocol):
    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent: ...

    def read_after(self, conversation_id: str, after_id: EventId | None = None) -> list[StoredEvent]: ...

    def subscribe(self, conversation_id: str, after_id: EventId | None) -> EventSubscription: ...

    def subscriber_count(self, conversation_id: str | None = None) -> int: ...


class InProcessEventLog:
    """Events of this process only, bounded per conversation (`retention` events, `conversation_bytes`)
    and in all (`total_bytes`: the least recently used conversations go first, whole when nobody
    listens, otherwise their retained events)."""

    def __init__(self, retention: int = 1000, buffer_size: int = 1000, heartbeat: float = 1.5, *,
                 buffer_bytes: int = 1 << 20, conversation_bytes: int = 4 << 20,
                 total_bytes: int = 128 << 20) -> None:
        self.retention = retention
        self.buffer_size = buffer_size
        self.buffer_bytes = buffer_bytes
        self.conversation_bytes = conversation_bytes
        self.total_bytes = total_bytes
        self.heartbeat = heartbeat
        self.tick = heartbeat / 3
        self.bytes = 0
        # Least recently used first: publish and subscribe move a conversation to the end.
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    def _start_ticker(self) -> None:
        """Every `tick` seconds, beat the bell of each conversation whose last heartbeat is due: one
        wake-up per subscriber per heartbeat, and no timer per wait. The thread (a greenlet under
        gevent) holds the log only weakly and ends with it."""
        ref = weakref.ref(self)

        def run() -> None:
            while True:
                log = ref()
                if log is None:
                    return
                tick = log.tick
                log._beat_due()
                del log
                time.sleep(tick)

        self._ticker = threading.Thread(target=run, name="event-log-ticker", daemon=True)
        self._ticker.start()

    def _beat_due(self) -> None:
        due = time.monotonic() - self.heartbeat + self.tick / 2
        with self._lock:
            bells = [conv.bell for conv in self._conversations.values()
                     if conv.subscribers and conv.bell.last_beat <= due]
        for bell in bells:
            bell.beat()

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
            if oldest.subscribers:
                while oldest.events and self.bytes > self.total_bytes:
                    self.bytes -= oldest.drop_oldest()
                self._conversations.move_to_end(conversation_id)
            else:
                # Nobody listens: forget it whole. Its next log has a new tag, so old ids are refused.
                del self._conversations[conversation_id]
                self.bytes -= oldest.bytes

    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent:
        with self._lock:
            conv = self._conversation(conversation_id)
            conv.last_sequence += 1
            event = StoredEvent.create(EventId(conv.tag, conv.last_sequence), event_type, data)
            conv.events.append(event)
            conv.bytes += event.size
            self.bytes += event.size
            # Handing over inside the lock keeps every subscriber's events in id order; offer never blocks.
            dropped = [sub for sub in conv.subscribers if not sub.offer(event)]
            conv.subscribers.difference_update(dropped)
            for sub in dropped:
                sub.ended = True
            conv.bell.ring()
            self._bound(conv)
        for sub in dropped:
            if sub.overflowed and sub.on_overflow is not None:
                sub.on_overflow()
        return event

    @staticmethod
    def _after(conv: _Conversation, after_id: EventId | None) -> list[StoredEvent]:
        if after_id is None:
            return list(conv.events)
        if (after_id.log != conv.tag or after_id.sequence > conv.last_sequence
                or after_id.sequence < conv.trimmed_up_to):
            raise ReplayWindowExceeded()
        return [event for event in conv.events if event.id.sequence > after_id.sequence]

    def read_after(self, conversation_id: str, after_id: EventId | None = None) -> list[StoredEvent]:
        """The retained events after `after_id` (all of them without one)."""
        with self._lock:
            return self._after(self._conversation(conversation_id), after_id)

    def subscribe(self, conversation_id: str, after_id: EventId | None) -> EventSubscription:
        """Register a subscriber; the backlog after `after_id` and the live events that follow are
        taken under one lock, so there is no gap and no duplicate between them. Without an id, only
        live events."""
        with self._lock:
            conv = self._conversation(conversation_id)
            backlog = self._after(conv, after_id) if after_id is not None else []
            sub = EventSubscription(self, conversation_id, after_id or conv.position(), backlog, self.buffer_size,
                                    self.buffer_bytes, conv.bell)
            conv.subscribers.add(sub)
            if self._ticker is None:
                self._start_ticker()
            return sub

    def unsubscribe(self, sub: EventSubscription) -> None:
        with self._lock:
            conv = self._conversations.get(sub.conversation_id)
            if conv is not None:
                conv.subscribers.discard(sub)

    def subscriber_count(self, conversation_id: str | None = None) -> int:
        with self._lock:
            if conversation_id is not None:
                conv = self._conversations.get(conversation_id)
                return len(conv.subscribers) if conv else 0
            return sum(len(conv.subscribers) for conv in self._conversations.values())
