"""SSE clients for the load and fault tests: they see heartbeats (sseclient-py hides them), so a
reader can notice a stop request on an idle stream, and they stamp every event with its arrival time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests

HEARTBEAT = None  # what `frames` yields for a comment-only frame


@dataclass(frozen=True)
class Frame:
    id: str | None  # opaque: compared for equality only
    event: str
    data: dict
    at: float  # time.monotonic() when the frame was complete


def parse_frame(raw: bytes, at: float) -> Frame | None:
    """One SSE frame (the bytes between blank lines); None when it holds only comments or `retry:`."""
    fields: dict[str, str] = {}
    for line in raw.decode("utf-8").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    if "data" not in fields:
        return None
    return Frame(fields.get("id"), fields.get("event", "message"),
                 json.loads(fields["data"]), at)


def frames(response: requests.Response) -> Iterator[Frame | None]:
    """Frames as they arrive (chunked reads yield each chunk the server flushed), heartbeats as None."""
    pending = b""
    for chunk in response.iter_content(chunk_size=None):
        pending += chunk
        while b"\n\n" in pending:
            raw, pending = pending.split(b"\n\n", 1)
            yield parse_frame(raw, time.monotonic())


def open_stream(url: str, token: str, last_event_id: str | None = None, as_query: bool = False,
                ) -> requests.Response:
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
    params = {}
    if last_event_id is not None:
        if as_query:
            params["last_event_id"] = last_event_id
        else:
            headers["Last-Event-ID"] = last_event_id
    response = requests.get(url, headers=headers, params=params, stream=True, timeout=(5, 10))
    response.raise_for_status()
    return response


class StreamRecorder:
    """Reads one stream in a daemon thread, keeping every non-heartbeat frame with its arrival time."""

    def __init__(self, url: str, token: str, deadline_s: float = 60) -> None:
        self.response = open_stream(url, token)
        self.frames: list[Frame] = []
        self.ended = threading.Event()
        self._deadline = time.monotonic() + deadline_s
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in frames(self.response):
                if frame is not HEARTBEAT:
                    self.frames.append(frame)
                if time.monotonic() > self._deadline:
                    break
        except (requests.RequestException, OSError, AttributeError):
            pass  # closing the response from the test thread ends the read this way
        finally:
            self.ended.set()

    def of_type(self, event: str) -> list[Frame]:
        return [frame for frame in list(self.frames) if frame.event == event]

    def close(self) -> None:
        self.response.close()
        self._thread.join(5)
