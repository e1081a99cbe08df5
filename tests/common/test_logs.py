"""Log lines as text for people or one JSON object per line for aggregators, each with the request id and
trace id of the work that wrote it (none outside a request)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys

from common import logs, tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def record(message: str = "stored %s", *args: object, exc_info: object = None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("memory_service.store", logging.WARNING, __file__, 1, message, args or ("m1",),
                             exc_info)  # type: ignore[arg-type]
    made.__dict__.update(extra)
    return made


def formatted(formatter: logging.Formatter, made: logging.LogRecord, trace: tracing.Trace | None = None) -> str:
    def run() -> str:
        if trace is not None:
            tracing.enter(trace)
        logs.TraceIds().filter(made)
        return formatter.format(made)

    return contextvars.Context().run(run)


def test_a_json_line_has_every_field_and_null_ids_outside_a_request():
    line = json.loads(formatted(logs.JsonFormatter("memory"), record()))
    assert line == {"time": line["time"], "level": "WARNING", "service": "memory", "logger": "memory_service.store",
                    "message": "stored m1", "request_id": None, "trace_id": None, "pid": line["pid"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_a_json_line_written_while_serving_a_request_has_its_ids():
    trace = tracing.begin(f"00-{TRACE}-00f067aa0ba902b7-01", None, "req-7")
    line = json.loads(formatted(logs.JsonFormatter("core"), record(), trace))
    assert (line["request_id"], line["trace_id"]) == ("req-7", TRACE)


def test_an_exception_is_a_field_and_the_line_stays_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        made = record("failed:\n%s", "two lines", exc_info=sys.exc_info())
    text = formatted(logs.JsonFormatter("core"), made)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed:\ntwo lines"
    assert line["exception"].startswith("Traceback") and "ValueError: bad\nthing" in line["exception"]


def test_an_access_lines_fields_and_ids_come_from_the_call():
    made = record("POST /tool/store_input HTTP/1.1", request_id="req-9", trace_id=TRACE, route="/tool/<path:name>",
                  method="POST", status=200, duration_ms=1.5)
    made.args = ()
    other = tracing.begin(None, None, "someone-else")  # given ids win over the current trace
    line = json.loads(formatted(logs.JsonFormatter("memory"), made, other))
    assert {key: line[key] for key in ("message", "request_id", "trace_id", "route", "method", "status",
                                       "duration_ms")} == {
        "message": "POST /tool/store_input HTTP/1.1", "request_id": "req-9", "trace_id": TRACE,
        "route": "/tool/<path:name>", "method": "POST", "status": 200, "duration_ms": 1.5}


def test_a_text_line_names_the_service_request_and_trace():
    trace = tracing.begin(f"00-{TRACE}-00f067aa0ba902b7-01", None, "req-7")
    inside = formatted(logs.TextFormatter("core"), record(), trace)
    outside = formatted(logs.TextFormatter("core"), record())
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} WARNING core \[req-7\] trace={TRACE} "
                        r"memory_service.store: stored m1", inside), inside
    assert " WARNING core [-] trace=- memory_service.store: stored m1" in outside


def test_the_format_is_chosen_by_name():
    assert isinstance(logs.formatter("json", "core"), logs.JsonFormatter)
    assert isinstance(logs.formatter("text", "core"), logs.TextFormatter)
