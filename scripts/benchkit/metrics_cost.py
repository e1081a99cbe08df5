"""Issue 16: what the metrics cost. The same services run twice, under gunicorn + gevent as the Procfile runs
them: once with METRICS=true (every request, call and transaction recorded, in prometheus-client's
multiprocess files under gunicorn) and once with METRICS=false (`/metrics` 404, every recording a no-op).
The two sides take turns, the first of each round alternating, so that drift on the shared machine falls on
both; each turn is a fixed number of calls from keep-alive callers.

Workloads: Memory's `get_conversation` tool called directly (one worker, then two), and the Core App's
`GET /v1/conversation/<id>` with a JWT, which calls the same tool on Memory (so the Core's client-side call
metrics count too). Each reports its median calls/s on and off, the median of the rounds' on ÷ off (the
target: at least 95 %), and the services' CPU per call on − off (what the recording itself costs, less
moved than a rate by how busy the machine is). Then what one scrape of `/metrics` takes with metrics on.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gevent

from benchkit.procs import Service
from benchkit.replies import _cpu_ms
from benchkit.results import Result, median
from benchkit.stack import Stack, User
from benchkit.wire import Connection, get, percentile, post_json
from common.client import ServiceClient

SCENARIO = "metrics cost"
CALLERS = 50
"""Keep-alive connections of the load generator, as in the throughput scenarios."""
TURN_LIMIT = 60.0
"""Seconds one turn may take before the scenario gives up: bounded even on a machine that stalls."""
SCRAPES = 30
SIDES = ("on", "off")
TARGET = 0.95


@dataclass
class Workload:
    label: str
    ports: dict[str, int]
    requests: dict[str, bytes]
    services: dict[str, dict[str, Service]]
    """Whose CPU a call costs, by side and role ("core", "memory"): the service called and what it calls."""


@dataclass
class Turns:
    """One workload's turns, round by round: calls per second and the services' CPU per call (µs), by side."""

    rates: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    cpu: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {side: [] for side in SIDES})
    """Per turn, µs per call by role."""
    load: list[float] = field(default_factory=list)
    """The machine's one-minute load average before the first turn and after the last: other work on it."""


def calls_per_second(port: int, request: bytes, callers: int, calls: int, limit: float = TURN_LIMIT) -> float:
    """Send `request` `calls` times over `callers` keep-alive connections; calls per second. Every answer
    must be 200; raises past `limit` seconds."""
    left = [calls]
    deadline = time.monotonic() + limit

    def caller() -> None:
        conn = Connection(port)
        try:
            while left[0] > 0:
                left[0] -= 1  # greenlets switch only on I/O: no other caller runs between the test and this
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{calls} calls took more than {limit:.0f} s")
                status, body = conn.request(request)
                if status != 200:
                    raise RuntimeError(f"status {status}: {body[:200]!r}")
        finally:
            conn.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(caller) for _ in range(min(callers, calls))], raise_error=True)
    return calls / (time.monotonic() - started)


def order_of(round_index: int) -> tuple[str, ...]:
    """on, off in even rounds and off, on in odd ones: neither side always goes first."""
    return SIDES if round_index % 2 == 0 else SIDES[::-1]


def rows(label: str, turns: Turns, calls: int) -> list[Result]:
    """The on and off medians side by side, the median of the rounds' on ÷ off (as a percentage) against the
    target, and the CPU a call costs the services on and off."""
    ratios = [on / off for on, off in zip(turns.rates["on"], turns.rates["off"], strict=True)]
    value = median(ratios)
    totals = {side: [sum(turn.values()) for turn in turns.cpu[side]] for side in SIDES}
    cpu_on, cpu_off = median(totals["on"]), median(totals["off"])
    roles = list(turns.cpu["on"][0]) if turns.cpu["on"] else []
    by_role = ", ".join(f"{role} {median([t[role] for t in turns.cpu['on']]):.0f} vs "
                        f"{median([t[role] for t in turns.cpu['off']]):.0f}" for role in roles)
    return [
        Result(SCENARIO, f"{label}, metrics on", median(turns.rates["on"]), "calls/s", "reference", True,
               turns.rates["on"]),
        Result(SCENARIO, f"{label}, metrics off", median(turns.rates["off"]), "calls/s", "reference", True,
               turns.rates["off"]),
        Result(SCENARIO, f"{label}, on as % of off", value * 100, "%", f"≥ {TARGET * 100:.0f} % (within 5 %)",
               value >= TARGET, [r * 100 for r in ratios],
               note=f"rounds {' / '.join(f'{r * 100:.1f}' for r in ratios)} %; {calls:,} calls a turn from {CALLERS} "
                    f"keep-alive callers, on and off in turns; load average {turns.load[0]:.1f} before, "
                    f"{turns.load[1]:.1f} after"),
        Result(SCENARIO, f"{label}, CPU per call, on − off", cpu_on - cpu_off, "µs", "reference", True,
               [on - off for on, off in zip(totals["on"], totals["off"], strict=True)],
               note=f"on {cpu_on:.0f} µs, off {cpu_off:.0f} µs ({(cpu_on / cpu_off - 1) * 100:+.1f} %; {by_role}): "
                    "gunicorn masters and workers, user + system, medians of the rounds"),
    ]


def _turn(workload: Workload, side: str, calls: int, turns: Turns) -> None:
    roles = workload.services[side]
    before = _cpu_ms(list(roles.values()))
    turns.rates[side].append(calls_per_second(workload.ports[side], workload.requests[side], CALLERS, calls))
    after = _cpu_ms(list(roles.values()))
    turns.cpu[side].append({role: (after[service.name] - before[service.name]) * 1000 / calls
                            for role, service in roles.items()})


def _measure(workloads: list[Workload], rounds: int, calls: int) -> list[Result]:
    for workload in workloads:  # unmeasured: connection pools filling, SQLite's page cache, first imports
        for side in SIDES:
            calls_per_second(workload.ports[side], workload.requests[side], CALLERS, max(200, calls // 4))
    turns = {workload.label: Turns(load=[os.getloadavg()[0]]) for workload in workloads}
    # Round by round over every workload, so that each workload's turns are spread over the whole run.
    for index in range(rounds):
        for workload in workloads:
            for side in order_of(index):
                _turn(workload, side, calls, turns[workload.label])
    for workload in workloads:
        turns[workload.label].load.append(os.getloadavg()[0])
    return [row for workload in workloads for row in rows(workload.label, turns[workload.label], calls)]


def _switch_env(side: str, workers: int) -> dict[str, str]:
    return {"METRICS": "true" if side == "on" else "false", "WEB_CONCURRENCY": str(workers)}


def _own_directory(services: list[Service]) -> None:
    """Each gunicorn master makes its own metrics directory: one inherited from this shell would be shared
    by both sides (and emptied by each master as it starts)."""
    for service in services:
        service.env.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _check_switch(ports: dict[str, int]) -> None:
    """The comparison means nothing unless the switch took: `/metrics` answers on one side, 404 on the other."""
    for side, wanted in (("on", 200), ("off", 404)):
        conn = Connection(ports[side])
        try:
            status, _ = conn.request(get("/metrics"))
        finally:
            conn.close()
        if status != wanted:
            raise RuntimeError(f"GET /metrics with metrics {side}: {status}, not {wanted}")


def _scrape(label: str, port: int) -> Result:
    """One `GET /metrics` at a time, `SCRAPES` times, after the load (every series the load made exists)."""
    conn = Connection(port)
    times, body = [], b""
    try:
        for _ in range(SCRAPES):
            started = time.perf_counter()
            status, body = conn.request(get("/metrics"))
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"GET /metrics: {status}")
    finally:
        conn.close()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    # A scenario of its own per service, so that the chart draws each scrape's distribution under its name.
    return Result(f"metrics scrape, {label}", f"one GET /metrics on {label}, median", median(times), "ms",
                  "reference", True, samples=times,
                  note=f"p95 {percentile(times, 0.95):.1f} ms; {len(body):,} bytes, {series} samples; "
                       f"{SCRAPES} scrapes one after the other")


def metrics_cost(log_dir: Path, rounds: int, calls: int) -> list[Result]:
    """Memory directly and the Core through Memory, one worker each, then Memory with two workers: calls/s
    with metrics on and off, in turns; and the time of one scrape."""
    results: list[Result] = []
    stacks: dict[str, Stack] = {}
    try:
        for side in SIDES:
            stacks[side] = Stack(log_dir, f"metrics-{side}", env=_switch_env(side, 1))
            _own_directory([stacks[side].memory, stacks[side].cognition, stacks[side].core])
            stacks[side].start()
        _check_switch({side: stacks[side].memory.port for side in SIDES})
        _check_switch({side: stacks[side].core.port for side in SIDES})
        users = {side: User(stacks[side].core.url) for side in SIDES}
        conversations = {side: users[side].conversation() for side in SIDES}
        memory = Workload("Memory get_conversation, 1 worker", {s: stacks[s].memory.port for s in SIDES},
                          {s: post_json("/tool/get_conversation", {"arguments": {
                              "user_id": users[s].user_id, "conversation_id": conversations[s]}}) for s in SIDES},
                          {s: {"memory": stacks[s].memory} for s in SIDES})
        core = Workload("Core GET /v1/conversation/<id> → Memory, 1 worker",
                        {s: stacks[s].core.port for s in SIDES},
                        {s: get(f"/v1/conversation/{conversations[s]}", users[s].headers) for s in SIDES},
                        {s: {"core": stacks[s].core, "memory": stacks[s].memory} for s in SIDES})
        results += _measure([memory, core], rounds, calls)
        results += [_scrape("Memory, 1 worker", stacks["on"].memory.port),
                    _scrape("Core, 1 worker", stacks["on"].core.port)]
    finally:
        for stack in stacks.values():
            stack.stop()
    return results + _two_workers(log_dir, rounds, calls)


def _two_workers(log_dir: Path, rounds: int, calls: int) -> list[Result]:
    """Memory alone with WEB_CONCURRENCY=2: the multiprocess files of two workers, and a scrape that merges
    them. (The Core needs Redis for a second worker; `scaleout-*` measures that deployment.)"""
    services: dict[str, Service] = {}
    try:
        for side in SIDES:
            services[side] = Service("memory_service.app:create_app()", {
                **_switch_env(side, 2), "DATABASE_URL": f"sqlite:///{log_dir}/metrics-{side}-2.db"},
                log_dir, f"metrics-{side}-memory-2")
            _own_directory([services[side]])
            services[side].start()
        _check_switch({side: services[side].port for side in SIDES})
        requests: dict[str, bytes] = {}
        for side, service in services.items():
            seed = ServiceClient("memory", service.url)
            user = seed.call_tool("create_user", {"email": f"m{uuid.uuid4().hex[:8]}@bench.local", "name": "M",
                                                  "password": "bench-password"})["user"]["id"]
            ws = seed.call_tool("create_workspace", {"user_id": user, "name": "bench"})["workspace"]["id"]
            conv = seed.call_tool("create_conversation", {"user_id": user, "workspace_id": ws,
                                                          "topic": "t"})["conversation"]["id"]
            requests[side] = post_json("/tool/get_conversation", {"arguments": {"user_id": user,
                                                                                "conversation_id": conv}})
        memory = Workload("Memory get_conversation, 2 workers", {s: services[s].port for s in SIDES}, requests,
                          {s: {"memory": services[s]} for s in SIDES})
        return [*_measure([memory], rounds, calls), _scrape("Memory, 2 workers", services["on"].port)]
    finally:
        for service in services.values():
            service.send_signal()
        for service in services.values():
            service.stop()
