"""One message followed through the logs of all three services (issue 16 part 2): the trace id a client
sends in `traceparent` is on the Core's lines (the reply's background work's too), on Memory's and
Cognition's access lines for the calls the reply makes, and on their own lines; with LOG_FORMAT=json every
line of every log is a JSON object carrying it."""

from __future__ import annotations

import datetime
import json
import secrets
import uuid

import pytest

from tests.system.support.api import Api
from tests.system.support.polling import wait_until
from tests.system.support.stack import Stack, start_stack

PASSWORD = "a long enough password 42"
REQUIRED = {"time", "level", "service", "logger", "message", "request_id", "trace_id"}
ACCESS = {"route", "method", "status", "duration_ms"}


@pytest.fixture
def text_stack(tmp_path):
    started = start_stack(tmp_path, common_env={"LOG_LEVEL": "DEBUG"})
    yield started
    started.stop()


@pytest.fixture
def json_stack(tmp_path):
    started = start_stack(tmp_path, common_env={"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"})
    yield started
    started.stop()


def send_traced_message(stack: Stack) -> tuple[str, str]:
    """Post one message with a `traceparent` of a new trace and wait for its reply to be stored; the trace
    id sent and the request id the Core answered with."""
    api = Api(stack.core.url, f"trace-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)
    conv = api.conversation()
    trace_id = secrets.token_hex(16)
    posted = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "Where is Porto?"},
                         headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
    assert posted.status_code == 202, posted.text

    def replied() -> bool:
        messages = api.request("GET", f"/v1/conversation/{conv}/messages").json()["messages"]
        return any(m["role"] == "assistant" for m in messages)

    wait_until(replied, 30, message="the reply to be stored")
    return trace_id, posted.headers["X-Request-ID"]


def test_one_trace_id_in_the_text_logs_of_all_three_services(text_stack):
    trace_id, request_id = send_traced_message(text_stack)
    tagged = f"trace={trace_id}"

    def lines(proc, *parts: str) -> list[str]:
        return [line for line in proc.log_text().splitlines() if tagged in line and all(p in line for p in parts)]

    # Access lines come once the answer is sent; the reply's last ones may trail the stored message a little,
    # and Memory's for Cognition's call may trail Cognition's answer.
    wait_until(lambda: lines(text_stack.memory, '"POST /tool/claim_reply ') and
               lines(text_stack.memory, '"POST /tool/search_messages ') and
               lines(text_stack.cognition, '"POST /tool/get_context '), 10, message="the reply's access lines")
    core = text_stack.core
    # The POST's access line, and a line the reply's background work wrote (its call to claim the message).
    assert lines(core, '"POST /v1/conversation/', f"request_id={request_id}", " 202 "), core.log_tail()
    assert lines(core, f"[{request_id}]", "call memory.claim_reply"), core.log_tail()
    # Memory: the reply's call to claim the message, and Cognition's call made while answering the reply's
    # get_context (two hops from the Core), under the same request id.
    memory = text_stack.memory
    assert lines(memory, '"POST /tool/claim_reply ', f"request_id={request_id}"), memory.log_tail()
    assert lines(memory, '"POST /tool/search_messages ', f"request_id={request_id}")
    # Cognition: the reply's get_context, and its own lines while answering it (its calls to Memory).
    assert lines(text_stack.cognition, '"POST /tool/get_context ', f"request_id={request_id}"), \
        text_stack.cognition.log_tail()
    assert lines(text_stack.cognition, f"[{request_id}]", "call memory.search_messages")


def parsed(proc, finished: bool = False) -> list[dict]:
    """Every line of the service's log as JSON; fails on the first line that is not an object with the
    required keys, naming it. A last line without its newline is still being written by a running service
    (at DEBUG it logs every 0.5 s) and is left for the next look; once `finished`, every line must be whole."""
    *lines, unfinished = proc.log_text().split("\n")
    assert not (finished and unfinished), f"{proc.log_path.name} ends in the middle of a line: {unfinished!r}"
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{proc.log_path.name} line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict) and REQUIRED <= record.keys(), f"{proc.log_path.name} line {number}: {line}"
        records.append(record)
    return records


def test_json_logs_are_one_object_per_line_with_the_trace(json_stack):
    trace_id, request_id = send_traced_message(json_stack)

    def traced(proc, logger: str, route: str | None = None) -> list[dict]:
        return [r for r in parsed(proc) if r["trace_id"] == trace_id and r["logger"] == logger
                and (route is None or r.get("route") == route)]

    wait_until(lambda: traced(json_stack.memory, "gunicorn.access", "/tool/<path:name>") and
               traced(json_stack.cognition, "gunicorn.access", "/tool/<path:name>"), 10,
               message="the reply's access lines")
    # Stopped, every log is whole, with the lines each service wrote while shutting down.
    json_stack.stop()
    for proc, service in ((json_stack.core, "core"), (json_stack.memory, "memory"),
                          (json_stack.cognition, "cognition")):
        records = parsed(proc, finished=True)
        assert {r["service"] for r in records} == {service}
        for record in records:
            stamp = datetime.datetime.fromisoformat(record["time"])
            assert stamp.utcoffset() == datetime.timedelta(0), record
        ours = [r for r in records if r["trace_id"] == trace_id]
        assert ours and {r["request_id"] for r in ours} == {request_id}, proc.log_tail()
        access = [r for r in ours if r["logger"] == "gunicorn.access"]
        assert access and all(ACCESS <= r.keys() and 200 <= r["status"] < 300 and r["method"] in ("GET", "POST")
                              and isinstance(r["duration_ms"], float) for r in access), access
        if service != "memory":  # Memory writes no line of its own for a call that went well
            assert [r for r in ours if not r["logger"].startswith("gunicorn.")], f"no line of {service}'s own"
    core_access = traced(json_stack.core, "gunicorn.access")
    assert [r["route"] for r in core_access] == ["/v1/conversation/<id:conversation_id>/messages"]
    assert any("call memory.claim_reply" in r["message"] for r in traced(json_stack.core, "common.client.service"))
