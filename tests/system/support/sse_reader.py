"""A background SSE reader for system tests: collects a stream's events while the test drives the API."""

from __future__ import annotations

import json
import threading
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
