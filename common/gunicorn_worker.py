"""The gevent worker, answering requests gunicorn refuses itself (over-long request lines or headers,
malformed HTTP) in the JSON error shape instead of gunicorn's HTML page.

Used by gunicorn.conf.py as `worker_class`. The master imports this module too, before gevent patches
anything, so it imports only gunicorn here.
"""

from __future__ import annotations

import json

from gunicorn import util
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
