"""Reading the output stream (SPEC §7) through the Flask test client: SSE frames as a client sees them,
a reader with deadlines, and `listening` to open a stream that must be accepted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient


@dataclass(frozen=True)
class Frame:
    """One SSE frame as a client sees it; `comment` is set for heartbeat lines (`: ping`)."""

    id: str | None = None
    event: str | None = None
    data: Any = None
    retry: int | None = None
    comment: str | None = None


def parse_frame(raw: str) -> Frame:
    fields: dict[str, Any] = {}
    for line in raw.split("\n"):
        if line.startswith(":"):
            fields["comment"] = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            fields["data"] = json.loads(value)
        elif name == "retry":
            fields["retry"] = int(value)
        elif name in ("id", "event"):
            fields[name] = value
    return Frame(**fields)


class StreamEnded(AssertionError):
    """The server closed the stream (a test that did not expect it fails with this)."""


class EventReader:
    """Reads frames off a streamed test-client response. Heartbeats arrive every 0.2 s, so every read
    returns promptly and the deadline is checked between them."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self._chunks = iter(response.response)
        self._buffer = b""
        self.first_chunk: bytes | None = None

    def frame(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete SSE frame within {timeout} s")
            chunk = next(self._chunks, None)
            if chunk is None:
                raise StreamEnded("the server ended the stream")
            if self.first_chunk is None:
                self.first_chunk = chunk
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n\n", 1)
        return parse_frame(raw.decode("utf-8"))

    def event(self, timeout: float = 5.0) -> Frame:
        """The next event, skipping heartbeats."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frame(max(0.0, deadline - time.monotonic()))
            if frame.comment is None:
                return frame

    def until(self, done: Callable[[Frame], bool], timeout: float = 5.0) -> list[Frame]:
        """Events up to and including the first one for which `done` is true."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            event = self.event(max(0.0, deadline - time.monotonic()))
            events.append(event)
            if done(event):
                return events

    def rest(self, timeout: float = 5.0) -> list[Frame]:
        """Every event until the server ends the stream."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            try:
                events.append(self.event(max(0.0, deadline - time.monotonic())))
            except StreamEnded:
                return events

    def heartbeat(self, timeout: float = 2.0) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frame(max(0.0, deadline - time.monotonic()))
            if frame.comment is not None:
                return frame


def assistant_message_for(message: dict) -> Callable[[Frame], bool]:
    """True for the final `message` event carrying the assistant's reply to `message`."""
    return lambda e: (e.event == "message" and e.data["role"] == "assistant"
                      and e.data["metadata"].get("in_reply_to") == message["id"])


def stream_url(conversation_id: str) -> str:
    return f"/v1/conversation/{conversation_id}/messages/stream"


@contextmanager
def listening(client: FlaskClient, conversation_id: str, *, headers: dict[str, str] | None = None,
              query: dict[str, str] | None = None) -> Iterator[EventReader]:
    """An open output stream that must be accepted (200); always closed afterwards."""
    response = client.get(stream_url(conversation_id), headers=headers or {}, query_string=query or {},
                          buffered=False)
    try:
        assert response.status_code == 200, response.get_data()[:500]
        yield EventReader(response)
    finally:
        response.close()
