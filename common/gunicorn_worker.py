"""The gevent worker, answering requests gunicorn refuses itself (over-long request lines or headers,
malformed HTTP) in the JSON error shape instead of gunicorn's HTML page.

Used by gunicorn.conf.py as `worker_class`. The master imports this module too, before gevent patches
anything, so it imports only gunicorn here.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from common.connection_limits import (
    AddressCounter,
    ConnectionLimits,
    DeadlineBody,
    peer_address,
    too_many_connections_response,
)

_CODES = {400: "invalid_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
          431: "headers_too_large", 500: "internal_error", 501: "not_implemented"}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"error": {"code": _CODES.get(status_int, "invalid_request"),
                                 "message": f"{reason}: {mesg}"[:300] if mesg else reason, "details": {}}})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, (head + body).encode("latin1", "replace"))


class JsonErrorGeventWorker(GeventWorker):
    def init_process(self) -> None:
        # gunicorn's handle_error writes its page through util.write_error; in this worker process that
        # function writes our shape instead. Only handle_error calls it.
        util.write_error = write_json_error
        self.limits = ConnectionLimits.from_env()  # gunicorn.conf.py already refused invalid values
        self.connections = AddressCounter(self.limits)
        super().init_process()

    def handle(self, listener, client, addr) -> None:  # type: ignore[no-untyped-def]
        """Serve the connection unless its address already holds its cap of open connections."""
        address = peer_address(addr)
        if not self.connections.acquire(address):
            refuse_connection(client, self.limits.cap_for(address))
            return
        try:
            super().handle(listener, client, addr)
        finally:
            self.connections.release(address)

    def handle_request(self, listener_name, req, sock, addr) -> bool:  # type: ignore[no-untyped-def]
        """Serve one request whose body must arrive within BODY_READ_TIMEOUT_SECONDS; after a 408 the rest
        of that body is still unread, so the connection closes instead of serving another request."""
        body, req.body = req.body, DeadlineBody(req.body, self.limits.body_read_seconds)
        try:
            served = super().handle_request(listener_name, req, sock, addr)
        finally:
            expired, req.body = req.body.expired, body  # gunicorn drains the rest through the original
        if expired:
            raise StopIteration()
        return bool(served)


def refuse_connection(client: Any, cap: int) -> None:
    """Answer 429 and close. The client may already have sent its request: read it (briefly) after the
    answer, because closing with unread bytes makes the kernel reset the connection and lose the answer."""
    try:
        client.sendall(too_many_connections_response(cap))
        client.shutdown(socket.SHUT_WR)
        with gevent.Timeout(0.5, False):
            while client.recv(65536):
                pass
    except OSError:
        pass
    finally:
        util.close(client)
