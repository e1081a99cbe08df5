"""The gevent worker, answering requests gunicorn refuses itself (over-long request lines or headers,
malformed HTTP) in the JSON error shape instead of gunicorn's HTML page; and the logger that keeps
credentials sent in URLs out of the logs and writes JSON lines under `LOG_FORMAT=json`.

Used by gunicorn.conf.py as `worker_class` and `logger_class`. The master imports this module too,
before gevent patches anything, so it imports only gunicorn, the standard library and the parts of ours
made of nothing else (connection limits, log formats) here.
"""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

import gevent
from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker

from common import logs
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
            count_refusal(getattr(self.app, "app_uri", None))  # first: the refusal waits for the client to go
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


def count_refusal(app_uri: str | None) -> None:
    """Count a connection refused for its address's cap as the service's rate-limit refusal. Imported here,
    not at the top: the master imports this module before gevent patches anything, and the app (loaded by
    then in this worker) has imported the metrics already."""
    from common import metrics

    metrics.rate_limited(service_name(app_uri), "max_connections_per_address")


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
# A credential header quoted whole in gunicorn's report of a malformed one ("Invalid HTTP Header:
# 'Authorization Bearer ...'", a header line without its colon).
_SECRET_HEADER = re.compile(r"(?i)(['\"]\s*(?:(?:proxy-)?authorization|(?:set-)?cookie|x-api-key))(\s*:?\s*)"
                            r"[^'\"\r\n]*")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the value of every credential-like query parameter, and of a credential header quoted in
    an error, replaced."""
    if "=" in text:
        text = _SECRET_QUERY.sub(r"\1" + REDACTED, text)
    return _SECRET_HEADER.sub(r"\1\2" + REDACTED, text)


# The app module each service's gunicorn serves, and the service name its log lines carry.
SERVICES = {"core_app": "core", "memory_service": "memory", "cognition_service": "cognition"}


def service_name(app_uri: str | None) -> str:
    """`core` for `core_app.app:create_app()`, and so on; the module's own name for any other app."""
    module = (app_uri or "").split(":", 1)[0].split(".", 1)[0]
    return SERVICES.get(module, module or "gunicorn")


class RedactingLogger(Logger):
    """gunicorn's logger, with credentials in request URLs (access log lines, and the error log's
    "Error handling request" lines) replaced by `[redacted]`; with `LOG_FORMAT=json`, its access and
    error lines are JSON objects like the app's own (common/logs.py)."""

    def setup(self, cfg) -> None:  # type: ignore[no-untyped-def]
        super().setup(cfg)
        # Read from the environment, as the master reads this before any service's configuration; a
        # value the service refuses stops its workers at start anyway.
        self.json_lines = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
        if self.json_lines:
            formatter = logs.JsonFormatter(service_name(cfg.proc_name))
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    if getattr(handler, "_gunicorn", False):
                        handler.setFormatter(formatter)

    def atoms(self, resp, req, environ, request_time) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        # Every atom: the request line and query (r, q), the Referer (f), and the {...}e environ values.
        return {name: redact(value) if isinstance(value, str) else value for name, value in atoms.items()}

    def access(self, resp, req, environ, request_time) -> None:  # type: ignore[no-untyped-def]
        """The access line; as JSON, the redacted request line as its message and the request's id, trace
        id and route as the app left them in the environ (common/request_ids.py), null if it never saw it."""
        if not self.json_lines:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        try:
            status = int(str(atoms["s"]).split(None, 1)[0])
        except ValueError:
            status = None
        self.access_log.info(atoms["r"], extra={
            "request_id": environ.get(logs.ENVIRON_REQUEST_ID), "trace_id": environ.get(logs.ENVIRON_TRACE_ID),
            "route": environ.get(logs.ENVIRON_ROUTE), "method": atoms["m"], "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 3), "remote_addr": atoms["h"]})

    # gunicorn formats some reports itself before logging them ("Invalid request from ip=...: <the request
    # line or header>"): the message is redacted as well as its arguments, at every level.
    def critical(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().critical(_redacted_message(msg), *_redacted(args), **kwargs)

    def error(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().error(_redacted_message(msg), *_redacted(args), **kwargs)

    def exception(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().exception(_redacted_message(msg), *_redacted(args), **kwargs)

    def warning(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().warning(_redacted_message(msg), *_redacted(args), **kwargs)

    def info(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().info(_redacted_message(msg), *_redacted(args), **kwargs)

    def debug(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().debug(_redacted_message(msg), *_redacted(args), **kwargs)


def _redacted_message(msg: Any) -> Any:
    return redact(msg) if isinstance(msg, str) else msg


def _redacted(args: tuple) -> tuple:
    return tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
