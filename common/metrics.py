"""Prometheus metrics (prometheus-client): every metric the services export, and one function per thing
they count, so call sites stay one line and `METRICS=off` turns all of them off in one place.

Under gunicorn every process writes its values to files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py makes
one per master), and a scrape of any worker reads them all: prometheus-client's multiprocess mode. Without
that variable (tests, scripts) values live in this process. Label values are bounded sets we choose (route
patterns, tool names, outcomes), never ids or raw paths. Names are listed, with what each means, in
docs/OPERATIONS.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

log = logging.getLogger(__name__)

# Latency buckets in seconds: from a cached read (1 ms) to a call that times out (10 s and beyond).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A database transaction: most take well under a millisecond on SQLite.
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


# --- the metrics ----------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("cortex_http_requests", "Requests answered, by route pattern and status.",
                        ["service", "method", "route", "status"])
HTTP_DURATION = Histogram("cortex_http_request_duration_seconds",
                          "Time to answer a request (for a stream: until its headers are sent).",
                          ["service", "method", "route"], buckets=LATENCY_BUCKETS)

CLIENT_CALLS = Counter("cortex_client_calls", "Calls to another service, by dependency, tool and outcome.",
                       ["dependency", "tool", "outcome"])
CLIENT_DURATION = Histogram("cortex_client_call_duration_seconds",
                            "Time a call to another service took, retries included.",
                            ["dependency", "tool"], buckets=LATENCY_BUCKETS)
CLIENT_RETRIES = Counter("cortex_client_retries", "Attempts sent again after a failed one.", ["dependency"])
CIRCUIT_STATE = Gauge("cortex_circuit_state", "A dependency's circuit: 0 closed, 1 half open, 2 open "
                      "(the worst over this service's processes).", ["dependency"], multiprocess_mode="livemax")
CIRCUIT_TRANSITIONS = Counter("cortex_circuit_transitions", "Circuit state changes, by the state entered.",
                              ["dependency", "state"])
DEPENDENCY_UP = Gauge("cortex_dependency_up", "1 while the last health probe of a dependency found it up "
                      "(the worst over this service's processes).", ["dependency"], multiprocess_mode="livemin")

STREAMS_OPEN = Gauge("cortex_streams_open", "Output streams open now.", multiprocess_mode="livesum")
STREAMS_LIMIT = Gauge("cortex_streams_limit", "Output streams this service can hold at once.",
                      multiprocess_mode="livesum")
EVENTS_PUBLISHED = Counter("cortex_events_published", "Events published to conversations' streams.", ["type"])
SUBSCRIBERS_CUT = Counter("cortex_subscribers_cut", "Streams ended by the server, by reason.", ["reason"])

REPLY_FIRST_TOKEN = Histogram("cortex_reply_first_token_seconds",
                              "From a user's message to the first text of the reply.", ["provider"],
                              buckets=LATENCY_BUCKETS)
REPLY_DURATION = Histogram("cortex_reply_duration_seconds", "From a user's message to the reply's end.",
                           ["provider", "outcome"], buckets=LATENCY_BUCKETS)
REPLY_TOKENS = Histogram("cortex_reply_tokens", "Text pieces (tokens) in a finished reply.", ["provider"],
                         buckets=TOKEN_BUCKETS)
PROVIDER_ERRORS = Counter("cortex_provider_errors", "Replies the language model failed, by kind.",
                          ["provider", "kind"])

DB_TRANSACTION = Histogram("cortex_db_transaction_duration_seconds", "Time a database transaction took.",
                           ["backend", "kind"], buckets=FAST_BUCKETS)
DB_BATCH = Histogram("cortex_db_group_commit_batch_size", "Writes committed together in one transaction.",
                     ["backend"], buckets=BATCH_BUCKETS)
# Read at scrape time by the process scraped (`database_size` below), not kept in files.
DB_SIZE_NAME = "cortex_db_size_bytes"
DB_SIZE_HELP = ("Bytes the database takes on disk (SQLite: its file and write-ahead log; PostgreSQL: the "
                "whole database).")

RETRIEVAL = Histogram("cortex_retrieval_duration_seconds", "Time get_context spent, in all and per part.",
                      ["part"], buckets=LATENCY_BUCKETS)

RATE_LIMITED = Counter("cortex_rate_limit_refusals", "Requests refused by a limit, by the limit.",
                       ["service", "limit"])


# --- recording -------------------------------------------------------------------------------------------

class _Switch:
    on = True


_switch = _Switch()


def enable(on: bool) -> None:
    """Turn recording on or off for this process (the last app built decides; all read the same setting)."""
    _switch.on = on


def enabled() -> bool:
    return _switch.on


_children: dict[tuple, Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: a figure recorded on every request, call or transaction skips
    prometheus-client's label checks and lock after the first time (label sets are bounded)."""
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def request_answered(service: str, method: str, route: str, status: int, seconds: float) -> None:
    if _switch.on:
        _child(HTTP_REQUESTS, service, method, route, str(status)).inc()
        _child(HTTP_DURATION, service, method, route).observe(seconds)


def call_finished(dependency: str, tool: str, outcome: str, seconds: float) -> None:
    if _switch.on:
        _child(CLIENT_CALLS, dependency, tool, outcome).inc()
        _child(CLIENT_DURATION, dependency, tool).observe(seconds)


def retried(dependency: str) -> None:
    if _switch.on:
        _child(CLIENT_RETRIES, dependency).inc()


def circuit_changed(dependency: str, state: str, *, transition: bool = True) -> None:
    """`state` is closed, half_open or open; `transition=False` only records the state (at start)."""
    if _switch.on:
        _child(CIRCUIT_STATE, dependency).set(CIRCUIT_VALUES.get(state, 2))
        if transition:
            _child(CIRCUIT_TRANSITIONS, dependency, state).inc()


def dependency_probed(dependency: str, up: bool) -> None:
    if _switch.on:
        _child(DEPENDENCY_UP, dependency).set(1 if up else 0)


def stream_opened() -> None:
    if _switch.on:
        STREAMS_OPEN.inc()


def stream_closed() -> None:
    if _switch.on:
        STREAMS_OPEN.dec()


def streams_limit(count: int) -> None:
    if _switch.on:
        STREAMS_LIMIT.set(count)


def event_published(event_type: str) -> None:
    if _switch.on:
        _child(EVENTS_PUBLISHED, event_type).inc()


def subscriber_cut(reason: str, count: int = 1) -> None:
    if _switch.on:
        _child(SUBSCRIBERS_CUT, reason).inc(count)


def reply_first_token(provider: str, seconds: float) -> None:
    if _switch.on:
        _child(REPLY_FIRST_TOKEN, provider).observe(seconds)


def reply_finished(provider: str, outcome: str, seconds: float, tokens: int) -> None:
    if _switch.on:
        _child(REPLY_DURATION, provider, outcome).observe(seconds)
        if outcome == "completed":
            _child(REPLY_TOKENS, provider).observe(tokens)


def provider_failed(provider: str, kind: str) -> None:
    if _switch.on:
        _child(PROVIDER_ERRORS, provider, kind).inc()


def transaction_finished(backend: str, kind: str, seconds: float) -> None:
    if _switch.on:
        _child(DB_TRANSACTION, backend, kind).observe(seconds)


def batch_committed(backend: str, size: int) -> None:
    if _switch.on:
        _child(DB_BATCH, backend).observe(size)


def retrieval_finished(part: str, seconds: float) -> None:
    if _switch.on:
        _child(RETRIEVAL, part).observe(seconds)


def rate_limited(service: str, limit: str) -> None:
    if _switch.on:
        _child(RATE_LIMITED, service, limit).inc()


def database_size(backend: str, size_bytes: Callable[[], int]) -> Collect:
    """A scrape-time `cortex_db_size_bytes{backend}` read by `size_bytes`; nothing at all when that fails, so a
    database that is down never fails a scrape (/health and the callers' circuits report that)."""

    def collect() -> Iterator[Metric]:
        try:
            size = size_bytes()
        except Exception as exc:  # noqa: BLE001 - any failure means no figure this scrape
            log.debug("database size not reported: %s", exc)
            return
        family = GaugeMetricFamily(DB_SIZE_NAME, DB_SIZE_HELP, labels=["backend"])
        family.add_metric([backend], size)
        yield family

    return collect


# --- exposition ------------------------------------------------------------------------------------------

Collect = Callable[[], Iterable[Metric]]


class _Live:
    """Figures read at scrape time by the process scraped (a database's size), not kept in files."""

    def __init__(self, collect: Collect) -> None:
        self.collect = collect


class _ThisProcess:
    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(live: Iterable[Collect] = ()) -> bytes:
    """The text exposition of every process's values (or this process's alone), plus `live` figures."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())  # type: ignore[arg-type]
    for collect in live:
        registry.register(_Live(collect))  # type: ignore[arg-type]
    return generate_latest(registry)
