"""Holding many streams for the scale-out scenarios: like `streams.MarkerStream`, but a stream the Core
refuses (a burst of opens can find Memory's connection pool full: 503 `busy`, retry shortly) is noticed at
once and opened again, instead of being waited for until a deadline."""

from __future__ import annotations

import re
import time

import gevent

from benchkit.wire import EventStream

MARKER = re.compile(rb"broadcast-\d+-[0-9a-f]{6}")


class HeldStream(EventStream):
    """Notes when a broadcast marker's bytes arrive (parsing every event would make this process the limit)."""

    def __init__(self, port: int, path: str, received: dict[str, list[float]]) -> None:
        super().__init__(port, path)
        self.received = received
        self.refused = False
        self.seen: set[str] = set()

    def run(self) -> None:
        tail = b""
        try:
            first = True
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                now = time.monotonic()
                if first and not chunk.startswith(b"HTTP/1.1 200"):
                    self.refused = True
                    self.close()
                    return
                first = False
                if not self.connected and b"event: connected" in chunk:
                    self.connected = True
                window = tail + chunk
                for marker in MARKER.findall(window):
                    key = marker.decode()  # a marker split across two reads is seen in the overlap: once
                    if key not in self.seen:
                        self.seen.add(key)
                        self.received.setdefault(key, []).append(now)
                tail = window[-64:]
        except OSError:
            return


def hold(port: int, path: str, count: int, received: dict[str, list[float]], tries: int = 5) -> list[HeldStream]:
    """Open `count` streams in batches of 250 (the listen backlog never overflows); refused ones again."""
    held: list[HeldStream] = []
    for _ in range(tries):
        wanted = count - len(held)
        for start in range(0, wanted, 250):
            batch = [HeldStream(port, path, received) for _ in range(min(250, wanted - start))]
            for stream in batch:
                gevent.spawn(stream.run)
            deadline = time.monotonic() + 60
            while not all(s.connected or s.refused for s in batch) and time.monotonic() < deadline:
                gevent.sleep(0.02)
            held += [s for s in batch if s.connected]
            for stream in batch:
                if not stream.connected:
                    stream.close()
        if len(held) >= count:
            break
        gevent.sleep(0.5)
    return held
