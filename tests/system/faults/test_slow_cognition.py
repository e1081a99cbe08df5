"""A slow service does not take the others down: Cognition alive but answering tool calls only after 30 s.

The Core runs for real (gunicorn + gevent, distributed mode, real Memory) against a stand-in Cognition whose
`/health` is prompt, so the health monitor keeps its circuit closed and every reply has to wait out the
read timeout: the worst case for held greenlets and connections.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from tests.system.faults.slow_cognition import SlowCognition
from tests.system.support.api import Api
from tests.system.support.figures import latency_figures, report
from tests.system.support.harness import ServiceProcess
from tests.system.support.leak_probe import Probe, within
from tests.system.support.polling import wait_until
from tests.system.support.sse_frames import StreamRecorder
from tests.system.support.stack import JWT_SECRET

READ_TIMEOUT = 2.0
RETRIES = 1
POOL_SIZE = 50  # CLIENT_POOL_SIZE, the default, stated so the pool bound below is explicit
# A timed-out tool call is retried once (it carries an Idempotency-Key): two read timeouts plus one backoff
# of at most 0.1 s + 0.1 s jitter. That is how long the configuration lets a reply wait for its context.
CONTEXT_BUDGET = READ_TIMEOUT * (RETRIES + 1) + 0.2
MARGIN = 3.0  # scheduling on 2 shared cores, the reply's Memory calls, delivery on the stream
PROMPT = 1.0  # what "at once" means here; unloaded these take about 10-20 ms

A_CONVERSATIONS, A_PER_CONVERSATION = 3, 2
B_MESSAGES, B_INTERVAL = 8, 0.4
REPLIES = A_CONVERSATIONS * A_PER_CONVERSATION + B_MESSAGES
# Tolerances for "back to baseline". The load holds one greenlet per stuck reply and per stream (14 + 4), so a
# leak of one per reply or stream would show as 14 or more. Two greenlets of slack: the connection of the
# /debug/stats request just answered may still have its gunicorn handler greenlet, and the health monitor's
# probe may be in flight. The same two for fds: that connection's socket, and a probe's socket being replaced.
GREENLET_TOLERANCE = 2
FD_TOLERANCE = 2


@pytest.fixture
def slow_stack(request, tmp_path):
    pool_size = getattr(request, "param", POOL_SIZE)
    with SlowCognition(hold_s=30) as cognition:
        shared = {"SERVICE_TOKEN": "slow-token-0001", "HEALTH_INTERVAL_SECONDS": "0.5",
                  "BREAKER_RESET_SECONDS": "1", "CLIENT_RETRY_MAX_SECONDS": "1"}
        memory = ServiceProcess("memory_service.app:create_app()", {
            **shared, "DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}, tmp_path / "memory.log")
        core = ServiceProcess("core_app.app:create_app()", {
            **shared, "CORTEX_DISTRIBUTED_MODE": "true", "JWT_SECRET": JWT_SECRET, "SSE_HEARTBEAT_SECONDS": "1",
            "DEBUG_STATS": "true", "MEMORY_SERVICE_URL": memory.url, "COGNITION_SERVICE_URL": cognition.url,
            "CLIENT_READ_TIMEOUT": str(READ_TIMEOUT), "CLIENT_RETRIES": str(RETRIES),
            "CLIENT_POOL_SIZE": str(pool_size),
            # Each user has several replies stuck in the slow service at once, on purpose.
            "REPLIES_PER_USER": str(REPLIES),
            # Keep the circuit closed so every reply really waits for the slow service instead of
            # being short-cut by an open breaker.
            "BREAKER_FAIL_MAX": "1000"}, tmp_path / "core.log")
        try:
            memory.start()
            core.start()
            yield core, memory, cognition
        finally:
            core.stop()
            memory.stop()


def post(api: Api, conv: str, text: str) -> tuple[str, float]:
    started = time.monotonic()
    response = api.request("POST", f"/v1/conversation/{conv}/messages", json={"content": text})
    assert response.status_code == 202, response.text
    return response.json()["message"]["id"], started


def wait_replies(reader: StreamRecorder, count: int) -> None:
    wait_until(lambda: len(reader.of_type("response.completed")) >= count, CONTEXT_BUDGET + MARGIN + 5,
               interval=0.05, message=f"{count} completed replies")


def connected(readers: list[StreamRecorder]) -> None:
    for reader in readers:
        wait_until(lambda r=reader: r.of_type("connected"), 10, message="the stream's connected event")


def test_a_slow_cognition_does_not_take_the_core_down(slow_stack, tmp_path):
    core, memory, cognition = slow_stack
    probe = Probe(core.url, {"self": core.port, "memory": memory.port, "cognition": cognition.port})
    alice = Api(core.url, f"alice-{uuid.uuid4().hex[:8]}@example.com")
    bob = Api(core.url, f"bob-{uuid.uuid4().hex[:8]}@example.com")
    a_convs = [alice.conversation(f"slow {n}") for n in range(A_CONVERSATIONS)]
    b_conv = bob.conversation("other")

    # Warm-up through the slow path, so lazily built things (pools, imports) exist before the baseline.
    warm = [StreamRecorder(alice.stream_url(c), alice.token) for c in a_convs]
    connected(warm)
    for conv in a_convs:
        post(alice, conv, "warm-up")
    for reader in warm:
        wait_replies(reader, 1)
        reader.close()
    baseline = probe.idle()
    calls_before = cognition.tool_calls

    # The load: every reply (6 of Alice's at once, then Bob's 8 spread over 3 s) is stuck in Cognition.
    a_readers = [StreamRecorder(alice.stream_url(c), alice.token) for c in a_convs]
    b_reader = StreamRecorder(bob.stream_url(b_conv), bob.token)
    connected([*a_readers, b_reader])
    samples: list[dict] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        for _ in range(150):  # at most 150 x (0.1 s + two quick requests)
            if stop_sampling.wait(0.1):
                return
            began = time.monotonic()
            health = requests.get(f"{core.url}/health", timeout=10)
            samples.append({"health_s": time.monotonic() - began, "health_status": health.status_code,
                            **probe.snapshot()})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    a_posted: list[dict[str, float]] = [{} for _ in a_convs]
    for index, conv in enumerate(a_convs):
        for n in range(A_PER_CONVERSATION):
            message_id, at = post(alice, conv, f"slow question {n} about sailing")
            a_posted[index][message_id] = at
    b_posted: dict[str, float] = {}
    for n in range(B_MESSAGES):
        message_id, at = post(bob, b_conv, f"other conversation {n}")
        b_posted[message_id] = at
        wait_until(lambda m=message_id: any(f.data["id"] == m for f in b_reader.of_type("message")), 5,
                   interval=0.01, message=f"bob's echo of message {n}")
        time.sleep(B_INTERVAL)  # pacing, not synchronisation: spreads Bob's traffic over Alice's stuck replies
    for reader in [*a_readers, b_reader]:
        wait_replies(reader, len(b_posted) if reader is b_reader else A_PER_CONVERSATION)
    stop_sampling.set()
    sampler.join(15)

    started_latency, completed_latency, warnings = [], [], []
    for reader, posted in [*zip(a_readers, a_posted, strict=True), (b_reader, b_posted)]:
        started = {f.data["in_reply_to"]: f.at for f in reader.of_type("response.started")}
        completed = {f.data["message"]["metadata"]["in_reply_to"]: f.at for f in reader.of_type("response.completed")}
        assert set(started) == set(completed) == set(posted)
        started_latency += [started[m] - t for m, t in posted.items()]
        completed_latency += [completed[m] - t for m, t in posted.items()]
        warnings += reader.of_type("warning")
        assert not reader.of_type("error"), reader.of_type("error")
    echo = {f.data["id"]: f.at for f in b_reader.of_type("message") if f.data["role"] == "user"}
    echo_latency = [echo[m] - t for m, t in b_posted.items()]

    for reader in [*a_readers, b_reader]:
        reader.close()
    after_close = probe.idle()
    # Greenlets and sockets of finished replies go at once; allow a few polls for the last ones.
    settled = probe.settle(baseline, GREENLET_TOLERANCE, FD_TOLERANCE)
    wait_until(lambda: cognition.held == 0, 5, message="the stand-in to hold no call whose caller is connected")

    abandoned = cognition.abandoned_after[-(cognition.tool_calls - calls_before):]
    figures = {
        "config": {"read_timeout_s": READ_TIMEOUT, "retries": RETRIES, "context_budget_s": CONTEXT_BUDGET,
                   "cognition_hold_s": cognition.hold_s, "pool_size": POOL_SIZE},
        "replies": REPLIES,
        "cognition_tool_calls": cognition.tool_calls - calls_before,
        "cognition_calls_held_at_once_max": cognition.max_held,
        "cognition_calls_closed_by_core": len(abandoned),
        "core_closed_timed_out_call_after": latency_figures(abandoned),
        "response_started_latency": latency_figures(started_latency),
        "response_completed_latency": latency_figures(completed_latency),
        "other_conversation_echo_latency": latency_figures(echo_latency),
        "core_health_latency": latency_figures([s["health_s"] for s in samples]),
        "stats_baseline": baseline,
        "stats_peak_during_load": {key: max(s[key] for s in samples) for key in (
            "greenlets", "open_fds", "fds_besides_pools", "live_streams", "subscribers")},
        "stats_after_close": after_close,
        "stats_settled": settled,
    }
    report(tmp_path, "slow_cognition", figures)

    # Replies start at once and finish, with the warning, as soon as the configured timeouts allow.
    assert max(started_latency) < PROMPT, started_latency
    assert min(completed_latency) >= READ_TIMEOUT * 0.95, completed_latency  # they really waited for Cognition
    assert max(completed_latency) < CONTEXT_BUDGET + MARGIN, completed_latency
    assert len(warnings) == REPLIES, warnings
    assert all(w.data["code"] == "context_unavailable" for w in warnings), warnings
    # Another conversation, and the Core's own endpoints, kept flowing while all that was stuck.
    assert max(echo_latency) < PROMPT, echo_latency
    assert samples and all(s["health_status"] == 200 for s in samples)
    assert max(s["health_s"] for s in samples) < PROMPT, [round(s["health_s"], 3) for s in samples]
    # The load went through the slow service and held greenlets while it waited ...
    assert figures["cognition_tool_calls"] == REPLIES * (RETRIES + 1)
    at_once = A_CONVERSATIONS * A_PER_CONVERSATION  # Alice's replies wait together for 4 s
    assert cognition.max_held >= at_once
    assert figures["stats_peak_during_load"]["greenlets"] >= baseline["greenlets"] + at_once
    # ... and left nothing behind: every timed-out call's connection was closed by the Core when it gave up,
    assert len(abandoned) == figures["cognition_tool_calls"]
    assert max(abandoned) < READ_TIMEOUT + 1.0, abandoned
    # greenlets and fds are back to the baseline, and the pools keep no more than their configured size.
    assert within(baseline, settled, GREENLET_TOLERANCE, FD_TOLERANCE), (baseline, settled)
    assert settled["tcp"].get("to_memory", 0) <= POOL_SIZE and settled["tcp"].get("to_cognition", 0) <= POOL_SIZE


POOL_LIMITED = 2  # stands for the default 50 with more than 50 replies waiting at once


@pytest.mark.parametrize("slow_stack", [POOL_LIMITED], indirect=True)
def test_more_slow_calls_than_the_pool_still_end_within_the_timeout(slow_stack, tmp_path):
    core, _, cognition = slow_stack
    alice = Api(core.url, f"alice-{uuid.uuid4().hex[:8]}@example.com")
    conv = alice.conversation("many at once")
    reader = StreamRecorder(alice.stream_url(conv), alice.token)
    connected([reader])
    replies = POOL_LIMITED * 3
    probes_before, began = cognition.health_checks, time.monotonic()
    posted = dict(post(alice, conv, f"question {n}") for n in range(replies))
    context: dict = {}

    def ask_context() -> None:
        asked = time.monotonic()
        try:
            response = alice.request("POST", "/v1/context", json={"query": "anything"}, timeout=30)
        except requests.RequestException as exc:  # the Core stopping at teardown ends a call still queued
            context.update(error=type(exc).__name__)
            return
        context.update(status=response.status_code, seconds=round(time.monotonic() - asked, 2))

    asker = threading.Thread(target=ask_context, daemon=True)
    asker.start()
    # Give everything the time the configuration allows, and not more.
    deadline = time.monotonic() + CONTEXT_BUDGET + MARGIN
    while time.monotonic() < deadline and not (context and len(reader.of_type("response.completed")) >= replies):
        time.sleep(0.1)
    done = {f.data["message"]["metadata"]["in_reply_to"]: f.at - posted[f.data["message"]["metadata"]["in_reply_to"]]
            for f in reader.of_type("response.completed")}
    elapsed = time.monotonic() - began
    figures = {"pool_size": POOL_LIMITED, "replies": replies, "completed_within_budget": len(done),
               "completed_after_s": sorted(round(v, 2) for v in done.values()), "context_call": context,
               "health_probes": cognition.health_checks - probes_before, "window_s": round(elapsed, 2),
               "health_probes_expected": int(elapsed / 0.5)}
    report(tmp_path, "slow_cognition_pool_limit", figures)
    reader.close()
    assert len(done) == replies and context.get("seconds", 99) < CONTEXT_BUDGET + MARGIN, figures
