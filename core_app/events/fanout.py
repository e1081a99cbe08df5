"""The per-process fan-out (Mercure's hub): the local subscribers of each conversation, their buffers
bounded in events and bytes, the cut-off of one that falls behind, one shared wake-up per conversation and
the heartbeat ticker. Every backend feeds it the same way, through `deliver`: the in-process log as it
publishes, a shared log from the one reader that fetches events for this process's subscribers."""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from common import metrics
from core_app.events.stored import Backlog, Position, StoredEvent


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


class LocalSubscription:
    """One client's view of a conversation: a buffer the publisher never waits on, bounded in events and
    in bytes. A client that falls that far behind is cut off and must resume with Last-Event-ID."""

    def __init__(self, fanout: FanOut, conversation_id: str, bell: Bell,
                 on_overflow: Callable[[], None] | None) -> None:
        self.fanout = fanout
        self.conversation_id = conversation_id
        self.bell = bell
        self.buffer: deque[StoredEvent] = deque()
        self.buffer_size = fanout.buffer_size
        self.buffered_bytes = 0
        self.buffer_bytes = fanout.buffer_bytes
        self.ended = False
        self.overflowed = False
        # Called once when the buffer overflows: the stream's writer may be stuck on a client that reads
        # nothing, so ending the subscription alone would never reach it (the view cuts the socket).
        self.on_overflow = on_overflow
        self._position: Position | None = None
        # Deliveries at or before this were owed by the backlog already (a backend that delivers
        # asynchronously may hand them over again); None once an event past it has arrived.
        self.floor: Position | None = None

    @property
    def position(self) -> Position:
        """The last event `wait` handed out; at first, the position subscribed from."""
        if self._position is None:
            raise RuntimeError("the subscription has not caught up with its backlog yet")
        return self._position

    def offer(self, event: StoredEvent) -> bool:
        """Queue the event (the publisher rings the bell afterwards); False when this subscriber is ended
        (now, by overflowing, or before). One event larger than the byte bound still fits an empty buffer."""
        if self.ended:
            return False
        if self.floor is not None:
            # A conversation's events arrive in order, so the first one past the floor ends the check.
            if event.id <= self.floor:
                return True
            self.floor = None
        if len(self.buffer) >= self.buffer_size or (
                self.buffer and self.buffered_bytes + event.size > self.buffer_bytes):
            self.overflowed = True
            self.ended = True
            return False
        self.buffer.append(event)
        self.buffered_bytes += event.size
        return True

    def catch_up(self, backlog: Backlog, after: Position | None) -> None:
        """Put the backlog before what was delivered since the subscriber was added, without the events
        both hold (called once, under the fan-out's lock)."""
        live = [event for event in self.buffer if not event.id <= backlog.position]
        self.buffer = deque([*backlog.events, *live])
        owed = sum(event.size for event in backlog.events)
        # The backlog is already retained by the log; the limits apply to what arrives after it.
        self.buffer_size += len(backlog.events)
        self.buffer_bytes += owed
        self.buffered_bytes = owed + sum(event.size for event in live)
        self.floor = None if live else backlog.position
        self._position = after if after is not None else backlog.position

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
            bell.wait(remaining if remaining < self.fanout.tick else None)
        events = []
        while self.buffer:
            stored = self.buffer.popleft()
            self.buffered_bytes -= stored.size
            self._position = stored.id
            events.append(stored)
        if not events and self.ended:
            return None
        return events

    def end(self) -> None:
        self.ended = True
        self.bell.ring()

    def close(self) -> None:
        self.ended = True
        self.fanout.remove(self)


@dataclass
class _Listeners:
    subscribers: set[LocalSubscription] = field(default_factory=set)
    bell: Bell = field(default_factory=Bell)


class FanOut:
    """The local subscribers of this process, by conversation, with a buffer of `buffer_size` events and
    `buffer_bytes` each, and a heartbeat every `heartbeat` seconds while a conversation is quiet."""

    def __init__(self, buffer_size: int = 1000, buffer_bytes: int = 1 << 20, heartbeat: float = 1.5) -> None:
        self.buffer_size = buffer_size
        self.buffer_bytes = buffer_bytes
        self.heartbeat = heartbeat
        self.tick = heartbeat / 3
        # Only conversations with local subscribers: what a reader of a shared log fetches for.
        self._listeners: dict[str, _Listeners] = {}
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    def add(self, conversation_id: str, on_overflow: Callable[[], None] | None = None) -> LocalSubscription:
        """A new subscriber that buffers what is delivered from now on; `catch_up` completes it. Added before
        the backlog is read, so nothing published in between is missed."""
        with self._lock:
            listeners = self._listeners.get(conversation_id)
            if listeners is None:
                listeners = self._listeners[conversation_id] = _Listeners()
            sub = LocalSubscription(self, conversation_id, listeners.bell, on_overflow)
            listeners.subscribers.add(sub)
            if self._ticker is None:
                self._start_ticker()
        return sub

    def catch_up(self, sub: LocalSubscription, backlog: Backlog, after: Position | None) -> None:
        """Give `sub` its backlog, then only the events after `backlog.position`."""
        with self._lock:
            sub.catch_up(backlog, after)

    def deliver(self, conversation_id: str, event: StoredEvent) -> None:
        """Hand an event to the conversation's local subscribers and wake them. A backend calls this for one
        conversation at a time and in position order; it never waits on a subscriber."""
        with self._lock:
            listeners = self._listeners.get(conversation_id)
            if listeners is None:
                return
            dropped = [sub for sub in listeners.subscribers if not sub.offer(event)]
            if dropped:
                listeners.subscribers.difference_update(dropped)
                if not listeners.subscribers:
                    del self._listeners[conversation_id]
            listeners.bell.ring()
        for sub in dropped:
            if sub.overflowed:
                metrics.subscriber_cut("overflow")
                if sub.on_overflow is not None:
                    sub.on_overflow()

    def end_all(self, notice: Callable[[Position], StoredEvent], reason: str) -> int:
        """End every local subscription after the events it holds, with `notice(position)` (an event that
        leaves the client's Last-Event-ID as it was) as its last: a shared log that lost its engine can
        no longer promise them the next event. Returns how many were ended (counted as cut for `reason`)."""
        with self._lock:
            listeners, self._listeners = self._listeners, {}
        ended = 0
        for group in listeners.values():
            for sub in group.subscribers:
                if sub.ended:
                    continue
                last = sub.buffer[-1].id if sub.buffer else sub._position
                if last is not None:
                    sub.buffer.append(notice(last))
                sub.ended = True
                ended += 1
            group.bell.ring()
        if ended:
            metrics.subscriber_cut(reason, ended)
        return ended

    def remove(self, sub: LocalSubscription) -> None:
        with self._lock:
            listeners = self._listeners.get(sub.conversation_id)
            if listeners is not None:
                listeners.subscribers.discard(sub)
                if not listeners.subscribers:
                    del self._listeners[sub.conversation_id]

    def conversations(self) -> list[str]:
        """The conversations with local subscribers: what a reader of a shared log fetches events for."""
        with self._lock:
            return list(self._listeners)

    def count(self, conversation_id: str | None = None) -> int:
        """Local subscribers of one conversation, or of all."""
        with self._lock:
            if conversation_id is not None:
                listeners = self._listeners.get(conversation_id)
                return len(listeners.subscribers) if listeners else 0
            return sum(len(listeners.subscribers) for listeners in self._listeners.values())

    def _start_ticker(self) -> None:
        """Every `tick` seconds, beat the bell of each conversation whose last heartbeat is due: one
        wake-up per subscriber per heartbeat, and no timer per wait. The thread (a greenlet under
        gevent) holds the fan-out only weakly and ends with it."""
        ref = weakref.ref(self)

        def run() -> None:
            while True:
                fanout = ref()
                if fanout is None:
                    return
                tick = fanout.tick
                fanout._beat_due()
                del fanout
                time.sleep(tick)

        self._ticker = threading.Thread(target=run, name="event-fanout-ticker", daemon=True)
        self._ticker.start()

    def _beat_due(self) -> None:
        due = time.monotonic() - self.heartbeat + self.tick / 2
        with self._lock:
            bells = [listeners.bell for listeners in self._listeners.values() if listeners.bell.last_beat <= due]
        for bell in bells:
            bell.beat()
