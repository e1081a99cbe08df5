"""Server-Sent Events: the wire format and the helpers that stream it from Flask.

`Event.encode()` is the exact bytes on the wire. `sse_response` sets the headers every stream needs;
`finite_stream` frames a resource (ids from 1, `event: end` with the count, `event: error` on failure);
`live_stream` relays a subscription with heartbeats and always releases it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Response

from common import metrics
from common.errors import ServiceError, ToolExecutionError

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
HEARTBEAT = b": ping\n\n"


def dumps_line(data: Any) -> str:
    """JSON on one line: json escapes newlines inside strings, so a payload can never split an event."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Event:
    """One SSE event. `data` is JSON-encoded onto a single `data:` line."""

    data: Any
    event: str | None = None
    id: int | str | None = None
    retry: int | None = None

    def encode(self) -> bytes:
        lines = []
        if self.retry is not None:
            lines.append(f"retry: {int(self.retry)}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        lines.append(f"data: {dumps_line(self.data)}")
        return ("\n".join(lines) + "\n\n").encode("utf-8")


class Encodable(Protocol):
    """Anything that knows its own wire bytes: an `Event`, or an event encoded once for many streams."""

    def encode(self) -> bytes: ...


def sse_response(chunks: Iterable[bytes], status: int = 200) -> Response:
    """Wrap encoded chunks in a streaming response with the headers proxies and browsers need."""
    return Response(chunks, status=status, mimetype="text/event-stream", headers=HEADERS)


def finite_stream(items: Iterable[dict]) -> Iterator[bytes]:
    """Frame a finite resource; an error after the first byte can only be reported in-band."""
    count = 0
    try:
        for item in items:
            count += 1
            yield Event(item, id=count).encode()
    except ServiceError as exc:
        yield Event(exc.to_body(), event="error").encode()
        return
    except Exception:
        log.exception("resource stream failed after %d items", count)
        error = ToolExecutionError("the stream failed; see the service log")
        yield Event(error.to_body(), event="error").encode()
        return
    yield Event({"count": count}, event="end").encode()


class Subscription(Protocol):
    """A live source of events for one client."""

    def wait(self, timeout: float) -> Sequence[Encodable] | None:
        """Events ready within `timeout` (maybe none); None once the subscription has ended."""

    def close(self) -> None:
        """Release whatever the subscription holds; called exactly once when the stream ends."""

    def end(self) -> None:
        """Wake a waiting `wait` and make it return None (used at shutdown)."""


class _LiveRegistry:
    """Every open live subscription of this process, so shutdown can end them all at once."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.closing = False

    def add(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.add(sub)

    def discard(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)

    def end_all(self) -> None:
        self.closing = True
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.end()


LIVE = _LiveRegistry()


def live_stream(sub: Subscription, heartbeat_seconds: float, first: Iterable[Encodable] = (),
                check: Callable[[], Encodable | None] | None = None) -> Iterator[bytes]:
    """Relay `sub` until it ends or the client goes away; heartbeats also reveal a vanished client.
    `check` runs at every wake-up (each batch of events and each heartbeat); an event it returns is
    sent last and ends the stream (an expired token, a reader who lost access). The stream counts as
    open (`cortex_streams_open`) from its first byte to its end, however it ends."""
    LIVE.add(sub)
    metrics.stream_opened()
    try:
        for event in first:
            yield event.encode()
        while not LIVE.closing:
            events = sub.wait(heartbeat_seconds)
            if events is None:
                break
            final = check() if check is not None else None
            if final is not None:
                # Whatever arrived with the news is not for this reader any more.
                yield final.encode()
                return
            if not events:
                yield HEARTBEAT
                continue
            yield b"".join(event.encode() for event in events)
        if LIVE.closing:
            # Other ends of a subscription (cut off for falling behind, a lost event log) are counted
            # where they happen; this one only the registry knows about.
            metrics.subscriber_cut("shutdown")
    finally:
        metrics.stream_closed()
        LIVE.discard(sub)
        sub.close()
