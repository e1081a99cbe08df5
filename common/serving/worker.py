"""The gevent worker, answering requests gunicorn refuses itself (over-long request lines or headers,
malformed HTTP) in the JSON error shape instead of gunicorn's HTML page; and the logger that keeps
credentials sent in URLs out of the logs.

Used by gunicorn.conf.py as `worker_class` and `logger_class`. The master imports this module too,
before gevent patches anything, so it imports only gunicorn and the standard library here.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import gevent
from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker

from common.serving.connection_limits import (
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
            finish_answered(sock)
            raise StopIteration()
        return bool(served)


def refuse_connection(client: Any, cap: int) -> None:
    """Answer 429 and close; the client may already have sent its request (see `finish_answered`)."""
    try:
        client.sendall(too_many_connections_response(cap))
        finish_answered(client)
    except OSError:
        pass
    finally:
        util.close(client)


def finish_answered(client: Any) -> None:
    """After the last answer on a connection whose client may still be sending: end our side, and read
    (for at most half a second) what the client still sends, because closing with unread bytes makes the
    kernel reset the connection, and the client loses the answer it has not read yet."""
    try:
        client.shutdown(socket.SHUT_WR)
        with gevent.Timeout(0.5, False):
            while client.recv(65536):
                pass
    except OSError:
        pass

# Query parameters that carry credentials: the stream's `?access_token=` and `?ticket=`, and the names
# other clients commonly use for the same thing.
_SECRET_QUERY = re.compile(r"(?i)((?:^|[?&;])"
                           r"(?:access(?:_|%5f)token|ticket|token|api_key|apikey|key|password|secret)=)[^&;#\s]*")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the value of every credential-like query parameter replaced."""
    return _SECRET_QUERY.sub(r"\1" + REDACTED, text) if "=" in text else text


class RedactingLogger(Logger):
    """gunicorn's logger, with credentials in request URLs (access log lines, and the error log's
    "Error handling request" lines) replaced by `[redacted]`."""

    def atoms(self, resp, req, environ, request_time) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        # Every atom: the request line and query (r, q), the Referer (f), and the {...}e environ values.
        return {name: redact(value) if isinstance(value, str) else value for name, value in atoms.items()}

    def error(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().error(msg, *_redacted(args), **kwargs)

    def exception(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().exception(msg, *_redacted(args), **kwargs)

    def warning(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().warning(msg, *_redacted(args), **kwargs)

    def info(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().info(msg, *_redacted(args), **kwargs)


def _redacted(args: tuple) -> tuple:
    return tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
