"""The one reader per Core process of the Redis event log, and the outage it reports once.

The reader holds one connection and runs one blocking XREAD over every conversation with local
subscribers, each from the last id it delivered, plus a private wake-up stream: a conversation newly
subscribed is added by writing to that stream, which ends the blocking read at once. 10,000 streams in a
process are one connection and one blocking read, not 10,000.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core_app.events.stream_ids import StreamId

if TYPE_CHECKING:
    from core_app.events.redis import RedisEventLog

log = logging.getLogger("core_app.events.redis")

# Entries per stream per read: bounds one read's reply while a burst is being caught up.
READ_COUNT = 500
# How long a wake-up stream outlives its last write (a killed process leaves it behind).
WAKE_TTL_SECONDS = 3600


class Outage:
    """Whether Redis is failing: logged once when it starts and once when it ends, and calls refused at
    once for `pause` seconds after each failure (a POST then answers without waiting on Redis)."""

    def __init__(self, pause: float = 0.5) -> None:
        self.pause = pause
        self.down_since: float | None = None
        self.retry_at = 0.0

    def failing(self) -> bool:
        return self.down_since is not None and time.monotonic() < self.retry_at

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self.retry_at = now + self.pause
        if self.down_since is None:
            self.down_since = now
            log.warning("Redis is unavailable (%s): events are not published and streams are refused until it "
                        "is back; messages are still stored", exc)

    def ok(self) -> None:
        if self.down_since is not None:
            log.warning("Redis is back after %.1f s: streams open again", time.monotonic() - self.down_since)
            self.down_since = None


class Reader:
    """Reads every followed conversation's stream from its cursor and feeds the fan-out, in id order."""

    def __init__(self, events: RedisEventLog, block_seconds: float = 5.0) -> None:
        self.events = events
        self.block_ms = max(1, int(block_seconds * 1000))
        # Its own connection (made at the first read, so Core starts while Redis is down): a blocking read
        # must never hold one of the publishers' pool.
        self.client = redis.Redis.from_url(
            events.url, max_connections=1, socket_connect_timeout=2,
            socket_timeout=block_seconds + 5, retry=Retry(NoBackoff(), 0), client_name=events.client_name)
        self.wake_key = f"{events.prefix}:reader:{uuid.uuid4().hex}"
        self.cursors: dict[str, StreamId] = {}
        self.reads = 0  # XREAD calls made, for tests and stats
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def follow(self, conversation_id: str, position: StreamId) -> None:
        """Deliver the conversation's events after `position` from now on (kept if already followed: the
        reader is then at most behind it, and the fan-out drops what a backlog already gave)."""
        with self._lock:
            new = conversation_id not in self.cursors
            if new:
                self.cursors[conversation_id] = position
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="redis-event-reader", daemon=True)
                self._thread.start()
        if new:
            self.wake()

    def wake(self) -> None:
        """End the reader's blocking read so that it reads the conversations followed now."""
        pipe = self.events.client.pipeline(transaction=False)
        pipe.xadd(self.wake_key, {"w": "1"}, maxlen=1)
        pipe.expire(self.wake_key, WAKE_TTL_SECONDS)
        pipe.execute()

    def reset(self) -> None:
        """Follow nothing (Redis failed and the streams are being ended)."""
        with self._lock:
            self.cursors.clear()

    def stop(self) -> None:
        self._stopped = True
        thread = self._thread
        if thread is not None:
            try:
                self.wake()
                self.events.client.delete(self.wake_key)
            except redis.RedisError:
                pass
            thread.join(timeout=5)
        self.client.close()

    def _streams(self, wake_cursor: bytes) -> dict[Any, Any]:
        """What to read now: the wake-up stream and each followed conversation still listened to here."""
        with self._lock:
            # Looked at under the lock: `follow` sets a cursor under it after the subscriber was added to
            # the fan-out, so a cursor set since is never pruned on an older look.
            listened = set(self.events.fanout.conversations())
            for conversation_id in [c for c in self.cursors if c not in listened]:
                del self.cursors[conversation_id]
            streams: dict[Any, Any] = {self.wake_key: wake_cursor}
            streams.update({self.events.key(c): str(p) for c, p in self.cursors.items()})
        return streams

    def _run(self) -> None:
        wake_cursor: bytes = b"0-0"
        pause = 0.05
        key_prefix = self.events.key("").encode()
        while not self._stopped:
            try:
                reply: Any = self.client.xread(self._streams(wake_cursor), count=READ_COUNT, block=self.block_ms)
                self.reads += 1
            except redis.RedisError as exc:
                if self._stopped:
                    return
                self.events.lost(exc)
                time.sleep(pause)  # the connection is dropped; the next read reconnects
                pause = min(pause * 2, 1.0)
                continue
            pause = 0.05
            self.events.outage.ok()
            for key, entries in (reply.items() if isinstance(reply, dict) else reply or []):
                name = key if isinstance(key, bytes) else key.encode()
                if name == self.wake_key.encode():
                    wake_cursor = entries[-1][0]
                elif entries:
                    self._deliver(name[len(key_prefix):].decode(), entries)

    def _deliver(self, conversation_id: str, entries: list) -> None:
        fanout, last = self.events.fanout, None
        for raw_id, fields in entries:
            event = self.events.stored(raw_id, fields)
            fanout.deliver(conversation_id, event)
            last = cast(StreamId, event.id)
        with self._lock:
            current = self.cursors.get(conversation_id)
            # Never backwards: a subscriber that came meanwhile may have moved it past this batch.
            if current is not None and last is not None and last > current:
                self.cursors[conversation_id] = last
