"""What the gevent worker bounds on each connection before the app sees it: how long a request body may
take to arrive, and how many connections one client address may hold open at once.

gunicorn already cuts a request whose headers take longer than `keepalive` seconds; without these two
limits a client could send headers, then trickle (or never send) the body, and hold a greenlet slot for
ever, thousands of times over. The master imports this module (through the worker class), so it imports
nothing that gevent must patch first.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import gevent

from common.config import Env
from common.errors import RequestTimeout

T = TypeVar("T")


@dataclass(frozen=True)
class ConnectionLimits:
    """The settings; a cap of 0 means no cap (the worker's `WORKER_CONNECTIONS` is then the only bound)."""

    body_read_seconds: float
    per_address: int
    per_loopback_address: int

    @classmethod
    def from_env(cls, values: Mapping[str, str] | None = None) -> ConnectionLimits:
        env = Env(values)
        return cls(
            body_read_seconds=env.float("BODY_READ_TIMEOUT_SECONDS", 20.0, minimum=0.1),
            per_address=env.int("MAX_CONNECTIONS_PER_ADDRESS", 1000, minimum=0),
            # A reverse proxy on the same host brings every client from 127.0.0.1, so no cap by default.
            per_loopback_address=env.int("MAX_CONNECTIONS_PER_LOOPBACK_ADDRESS", 0, minimum=0),
        )

    def cap_for(self, address: str) -> int:
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:  # a Unix socket has no peer address; treat it like the local machine
            loopback = True
        return self.per_loopback_address if loopback else self.per_address


def peer_address(addr: Any) -> str:
    """The client's IP address from a socket's peer address (a tuple for TCP, a string for Unix sockets)."""
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


class AddressCounter:
    """Open connections per client address in this worker process (greenlets only: no lock needed)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more connection from `address`, or return False if it already holds its cap."""
        cap = self.limits.cap_for(address)
        held = self.open.get(address, 0)
        if cap and held >= cap:
            return False
        self.open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self.open.get(address, 0) - 1
        if held > 0:
            self.open[address] = held
        else:
            self.open.pop(address, None)


def too_many_connections_response(cap: int) -> bytes:
    """The whole HTTP response for a connection over its address's cap, in the one error shape."""
    body = json.dumps({"error": {"code": "too_many_connections", "message": (
        f"this address already has {cap} open connections; close some and retry"), "details": {"limit": cap}}})
    return (f"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Retry-After: 1\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


class DeadlineBody:
    """A request body (`wsgi.input`) that must arrive in full within `seconds` of the first read; past
    that a read raises `RequestTimeout` (408) and `expired` tells the worker to close the connection."""

    def __init__(self, body: Any, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.body = body
        self.seconds = seconds
        self.clock = clock
        self.deadline: float | None = None
        self.expired = False

    def _within_deadline(self, read: Callable[..., T], *args: Any) -> T:
        if self.deadline is None:
            self.deadline = self.clock() + self.seconds
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            self.expired = True
            raise RequestTimeout(details={"limit_seconds": self.seconds})
        timer = gevent.Timeout(remaining)
        timer.start()
        try:
            return read(*args)
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            self.expired = True
            raise RequestTimeout(details={"limit_seconds": self.seconds}) from None
        finally:
            timer.close()

    def read(self, size: int | None = None) -> bytes:
        return self._within_deadline(self.body.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._within_deadline(self.body.readline, size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return self._within_deadline(self.body.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line
