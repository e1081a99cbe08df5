"""The per-conversation event log behind the output stream (SPEC §7).

`EventLog` is the seam: publish, read-after-id, and subscribe (wait). `InProcessEventLog` keeps the
last `retention` events of each conversation in memory and fans every event out to every subscriber;
a Redis-backed log plugs in here for multi-process deployments.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.errors import ServiceError
from common.sse import Event


class ReplayWindowExceeded(ServiceError):
    status, code = 410, "replay_window_exceeded"
    default_message = "events after that id are no longer retained; reload the history"


@dataclass(frozen=True)
class StoredEvent:
    id: int
    type: str
    data: dict[str, Any]
    # Encoded once when published, not once per subscriber: with thousands of streams on a conversation
    # the JSON encoding would otherwise dominate a broadcast.
    wire: bytes = b""

    @classmethod
    def create(cls, event_id: int, event_type: str, data: dict[str, Any]) -> StoredEvent:
        return cls(event_id, event_type, data, Event(data, event=event_type, id=event_id).encode())

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
    """One client's view of a conversation: a bounded buffer the publisher never waits on.
    A client that falls `buffer_size` events behind is cut off and must resume with Last-Event-ID."""

    def __init__(self, log: InProcessEventLog, conversation_id: str, position: int, backlog: list[StoredEvent],
                 buffer_size: int, bell: Bell | None = None) -> None:
        self.log = log
        self.conversation_id = conversation_id
        self.position = position
        self.buffer: deque[StoredEvent] = deque(backlog)
        self.buffer_size = buffer_size
        self.bell = bell or Bell()
        self.ended = False
        self.overflowed = False
        # Called once when the buffer overflows: the stream's writer may be stuck on a client that reads
        # nothing, so ending the subscription alone would never reach it (the view cuts the socket).
        self.on_overflow: Callable[[], None] | None = None

    def offer(self, event: StoredEvent) -> bool:
        """Queue the event (the publisher rings the bell afterwards); False when this subscriber is ended
        (now, by overflowing, or before)."""
        if self.ended:
            return False
        if len(self.buffer) >= self.buffer_size:
            self.overflowed = True
            self.ended = True
            return False
        self.buffer.append(event)
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
    events: deque[StoredEvent]
    # Highest id that has been dropped from `events`; a client behind it has missed something.
    trimmed_up_to: int = 0
    subscribers: set[EventSubscription] = field(default_factory=set)
    bell: Bell = field(default_factory=Bell)


class EventLog(Protocol):
    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent: ...

    def read_after(self, conversation_id: str, after_id: int | None) -> list[StoredEvent]: ...

    def subscribe(self, conversation_id: str, after_id: int | None) -> EventSubscription: ...

    def subscriber_count(self, conversation_id: str | None = None) -> int: ...


class InProcessEventLog:
    """Events of this process only. Ids start at the microsecond clock when the log is created, so ids
    from before a restart are always lower than the new log's first id and are never mistaken for new."""

    def __init__(self, retention: int = 1000, buffer_size: int = 1000, clock: Any = time.time,
                 heartbeat: float = 1.5) -> None:
        self.retention = retention
        self.buffer_size = buffer_size
        self.heartbeat = heartbeat
        self.tick = heartbeat / 3
        self.first_id = int(clock() * 1_000_000)
        self._next_id = self.first_id
        self._conversations: dict[str, _Conversation] = {}
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
            conv = self._conversations[conversation_id] = _Conversation(deque())
        return conv

    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent:
        with self._lock:
            event = StoredEvent.create(self._next_id, event_type, data)
            self._next_id += 1
            conv = self._conversation(conversation_id)
            conv.events.append(event)
            if len(conv.events) > self.retention:
                conv.trimmed_up_to = conv.events.popleft().id
            # Handing over inside the lock keeps every subscriber's events in id order; offer never blocks.
            dropped = [sub for sub in conv.subscribers if not sub.offer(event)]
            conv.subscribers.difference_update(dropped)
            for sub in dropped:
                sub.ended = True
            conv.bell.ring()
        for sub in dropped:
            if sub.overflowed and sub.on_overflow is not None:
                sub.on_overflow()
        return event

    def _after(self, conv: _Conversation, after_id: int | None) -> list[StoredEvent]:
        if after_id is None:
            return []
        if after_id < self.first_id - 1 or after_id >= self._next_id or after_id < conv.trimmed_up_to:
            raise ReplayWindowExceeded()
        return [event for event in conv.events if event.id > after_id]

    def read_after(self, conversation_id: str, after_id: int | None) -> list[StoredEvent]:
        with self._lock:
            return self._after(self._conversation(conversation_id), after_id)

    def subscribe(self, conversation_id: str, after_id: int | None) -> EventSubscription:
        """Register a subscriber; the backlog after `after_id` and the live events that follow are
        taken under one lock, so there is no gap and no duplicate between them."""
        with self._lock:
            conv = self._conversation(conversation_id)
            backlog = self._after(conv, after_id)
            if after_id is not None:
                position = after_id
            else:
                position = conv.events[-1].id if conv.events else max(self.first_id - 1, conv.trimmed_up_to)
            sub = EventSubscription(self, conversation_id, position, backlog, self.buffer_size + len(backlog),
                                    conv.bell)
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
