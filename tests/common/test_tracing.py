"""W3C trace context: which `traceparent` values are taken and which start a new trace, and how the current
trace follows work into nested calls and background greenlets."""

from __future__ import annotations

import contextvars
import re
import threading

import gevent
import pytest

from common import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(("value", "flags"), [
    (f"00-{TRACE}-{PARENT}-01", 1),
    (f"00-{TRACE}-{PARENT}-00", 0),
    (f" \t00-{TRACE}-{PARENT}-01\t ", 1),  # optional whitespace around the value
    (f"00-{TRACE}-{PARENT}-09", 1),  # flags this version does not define are not passed on
    (f"cc-{TRACE}-{PARENT}-01", 1),  # a later version: its first four fields
    (f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like", 1),
], ids=["sampled", "not-sampled", "whitespace", "unknown-flags", "future-version", "future-version-more-fields"])
def test_a_valid_traceparent_continues_the_callers_trace(value, flags):
    assert tracing.parse_traceparent(value) == tracing.Parent(TRACE, PARENT, flags)


@pytest.mark.parametrize("value", [
    None,
    "",
    f"00-{'0' * 32}-{PARENT}-01",
    f"00-{TRACE}-{'0' * 16}-01",
    f"00-{TRACE.upper()}-{PARENT}-01",
    f"00-{TRACE}-{PARENT.upper()}-01",
    f"0A-{TRACE}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-0A",
    f"ff-{TRACE}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
    f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like",  # flags not followed by a dash
    f"cc-{TRACE}-{PARENT}",  # shorter than 55 characters
    f"00-{TRACE[:-1]}-{PARENT}-01",
    f"00-{TRACE}0-{PARENT}-01",
    f"00-{TRACE}-{PARENT[:-1]}-01",
    f"00-{TRACE}-{PARENT}-1",
    f"00-{TRACE}-{PARENT}-01,00-{TRACE}-{PARENT}-01",  # two headers joined by the server
    f"00_{TRACE}_{PARENT}_01",
    f"00-{TRACE[:-1]}g-{PARENT}-01",
    "garbage",
], ids=["absent", "empty", "zero-trace-id", "zero-parent-id", "upper-case-trace-id", "upper-case-parent-id",
        "upper-case-version", "upper-case-flags", "version-ff", "version-00-with-more", "future-version-bad-end",
        "future-version-too-short", "short-trace-id", "long-trace-id", "short-parent-id", "short-flags",
        "duplicated", "wrong-separators", "not-hex", "garbage"])
def test_an_invalid_traceparent_is_ignored(value):
    assert tracing.parse_traceparent(value) is None


def test_a_request_with_a_valid_traceparent_joins_its_trace_as_a_new_span():
    trace = tracing.begin(f"00-{TRACE}-{PARENT}-01", "congo=t61rcWkgMzE", "req-1")
    assert (trace.trace_id, trace.parent_id, trace.flags, trace.request_id) == (TRACE, PARENT, 1, "req-1")
    assert re.fullmatch(r"[0-9a-f]{16}", trace.span_id) and trace.span_id != PARENT
    assert trace.traceparent == f"00-{TRACE}-{trace.span_id}-01"
    assert trace.tracestate == "congo=t61rcWkgMzE"


def test_a_later_versions_traceparent_is_passed_on_as_version_00_with_only_the_sampled_flag():
    trace = tracing.begin(f"cc-{TRACE}-{PARENT}-0b-whatever", None, "req-1")
    assert trace.traceparent == f"00-{TRACE}-{trace.span_id}-01"
    assert tracing.begin(f"00-{TRACE}-{PARENT}-02", None, "r").traceparent.endswith("-00")


@pytest.mark.parametrize("value", [None, "garbage", f"00-{'0' * 32}-{PARENT}-01"])
def test_without_a_valid_traceparent_a_new_unsampled_trace_begins_and_tracestate_is_dropped(value):
    trace = tracing.begin(value, "congo=t61rcWkgMzE", "req-1")
    assert re.fullmatch(r"[0-9a-f]{32}", trace.trace_id) and trace.trace_id.strip("0")
    assert re.fullmatch(r"[0-9a-f]{16}", trace.span_id)
    assert (trace.parent_id, trace.flags, trace.tracestate) == (None, 0, None)
    assert tracing.parse_traceparent(trace.traceparent) == tracing.Parent(trace.trace_id, trace.span_id, 0)


def test_every_request_gets_its_own_span_and_every_new_trace_its_own_id():
    spans = {tracing.begin(f"00-{TRACE}-{PARENT}-01", None, "r").span_id for _ in range(100)}
    traces = {tracing.begin(None, None, "r").trace_id for _ in range(100)}
    assert len(spans) == len(traces) == 100


@pytest.mark.parametrize(("tracestate", "kept"), [
    ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    ("  congo=t61rcWkgMzE ", "congo=t61rcWkgMzE"),
    ("", None),
    ("k=" + "v" * tracing.TRACESTATE_MAX, None),  # too long to pass on
    ("congo=\x7fbad", None),
    ("congo=caf\u00e9", None),
    ("tenant@vendor=x, ,k=v", "tenant@vendor=x, ,k=v"),  # a multi-tenant key, an empty member
    ("evil=1,x y=z", None),  # a key outside its grammar
    ("Upper=1", None),
    ("k=v=w", None),
    ("k=", None),
    (",".join(f"k{n}=v" for n in range(tracing.TRACESTATE_MEMBERS + 1)), None),
], ids=["two-entries", "whitespace", "empty", "too-long", "control-character", "not-ascii", "tenant-and-empty",
        "bad-member", "uppercase-key", "equals-in-value", "empty-value", "too-many-members"])
def test_tracestate_is_passed_on_unchanged_or_not_at_all(tracestate, kept):
    assert tracing.begin(f"00-{TRACE}-{PARENT}-01", tracestate, "r").tracestate == kept


def test_leaving_a_nested_trace_restores_the_outer_one_not_none():
    outer, inner = tracing.begin(None, None, "outer"), tracing.begin(None, None, "inner")

    def run() -> None:
        outer_token = tracing.enter(outer)
        inner_token = tracing.enter(inner)
        assert tracing.current() is inner
        tracing.leave(inner_token)
        assert tracing.current() is outer
        tracing.leave(outer_token)
        assert tracing.current() is None

    contextvars.copy_context().run(run)


def test_leaving_twice_or_from_another_context_is_harmless():
    context = contextvars.Context()
    token = context.run(tracing.enter, tracing.begin(None, None, "r"))
    tracing.leave(token)  # another context: nothing here to restore
    context.run(tracing.leave, token)
    context.run(tracing.leave, token)
    assert context.run(tracing.current) is None


def test_a_new_greenlet_starts_without_the_trace_and_a_copy_of_the_context_carries_it():
    """The reason background work runs in `contextvars.copy_context().run`: gevent starts a greenlet (and
    Python a thread) with an empty context."""
    trace = tracing.begin(None, None, "r")

    def in_request() -> tuple:
        bare = gevent.spawn(tracing.current)
        carried = gevent.spawn(contextvars.copy_context().run, tracing.current)
        seen: dict = {}
        thread = threading.Thread(target=lambda: seen.setdefault("thread", tracing.current()))
        thread.start()
        thread.join()
        return bare.get(timeout=5), carried.get(timeout=5), seen["thread"]

    context = contextvars.Context()
    context.run(tracing.enter, trace)
    assert context.run(in_request) == (None, trace, None)
