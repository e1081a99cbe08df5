"""How log lines look: text for people (`LOG_FORMAT=text`, the default) or one JSON object per line for log
aggregators (`LOG_FORMAT=json`), each with the request id and trace id of the work that wrote it.

Used by the apps' own logging (common/request_ids.py) and by gunicorn's logger (common/serving/worker.py),
whose master imports it before gevent patches anything, so it imports only the standard library and
`common.tracing`.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable

from common import tracing

LOG_FORMATS = ("text", "json")
# What gunicorn's access lines add (common/serving/worker.py), written as fields of their own in JSON.
ACCESS_FIELDS = ("route", "method", "status", "duration_ms", "remote_addr")
# Where the app leaves a request's ids and route in its WSGI environ (common/request_ids.py) for gunicorn's
# access line, which is written after the app is done with the request (gunicorn.conf.py names them too).
ENVIRON_REQUEST_ID = "cortex.request_id"
ENVIRON_TRACE_ID = "cortex.trace_id"
ENVIRON_ROUTE = "cortex.route"


class TraceIds(logging.Filter):
    """Gives each record the `request_id` and `trace_id` of the work that logs it (None outside any), unless
    the call already passed them (`extra=`), as gunicorn's access lines do from the request's environ."""

    def __init__(self, lookup: Callable[[], tracing.Trace | None] = tracing.current) -> None:
        super().__init__()
        self.lookup = lookup

    def filter(self, record: logging.LogRecord) -> bool:
        if "trace_id" not in record.__dict__:
            trace = self.lookup()
            record.request_id = trace.request_id if trace else None
            record.trace_id = trace.trace_id if trace else None
        return True


class TextFormatter(logging.Formatter):
    """`2024-05-01 12:00:00,123 INFO core [<request id>] trace=<trace id> core_app.replies: message`."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or "-"
        trace_id = getattr(record, "trace_id", None) or "-"
        return (f"{record.asctime} {record.levelname} {self.service} [{request_id}] trace={trace_id} "
                f"{record.name}: {record.message}")

    def usesTime(self) -> bool:
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601, UTC), level, service, logger, message,
    request_id, trace_id (null outside a request), pid; an access line's route, method, status,
    duration_ms and remote_addr; and a traceback as `exception`."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "trace_id": getattr(record, "trace_id", None),
            "pid": record.process,
        }
        for name in ACCESS_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def formatter(log_format: str, service: str) -> logging.Formatter:
    """The formatter for `LOG_FORMAT` (`text` or `json`)."""
    return JsonFormatter(service) if log_format == "json" else TextFormatter(service)
