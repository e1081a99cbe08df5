"""Streams survive reconnects, and a client that stops reading neither delays the others nor stays forever.

Real Memory, Cognition and Core processes; the clients are threads of this test process on 127.0.0.1.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import requests

from core_app.events import EventId
from tests.system.support.api import Api
from tests.system.support.figures import latency_figures, percentile, report
from tests.system.support.harness import ServiceProcess
from tests.system.support.leak_probe import Probe, within
from tests.system.support.polling import wait_until
from tests.system.support.raw_stream import RawStream
from tests.system.support.sse_frames import StreamRecorder, frames, open_stream
from tests.system.support.stack import start_stack

CLIENTS = 50
MESSAGES = 30
# The shortest builtin reply to these messages is 13 words in 5 deltas, so each message yields at least 9 events
# (message, response.started, 5 x response.delta, response.completed, message): disconnect points are drawn
# below that, so every client reaches all of its own.
AT_LEAST_EVENTS = 8 * MESSAGES
SEED = 20_250_611
RUN_DEADLINE_S = 60  # every client thread gives up after this, whatever happens
POOL_SIZE = 50  # the default CLIENT_POOL_SIZE: what the Core may keep open to Memory after the reconnect storm
# Besides its call pool, the client keeps the health probe's own connection and may have one in flight that
# resends a request the server closed unanswered (common/client/transport.py): neither comes out of the pool.
BESIDES_POOL = 2
# A leak per stream would show as 50 or more. Two of slack: the /debug/stats request just answered may still
# have its handler greenlet and socket, and a health probe may be in flight.
GREENLET_TOLERANCE = FD_TOLERANCE = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # One user holds every stream here (51, and reconnecting ones until the server notices they closed), and
    # posts the messages back to back: their replies may all be in progress together.
    started = start_stack(tmp_path_factory.mktemp("streams"), core_env={
        "DEBUG_STATS": "true", "STREAMS_PER_USER": "1000", "REPLIES_PER_USER": str(MESSAGES)})
    yield started
    started.stop()


class Finish:
    """Set once the last event is known; clients stop when they have seen it."""

    def __init__(self) -> None:
        self.final_id: str | None = None

    def reached(self, last_id: str | None) -> bool:
        # Nothing is published after the final event, so a client that has read it has read everything.
        return self.final_id is not None and last_id == self.final_id


class ResumingClient(threading.Thread):
    """Reads one conversation's stream; after each of `drops` events (counted over the whole run) it closes
    the connection, stays away a random moment, and resumes with the last id it saw, alternating at random
    between the Last-Event-ID header and `?last_event_id=`."""

    def __init__(self, url: str, token: str, finish: Finish, drops: list[int], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.finish, self.rng = url, token, finish, rng
        self.drops = sorted(drops)
        self.events: list[tuple[str, str, dict]] = []
        self.arrived: dict[str, float] = {}  # event id -> when it was read
        self.connects = self.resumes_by_query = self.server_ends = 0
        self.wrong_positions: list[tuple[str | None, str | None]] = []  # (resumed from, connected id)
        self.first_connected = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + RUN_DEADLINE_S
        last_id: str | None = None
        try:
            while time.monotonic() < deadline and not self.finish.reached(last_id):
                as_query = last_id is not None and self.rng.random() < 0.5
                response = open_stream(self.url, self.token, last_id, as_query=as_query)
                self.connects += 1
                self.resumes_by_query += as_query
                try:
                    last_id = self._read(response, last_id, deadline)
                finally:
                    response.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc
        finally:
            self.first_connected.set()

    def _read(self, response: requests.Response, last_id: str | None, deadline: float) -> str | None:
        for frame in frames(response):
            if self.finish.reached(last_id) or time.monotonic() > deadline:
                return last_id
            if frame is None:
                continue
            if frame.event == "connected":
                # The position it carries must be where we resumed, or the ids before it are lost.
                if last_id is not None and frame.id != last_id:
                    self.wrong_positions.append((last_id, frame.id))
                self.first_connected.set()
                continue
            self.events.append((frame.id, frame.event, frame.data))
            self.arrived[frame.id] = frame.at
            last_id = frame.id
            if self.drops and len(self.events) >= self.drops[0]:
                self.drops.pop(0)
                offline = self.rng.uniform(0, 0.2)  # part of the workload: events pile up meanwhile
                response.close()
                time.sleep(offline)
                return last_id
        self.server_ends += 1  # the server ended the stream; resume like EventSource would
        return last_id


def first_difference(got: list, want: list) -> str:
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a[:2] != b[:2] or a[2] != b[2]:
            return f"at {index}: got {a[:2]}, want {b[:2]}"
    return f"lengths {len(got)} vs {len(want)}"


def test_fifty_clients_that_keep_reconnecting_get_every_event_once_in_order(stack, tmp_path):
    core = stack.core
    probe = Probe(core.url, {"self": core.port, "memory": stack.memory.port, "cognition": stack.cognition.port})
    api = Api(core.url, f"crowd-{uuid.uuid4().hex[:8]}@example.com")
    conv = api.conversation("crowd")
    url = api.stream_url(conv)
    baseline = probe.idle()
    finish = Finish()
    reference = ResumingClient(url, api.token, finish, [], random.Random(SEED))
    seeds = random.Random(SEED + 1)
    clients = []
    for _ in range(CLIENTS):
        rng = random.Random(seeds.getrandbits(32))
        drops = rng.sample(range(1, AT_LEAST_EVENTS), rng.randint(2, 5))
        clients.append(ResumingClient(url, api.token, finish, drops, rng))
    for client in [reference, *clients]:
        client.start()
    for client in [reference, *clients]:
        assert client.first_connected.wait(20), "a client did not connect"
    assert all(c.failure is None for c in clients), [c.failure for c in clients if c.failure]

    started = time.monotonic()
    posted: dict[str, float] = {}
    for n in range(MESSAGES):
        at = time.monotonic()
        response = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": f"note {n} on rivers"})
        assert response.status_code == 202, response.text
        posted[response.json()["message"]["id"]] = at

    def replies_done() -> bool:
        done = [e for e in reference.events if e[1] in ("message", "error") and e[2].get("role") != "user"]
        return len(done) >= MESSAGES

    wait_until(replies_done, 45, interval=0.05, message=f"{MESSAGES} finished replies on the reference stream")
    # Every reply has ended with its last event, so nothing more will be published: that is the end.
    finish.final_id = reference.events[-1][0]
    for client in [reference, *clients]:
        client.join(max(1.0, started + RUN_DEADLINE_S - time.monotonic()))
    elapsed = time.monotonic() - started

    want = reference.events
    echo = {data["id"]: event_id for event_id, kind, data in want if kind == "message" and data["role"] == "user"}
    echo_latency = [reference.arrived[echo[m]] - t for m, t in posted.items() if m in echo]
    probe.idle()  # every subscriber released: each closed connection is noticed at a heartbeat write
    after = probe.settle(baseline, GREENLET_TOLERANCE, FD_TOLERANCE)
    figures = {
        "clients": CLIENTS, "messages": MESSAGES, "seed": SEED, "events_per_client": len(want),
        "event_types": {t: sum(1 for e in want if e[1] == t) for t in sorted({e[1] for e in want})},
        "reconnects_total": sum(c.connects - 1 for c in clients),
        "reconnects_per_client": {"min": min(c.connects - 1 for c in clients),
                                  "max": max(c.connects - 1 for c in clients)},
        "resumed_with_query_param": sum(c.resumes_by_query for c in clients),
        "streams_ended_by_server": sum(c.server_ends for c in [reference, *clients]),
        "clients_matching_reference": sum(c.events == want for c in clients),
        "reference_echo_latency": latency_figures(echo_latency),
        "run_s": round(elapsed, 2),
        "stats_before": baseline, "stats_after": after,
    }
    report(tmp_path, "reconnecting_clients", figures)

    assert not [c for c in [reference, *clients] if c.is_alive()], "a client did not finish"
    assert [c.failure for c in [reference, *clients] if c.failure] == []
    sequences = [EventId.parse(e[0]).sequence for e in want]
    assert sequences == list(range(sequences[0], sequences[0] + len(want))), "the reference's ids must be consecutive"
    assert len(echo) == MESSAGES and figures["event_types"]["response.completed"] == MESSAGES
    assert len(want) >= AT_LEAST_EVENTS
    for index, client in enumerate(clients):
        assert client.drops == [], f"client {index} did not reach all its planned disconnects"
        assert client.wrong_positions == [], f"client {index}: connected events at the wrong position"
        assert client.events == want, f"client {index}: {first_difference(client.events, want)}"
    assert figures["reconnects_total"] >= 2 * CLIENTS
    assert within(baseline, after, GREENLET_TOLERANCE, FD_TOLERANCE), (baseline, after)
    pooled = after["tcp"].get("to_memory", 0), after["tcp"].get("to_cognition", 0)
    assert max(pooled) <= POOL_SIZE + BESIDES_POOL, after


LARGE = 30_000  # characters per message, mostly 3-byte UTF-8: about 80 KB per `message` event
FLOOD = 60  # about 5 MB for a stream in all, more than the kernel buffers of one loopback connection hold
SMALL_BUFFER_BYTES = 256 * 1024  # about 3 large messages; the count bound stays at its default of 1000 events


def large_text(n: int) -> str:
    return ((f"語{n}" + "語" * 6 + " ") * (LARGE // 8 + 1))[:LARGE]


@dataclass
class Flood:
    posted: dict[str, float]  # message id -> when its POST was sent
    normal: StreamRecorder
    normal_cut_by_server: bool
    reads_later: RawStream
    never_reads: RawStream
    probe: Probe
    stalled: dict  # stats once the flood is over, before the slow clients read anything
    released: dict  # stats once the client that reads late has read


@pytest.fixture(scope="module")
def flood(stack, tmp_path_factory):
    """A Core with a 256 KiB subscriber buffer, one client reading normally and two raw-socket clients with
    a 4 KiB receive buffer that read nothing while 60 large messages go through the conversation. Then one of
    them reads everything; the other never does."""
    core = ServiceProcess("core_app.app:create_app()", {**stack.core.env,
                                                        "SUBSCRIBER_BUFFER_BYTES": str(SMALL_BUFFER_BYTES)},
                          tmp_path_factory.mktemp("flood") / "core-small-buffer.log").start()
    probe = Probe(core.url, {"self": core.port, "memory": stack.memory.port, "cognition": stack.cognition.port})
    raw: list[RawStream] = []
    normal = None
    try:
        api = Api(core.url, f"flood-{uuid.uuid4().hex[:8]}@example.com")
        conv = api.conversation("flood")
        normal = StreamRecorder(api.stream_url(conv), api.token, deadline_s=120)
        wait_until(lambda: normal.of_type("connected"), 10, message="the normal client's connected event")
        raw = [RawStream(core.port, f"/v1/conversation/{conv}/messages/stream", api.token) for _ in range(2)]
        wait_until(lambda: probe.stats()["subscribers"] == 3, 10, message="the raw clients to subscribe")
        posted: dict[str, float] = {}
        for n in range(FLOOD):
            at = time.monotonic()
            response = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": large_text(n)})
            assert response.status_code == 202, response.text
            posted[response.json()["message"]["id"]] = at
            # One reply at a time, as a person would post: the normal client must never fall behind.
            wait_until(lambda k=n: len(normal.of_type("response.completed")) > k or normal.ended.is_set(), 15,
                       interval=0.01, message=f"the reply to message {n}")
        wait_until(lambda: normal.frames[-1].event == "message" or normal.ended.is_set(), 10,
                   message="the last assistant message")
        normal_cut = normal.ended.is_set()
        stalled = probe.stats()
        raw[0].drain(timeout=15)
        released = wait_until(lambda: (s := probe.stats())["subscribers"] == 1 and s["live_streams"] == 1 and s,
                              10, interval=0.1, message="both slow clients' streams to be released")
        yield Flood(posted, normal, normal_cut, raw[0], raw[1], probe, stalled, released)
    finally:
        for stream in raw:
            stream.close()
        if normal is not None:
            normal.close()
        core.stop()


def test_a_client_that_stops_reading_delays_nobody_and_is_dropped(flood, tmp_path):
    normal = [(f.id, f.event) for f in flood.normal.frames if f.event != "connected"]
    echo = {f.data["id"]: f.at for f in flood.normal.of_type("message") if f.data["role"] == "user"}
    latency = [echo[m] - t for m, t in flood.posted.items() if m in echo]
    late_frames, (_, ended) = flood.reads_later.frames(), flood.reads_later.body()
    late = [(f.id, f.event) for f in late_frames if f.event != "connected"]
    report(tmp_path, "slow_reader", {
        "messages": FLOOD, "message_chars": LARGE, "subscriber_buffer_bytes": SMALL_BUFFER_BYTES,
        "normal_client_events": len(normal), "normal_client_echo_latency": latency_figures(latency),
        "normal_client_cut_by_server": flood.normal_cut_by_server,
        "late_reader_events_before_drop": len(late), "late_reader_bytes": len(flood.reads_later.received),
        "late_reader_stream_ended_cleanly": ended, "late_reader_closed_by_server": flood.reads_later.closed_by_server,
        "stats_while_slow_clients_stalled": flood.stalled, "stats_after_late_reader_read": flood.released,
    })

    # The normal client got every message promptly, and was never cut off, while two others read nothing.
    assert not flood.normal_cut_by_server
    assert len(echo) == FLOOD and len(flood.normal.of_type("response.completed")) == FLOOD
    assert max(latency) < 2.0 and percentile(latency, 0.50) < 0.5, latency
    # By the end of the flood both slow clients had overflowed their buffers and been dropped by the server
    # (their connections cut), while the normal client stayed subscribed.
    assert flood.stalled["subscribers"] == 1, flood.stalled
    # Once it read, the late reader found it had been cut off: a prefix of the events without a gap, then the
    # connection closed by the server. It resumes with Last-Event-ID like any client.
    assert flood.reads_later.status_line() == "HTTP/1.1 200 OK"
    assert 0 < len(late) < len(normal) and late == normal[:len(late)], (len(late), len(normal))
    assert flood.reads_later.closed_by_server, ended
    assert flood.released["subscribers"] == 1 and flood.released["live_streams"] == 1, flood.released


def test_a_client_that_never_reads_again_is_released(flood, tmp_path):
    deadline_s = 5.0  # five heartbeats after the flood
    last = flood.probe.stats()
    deadline = time.monotonic() + deadline_s
    while (last["subscribers"] > 1 or last["live_streams"] > 1) and time.monotonic() < deadline:
        time.sleep(0.2)
        last = flood.probe.stats()
    report(tmp_path, "never_reading_client", {"waited_s": deadline_s, "stats": last})
    assert last["subscribers"] == 1 and last["live_streams"] == 1, last
