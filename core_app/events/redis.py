"""The Redis Streams event log: one stream per conversation (`{prefix}:conversation:{id}`), trimmed to the
retention, whose stream ids are the event ids, so any Core process (and any Core after a restart) can
resume a client from any other's id while Redis retains it. Publishing is one script call from a small
connection pool; each process's local subscribers are fed by its one reader (`redis_reader.Reader`).

Imported only by `open_event_log` when REDIS_URL is set, hence only in a worker after gevent's patching:
redis-py must never be imported by what gunicorn's master loads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from common.sse import Event, dumps_line
from core_app.events.fanout import FanOut
from core_app.events.inprocess import EventId
from core_app.events.interface import EventLog, ReplayWindowExceeded, StreamUnavailable
from core_app.events.redis_reader import Outage, Reader
from core_app.events.stored import Backlog, Position, RetiredId, StoredEvent
from core_app.events.stream_ids import START, StreamId

log = logging.getLogger(__name__)

# Append with the id of the entry before it (`p`), atomically: the first retained entry's `p` is the
# last trimmed id, so a client resuming exactly there is told apart from one that missed events.
# (Redis 7 trims without recording what it trimmed: `max-deleted-entry-id` counts XDEL only.)
PUBLISH = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local previous = '0-0'
if last[1] then previous = last[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 't', ARGV[2], 'd', ARGV[3], 'p', previous)
"""


def wire(event_id: StreamId, event_type: str, data_line: str) -> bytes:
    """The SSE bytes `StoredEvent.create` would write, from the JSON line stored in Redis (not re-encoded)."""
    return f"id: {event_id}\nevent: {event_type}\ndata: {data_line}\n\n".encode()


def unavailable_notice(position: Position) -> StoredEvent:
    """The last event of a stream whose log lost Redis: no `id:` line, so the client resumes from its last event."""
    error = StreamUnavailable("the output stream lost its event log; reconnect with Last-Event-ID")
    return StoredEvent(position, "error", Event({"code": error.code, "message": error.message}, event="error").encode())


class RedisEventLog(EventLog):
    """Events of every Core process, in Redis, `retention` per conversation (trimmed exactly)."""

    def __init__(self, fanout: FanOut | None, url: str, *, prefix: str = "cortex", retention: int = 1000,
                 pool_size: int = 10, block_seconds: float = 5.0) -> None:
        super().__init__(fanout)
        self.url = url
        self.prefix = prefix
        self.retention = retention
        self.client_name = f"{prefix}:events"
        # Fail fast while Redis is down: a POST must not wait seconds on redis-py's default retries.
        self.pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=5, socket_connect_timeout=2, socket_timeout=5,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1), client_name=self.client_name)
        self.client = redis.Redis(connection_pool=self.pool)
        self._append = self.client.register_script(PUBLISH)
        self.outage = Outage()
        self.reader = Reader(self, block_seconds)

    def key(self, conversation_id: str) -> str:
        return f"{self.prefix}:conversation:{conversation_id}"

    def publish(self, conversation_id: str, event_type: str, data: dict[str, Any]) -> StoredEvent:
        """Append the event to the conversation's stream; this process's reader hands it to the fan-out.
        StreamUnavailable when Redis cannot be reached (the event is not published)."""
        line = dumps_line(data)
        with self.guard():
            raw = self._append(keys=[self.key(conversation_id)], args=[self.retention, event_type, line])
        event_id = StreamId.parse(raw)
        return StoredEvent(event_id, event_type, wire(event_id, event_type, line))

    def backlog(self, conversation_id: str, after: Position | None) -> Backlog:
        """The retained events after `after` (exclusive), read with XRANGE, and the reader told to follow
        the conversation from where they end; without `after`, none and the stream's last id (0-0 for an
        empty one). ReplayWindowExceeded for an id the stream no longer holds, StreamUnavailable without Redis."""
        if isinstance(after, RetiredId):
            raise ReplayWindowExceeded()
        key = self.key(conversation_id)
        with self.guard():
            if after is None:
                last: Any = self.client.xrevrange(key, count=1)
                events: list[StoredEvent] = []
                position = StreamId.parse(last[0][0]) if last else START
            else:
                assert isinstance(after, StreamId), "positions come from parse_position"
                entries: Any = self.client.xrange(key, min=str(after))
                events = self._after(entries, after)
                position = cast(StreamId, events[-1].id) if events else after
            self.reader.follow(conversation_id, position)
        return Backlog(events, position)

    def parse_position(self, raw: str) -> StreamId | RetiredId:
        """A Redis stream id; an id of the in-process log is a `RetiredId` (replayable nowhere); ValueError
        for anything else."""
        try:
            return StreamId.parse(raw)
        except ValueError:
            EventId.parse(raw)
            return RetiredId(raw.strip())

    def stored(self, raw_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
        """An entry of a conversation's stream as the fan-out takes it."""
        event_id, event_type = StreamId.parse(raw_id), fields[b"t"].decode()
        return StoredEvent(event_id, event_type, wire(event_id, event_type, fields[b"d"].decode()))

    def _after(self, entries: list, after: StreamId) -> list[StoredEvent]:
        """The entries from `after` on (XRANGE is inclusive) as events after it, if nothing between is lost."""
        if entries and StreamId.parse(entries[0][0]) == after:
            entries = entries[1:]
        elif not entries:
            if after != START:
                raise ReplayWindowExceeded()  # newer than the stream, or its stream is gone (Redis lost it)
        elif entries[0][1].get(b"p") != str(after).encode():
            raise ReplayWindowExceeded()  # the entries just after `after` were trimmed
        return [self.stored(raw_id, fields) for raw_id, fields in entries]

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run Redis calls; StreamUnavailable (at once, for a moment after a failure) when they fail."""
        if self.outage.failing():
            raise StreamUnavailable()
        try:
            yield
        except redis.RedisError as exc:
            self.lost(exc)
            raise StreamUnavailable() from None
        self.outage.ok()

    def lost(self, exc: Exception) -> None:
        """Redis failed: say so once per outage, and end this process's streams (they would miss events)."""
        self.outage.failed(exc)
        # Forget what the reader follows before ending the streams: a subscriber added after the end
        # then sets its own cursor and is followed again.
        self.reader.reset()
        self.fanout.end_all(unavailable_notice, reason="stream_unavailable")

    def close(self) -> None:
        """Stop the reader and close the connections (tests; a worker simply exits)."""
        self.reader.stop()
        self.pool.disconnect()
