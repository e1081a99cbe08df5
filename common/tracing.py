"""W3C trace context (https://www.w3.org/TR/trace-context/): the trace a request belongs to, taken from its
`traceparent` header or begun here, with a new span for each request a service serves.

The trace being served is held in a context variable rather than on Flask's `g`, so log lines and outgoing
calls made outside a request context carry it too: background work run in a copy of the request's context
(`contextvars.copy_context().run`), and an app called in-process inside another's request (the embedded
mode), which restores the outer trace when it is done (`leave` with the token `enter` gave).

Standard library only: gunicorn's master imports it (through `common.logs`) before gevent patches anything.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SAMPLED = 0x01  # the only flag version 00 defines; the others must be sent as zero

# version-trace-id-parent-id-flags in lowercase hex; a version above 00 may add fields after another dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# The spec asks for at least 512 characters of tracestate to be passed on; longer ones are dropped whole.
TRACESTATE_MAX = 512
# One tracestate list member (W3C Trace Context, 3.3.1): a key (simple, or tenant@system) and a value of
# printable ASCII without `,` and `=`, ending in a non-space.
_MEMBER = re.compile(r"(?:[a-z0-9][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
                     r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
TRACESTATE_MEMBERS = 32


@dataclass(frozen=True)
class Parent:
    """What a valid `traceparent` says: the caller's trace, its span, and whether it records the trace."""

    trace_id: str
    span_id: str
    flags: int


@dataclass(frozen=True)
class Trace:
    """The trace a piece of work belongs to: the request being served, as its own span of the trace."""

    trace_id: str
    span_id: str  # this request's span: the parent of every call made while serving it
    flags: int
    request_id: str
    parent_id: str | None = None  # the caller's span, when the request came with a valid traceparent
    tracestate: str | None = None  # passed on unchanged (the spec requires it of every participant)

    @property
    def traceparent(self) -> str:
        """The `traceparent` an outgoing call carries, with this request's span as the callee's parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"


def parse_traceparent(value: str | None) -> Parent | None:
    """The caller's trace from a `traceparent` value, or None when the spec says to ignore it (and start a
    new trace): not lowercase hex, an all-zero trace id or parent id, version ff, or version 00 with more
    after its flags. A later version is read by its first four fields, as the spec asks."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, flags, more = match.groups()
    if version == "ff" or (version == "00" and more is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return Parent(trace_id, parent_id, int(flags, 16) & SAMPLED)


def new_trace_id() -> str:
    return _random_hex(16)


def new_span_id() -> str:
    return _random_hex(8)


def _random_hex(size: int) -> str:
    while True:
        value = secrets.token_hex(size)
        if value.strip("0"):  # all zeros is the one invalid id
            return value


def begin(traceparent: str | None, tracestate: str | None, request_id: str) -> Trace:
    """The trace of a request just received, with a new span id: the caller's trace when `traceparent` is
    valid, else a new trace (not sampled, as the spec advises for a trace begun here) whose `tracestate`
    is dropped, since it described the trace that was not continued."""
    parent = parse_traceparent(traceparent)
    if parent is None:
        return Trace(new_trace_id(), new_span_id(), 0, request_id)
    return Trace(parent.trace_id, new_span_id(), parent.flags, request_id, parent.span_id, _passed_on(tracestate))


def _passed_on(tracestate: str | None) -> str | None:
    """`tracestate` as received when it is well formed (at most 32 list members, each valid, empty ones
    allowed), else nothing: a header that breaks the spec's grammar is not carried into other services."""
    value = (tracestate or "").strip(" \t")
    if not value or len(value) > TRACESTATE_MAX:
        return None
    members = [member.strip(" \t") for member in value.split(",")]
    if len(members) > TRACESTATE_MEMBERS or not all(not m or _MEMBER.fullmatch(m) for m in members):
        return None
    return value


_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("cortex_trace", default=None)


def current() -> Trace | None:
    """The trace of the work running now, if it belongs to one."""
    return _current.get()


def enter(trace: Trace) -> contextvars.Token[Trace | None]:
    """Make `trace` the current one; hand the token to `leave` when the work is done."""
    return _current.set(trace)


def leave(token: contextvars.Token[Trace | None]) -> None:
    """Restore the trace that was current before `enter`: the outer request's, when an app served a call
    in-process inside it, rather than none."""
    try:
        _current.reset(token)
    except (ValueError, RuntimeError):
        # Left twice, or from another context than the one that entered it: that context is not this
        # one, so there is nothing here to restore.
        pass
