"""A background SSE reader for system tests: collects a stream's events while the test drives the API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests
import sseclient

from tests.system.support.polling import wait_until


@dataclass(frozen=True)
class Received:
    id: str | None
    event: str
    data: dict


class StreamReader:
    def __init__(self, url: str, token: str | None = None, last_event_id: str | None = None,
                 params: dict | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(url, headers=headers, params=params, stream=True, timeout=(5, 30))
        self.status = self.response.status_code
        self.events: list[Received] = []
        self.retry: str | None = None
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()

    def _read(self) -> None:
        try:
            for event in sseclient.SSEClient(self.response).events():
                if event.retry and self.retry is None:
                    self.retry = event.retry
                self.events.append(Received(event.id, event.event, json.loads(event.data)))
        except Exception as exc:  # noqa: BLE001 - a closed stream is the normal way to stop
            self.error = exc
        finally:
            self.ended.set()

    def types(self) -> list[str]:
        return [event.event for event in self.events]

    def wait_for(self, event_type: str, timeout: float = 15, count: int = 1) -> list[Received]:
        return wait_until(lambda: [e for e in self.events if e.event == event_type][count - 1:] and
                          [e for e in self.events if e.event == event_type], timeout,
                          message=f"{count} '{event_type}' event(s); got {self.types()}")

    def close(self) -> None:
        self.response.close()


class ResumingReader:
    """A stream client that, when its connection ends, reconnects to the next base URL in turn with the
    Last-Event-ID of the last event it received, as a browser's EventSource does behind a router. It keeps
    every event of every connection (each starts with its own `connected`); `connections` counts them,
    `interruptions` says why each connection ended or failed, `connected_at` when each opened (time.time()).
    It waits `pause` seconds before reconnecting, as EventSource waits its `retry`."""

    def __init__(self, bases: list[str], path: str, token: str, attempts: int = 50, pause: float = 0.05) -> None:
        self.bases, self.path, self.token, self.attempts, self.pause = bases, path, token, attempts, pause
        self.events: list[Received] = []
        self.connections = 0
        self.connected_at: list[float] = []
        self.base_index = 0
        self.closed = threading.Event()
        self.ended = threading.Event()
        self.interruptions: list[str] = []
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def last_id(self) -> str | None:
        return next((e.id for e in reversed(self.events) if e.id), None)

    def seen(self) -> list[Received]:
        """The events received, without each connection's `connected`."""
        return [e for e in self.events if e.event != "connected"]

    def _run(self) -> None:
        try:
            for _ in range(self.attempts):
                if self.closed.is_set():
                    return
                self._connect_once()
                if self.closed.is_set():
                    return
                self.base_index = (self.base_index + 1) % len(self.bases)
                time.sleep(self.pause)
            self.interruptions.append(f"gave up after {self.attempts} connections")
        finally:
            self.ended.set()

    def _connect_once(self) -> None:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        try:
            response = requests.get(self.bases[self.base_index] + self.path, headers=headers, stream=True,
                                    timeout=(2, 10))
        except requests.RequestException as exc:
            self.interruptions.append(f"connect: {exc.__class__.__name__}")
            return
        self._response = response
        if response.status_code != 200:
            self.interruptions.append(f"status {response.status_code}")
            response.close()
            return
        self.connections += 1
        self.connected_at.append(time.time())
        try:
            for event in sseclient.SSEClient(response).events():
                self.events.append(Received(event.id, event.event, json.loads(event.data)))
        except Exception as exc:  # noqa: BLE001 - a cut connection is what this reader is for
            if not self.closed.is_set():
                self.interruptions.append(f"read: {exc.__class__.__name__}")
        finally:
            response.close()

    def close(self) -> None:
        self.closed.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(5)


def close_all(readers: Sequence[StreamReader | ResumingReader]) -> None:
    """Close many readers at once. Closing a response another thread is reading waits for that read to
    return (the buffered reader's lock), up to a heartbeat away: one by one, 50 streams took ~27 s."""
    threads = [threading.Thread(target=reader.close, daemon=True) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
