"""The gevent worker, answering requests gunicorn refuses itself (over-long request lines or headers,
malformed HTTP) in the JSON error shape instead of gunicorn's HTML page; and the logger that keeps
credentials sent in URLs out of the logs.

Used by gunicorn.conf.py as `worker_class` and `logger_class`. The master imports this module too,
before gevent patches anything, so it imports only gunicorn and the standard library here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker

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
        super().init_process()


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
