"""Faults against the circuit breakers: a dependency that dies or freezes is answered fast with 503, shows
in `/health`, and is used again by itself once it is back, without restarting anyone (issue "Prove it
holds", item 3)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from common.client import ClientSettings, RetryPolicy, ServiceClient
from common.errors import ServiceError
from tests.system.faults.stack_probe import HealthWatch, dependency, frozen, health, untouched
from tests.system.support.api import Api
from tests.system.support.figures import latency_figures, report
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import SERVICE_TOKEN, start_stack

# start_stack's breaker and monitor settings, with a read timeout and reset timeout chosen so that a
# trial call (two attempts of READ_TIMEOUT) ends before the reset timeout: a sequential caller of a
# frozen service then meets the open circuit, not one trial after another.
FAIL_MAX, INTERVAL, RETRIES, RETRY_MAX = 3, 0.5, 1, 1.0
CONNECT_TIMEOUT, READ_TIMEOUT, RESET = 2.0, 1.0, 2.5
CALL_BOUND = (CONNECT_TIMEOUT + READ_TIMEOUT) * (RETRIES + 1) + RETRY_MAX + 2.0
FAST = 0.5  # an answer that waited for no timeout (a timed-out call takes READ_TIMEOUT at least)
FAIL_FAST_CALLS = 200
# The circuit closes within the reset timeout + one health interval of the service being back; the
# rest is room for polling and for a 2-core machine shared with other test runs.
RECOVERY_BOUND = RESET + INTERVAL + 2.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = start_stack(tmp_path_factory.mktemp("circuit"), core_env={"DEBUG_STATS": "true"}, common_env={
        "CLIENT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT), "CLIENT_READ_TIMEOUT": str(READ_TIMEOUT),
        "BREAKER_RESET_SECONDS": str(RESET)})
    yield started
    started.stop()


@pytest.fixture
def api(stack):
    """A user with a conversation on a stack whose circuits are all closed (a test may leave one open)."""
    # "healthy" only says the last probes passed; a circuit stays open until its reset timeout has passed.
    wait_until(lambda: all(dep == {"status": "up", "circuit": "closed"} for dep in health(stack)["dependencies"]
                           .values()), 15, interval=0.1, message="every circuit closed")
    user = Api(stack.core.url, f"circuit-{uuid.uuid4().hex[:10]}@example.com")
    user.conv = user.conversation("Breakers")
    return user


def timed(session: requests.Session, method: str, url: str, **kwargs) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = session.request(method, url, timeout=(5, CALL_BOUND + 10), **kwargs)
    return response, time.monotonic() - started


def sent_content(response: requests.Response) -> str:
    return json.loads(response.request.body)["content"]


def session_for(api: Api) -> requests.Session:
    session = requests.Session()
    session.headers.update(api.headers)
    return session


def unavailable(response: requests.Response, service: str) -> bool:
    error = response.json().get("error", {})
    return (response.status_code == 503 and error.get("code") == "unavailable" and service in error.get("message", "")
            and isinstance(error.get("details"), dict))


def circuit_answer(response: requests.Response) -> bool:
    """A 503 from the open circuit itself, as opposed to one from a failed attempt."""
    return response.status_code == 503 and response.json()["error"]["details"].get("circuit") == "open"


def until_circuit_answers(session: requests.Session, url: str, label: str) -> list[tuple[requests.Response, float]]:
    """Post until the open circuit answers (bounded); every answer before it took a real attempt."""
    answers = []
    deadline = time.monotonic() + 30
    for n in range(50):
        answers.append(timed(session, "POST", url, json={"content": f"{label} {n}"}))
        if circuit_answer(answers[-1][0]) or time.monotonic() > deadline:
            break
    return answers


def fail_fast(session: requests.Session, url: str, body: dict, service: str) -> list[float]:
    seconds = []
    for _ in range(FAIL_FAST_CALLS):
        response, elapsed = timed(session, "POST", url, json=body)
        assert unavailable(response, service), response.text
        seconds.append(elapsed)
    return seconds


def wait_closed(stack, name: str, since: float) -> float:
    wait_until(lambda: dependency(stack, name)["circuit"] == "closed", RECOVERY_BOUND + 10, interval=0.05,
               message=f"{name}'s circuit to close")
    return time.monotonic() - since


def test_memory_killed_fails_fast_and_the_circuit_closes_by_itself(stack, api, tmp_path):
    session = session_for(api)
    post_url = f"{stack.core.url}/v1/conversation/{api.conv}/messages"
    before = untouched(stack)
    assert session.post(post_url, json={"content": "before"}, timeout=10).status_code == 202

    watch = HealthWatch(stack, "memory")
    stack.memory.kill()
    killed_at = time.monotonic()
    answers = until_circuit_answers(session, post_url, "while dead")
    first_circuit_answer = time.monotonic() - killed_at
    wait_until(lambda: health(stack)["status"] == "degraded" and
               dependency(stack, "memory") == {"status": "down", "circuit": "open"}, 10,
               message="/health to show memory down and its circuit open")
    seconds = fail_fast(session, post_url, {"content": "still dead"}, "memory")

    stack.memory.start()
    up_at = time.monotonic()
    recovery = wait_closed(stack, "memory", up_at)
    back = session.post(post_url, json={"content": "back again"}, timeout=10)
    history = session.get(post_url, params={"limit": 1000}, timeout=10).json()["messages"]
    figures = {"attempts_before_circuit": len(answers) - 1, "attempt_statuses": [r.status_code for r, _ in answers],
               "attempt_seconds": [round(s, 3) for _, s in answers],
               "kill_to_first_circuit_503_s": round(first_circuit_answer, 3),
               "health_first_seen_s_after_kill": watch.stop(), "fail_fast": latency_figures(seconds),
               "memory_down_s": round(up_at - killed_at, 3),
               "memory_healthy_to_circuit_closed_s": round(recovery, 3), "recovery_bound_s": RECOVERY_BOUND}
    report(tmp_path, "memory_killed_circuit", figures)

    assert circuit_answer(answers[-1][0]), answers[-1][0].text
    assert len(answers) - 1 <= FAIL_MAX
    assert all(unavailable(r, "memory") and s < CALL_BOUND for r, s in answers)
    assert figures["fail_fast"]["p99_ms"] < FAST * 1000 and figures["fail_fast"]["p50_ms"] < 100
    assert recovery <= RECOVERY_BOUND
    assert back.status_code == 202, back.text
    assert [m["content"] for m in history if m["role"] == "user"] == ["before", "back again"]
    assert health(stack)["status"] == "healthy"
    assert untouched(stack) == {**before, "memory_service": untouched(stack)["memory_service"]}


def test_memory_frozen_costs_at_most_the_threshold_in_timeouts(stack, api, tmp_path):
    """SIGSTOP: connections are accepted but never answered, the case where failing fast matters."""
    session = session_for(api)
    post_url = f"{stack.core.url}/v1/conversation/{api.conv}/messages"
    before = untouched(stack)
    watch = HealthWatch(stack, "memory")
    with frozen(stack.memory):
        frozen_at = time.monotonic()
        answers = until_circuit_answers(session, post_url, "frozen")
        first_circuit_answer = time.monotonic() - frozen_at
        wait_until(lambda: dependency(stack, "memory")["circuit"] == "open", 10, message="memory's circuit to open")
        fast = [timed(session, "POST", post_url, json={"content": f"still frozen {n}"}) for n in range(50)]
    resumed_at = time.monotonic()
    recovery = wait_closed(stack, "memory", resumed_at)
    back = session.post(post_url, json={"content": "thawed"}, timeout=10)
    history = session.get(post_url, params={"limit": 1000}, timeout=10).json()["messages"]
    stored = Counter(m["content"] for m in history if m["role"] == "user")
    figures = {"attempts_before_circuit": len(answers) - 1, "attempt_statuses": [r.status_code for r, _ in answers],
               "attempt_seconds": [round(s, 3) for _, s in answers],
               "freeze_to_first_circuit_503_s": round(first_circuit_answer, 3),
               "health_first_seen_s_after_freeze": watch.stop(),
               "while_frozen": latency_figures([s for _, s in fast]),
               "while_frozen_statuses": sorted({r.status_code for r, _ in fast}),
               "while_frozen_waited_for_timeout": sum(1 for _, s in fast if s >= FAST),
               "resume_to_circuit_closed_s": round(recovery, 3), "recovery_bound_s": RECOVERY_BOUND,
               "timed_out_but_stored_after_thaw": sum(1 for r, _ in answers + fast
                                                      if r.status_code == 504 and stored[sent_content(r)])}
    report(tmp_path, "memory_frozen_circuit", figures)

    assert circuit_answer(answers[-1][0]), answers[-1][0].text
    assert len(answers) - 1 <= FAIL_MAX
    for response, seconds in answers[:-1]:
        assert response.status_code in (503, 504) and seconds < CALL_BOUND, (response.status_code, seconds)
        assert response.json()["error"]["code"] == {503: "unavailable", 504: "timeout"}[response.status_code]
    # Once open, only a trial call (one per reset timeout, should one fall due) waits for its timeout.
    trials = [(r, s) for r, s in fast if s >= FAST]
    assert len(trials) <= 1 and all(r.status_code in (503, 504) and s < CALL_BOUND for r, s in trials)
    assert all(unavailable(r, "memory") for r, s in fast if s < FAST)
    assert figures["while_frozen"]["p50_ms"] < 100
    assert recovery <= RECOVERY_BOUND
    assert back.status_code == 202, back.text
    assert max(stored.values()) == 1, "a message was stored twice"
    assert untouched(stack) == before


def test_while_half_open_only_the_trial_call_waits(stack, api, tmp_path):
    """Ten concurrent callers of a frozen Memory through one client: once the circuit is open, the
    trial call after each reset timeout may wait for its timeout; the others must still fail fast."""
    client = ServiceClient("memory", stack.memory.url, token=SERVICE_TOKEN, settings=ClientSettings(
        read_timeout=0.5, retry=RetryPolicy(attempts=0), fail_max=1, reset_timeout=0.3))
    calls: list[tuple[float, float, str]] = []
    lock = threading.Lock()
    origin = time.monotonic()

    def caller() -> None:
        deadline = time.monotonic() + 2.0
        for _ in range(200):
            if time.monotonic() > deadline:
                return
            started = time.monotonic()
            try:
                client.call_tool("get_user", {"user_id": api.user["id"]})
                outcome = "ok"
            except ServiceError as exc:
                outcome = exc.code
            with lock:
                calls.append((started - origin, time.monotonic() - origin, outcome))
            time.sleep(0.02)  # pacing, so ten callers do not spin on the open circuit

    with frozen(stack.memory):
        with pytest.raises(ServiceError):  # the first failure opens the circuit (fail_max=1)
            client.call_tool("get_user", {"user_id": api.user["id"]})
        assert client.circuit == "open"
        callers = [threading.Thread(target=caller, daemon=True) for _ in range(10)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join(10)
    client.close()
    waited = [(start, end) for start, end, _ in calls if end - start >= 0.4]
    overlap = max((sum(1 for s, e in waited if s < end and e > start) for start, end in waited), default=0)
    report(tmp_path, "half_open_trial_calls", {
        "calls": len(calls), "outcomes": dict(Counter(o for _, _, o in calls)), "waited_for_timeout": len(waited),
        "most_waiting_at_once": overlap, "fast": latency_figures([e - s for s, e, _ in calls if e - s < 0.4] or [0])})
    assert all(not alive for alive in (t.is_alive() for t in callers))
    assert overlap <= 1, f"{overlap} calls waited for a timeout at the same time while half-open"


def test_cognition_killed_replies_go_on_with_a_warning_and_the_circuit_closes(stack, api, tmp_path):
    session = session_for(api)
    post_url = f"{stack.core.url}/v1/conversation/{api.conv}/messages"
    context_url = f"{stack.core.url}/v1/context"
    before = untouched(stack)

    watch = HealthWatch(stack, "cognition")
    stack.cognition.kill()
    wait_until(lambda: health(stack)["status"] == "degraded" and
               dependency(stack, "cognition") == {"status": "down", "circuit": "open"}, 10,
               message="/health to show cognition down and its circuit open")
    reader = StreamReader(api.stream_url(api.conv), token=api.token)
    reader.wait_for("connected")
    posted_at = time.monotonic()
    posted, post_seconds = timed(session, "POST", post_url, json={"content": "reply without context"})
    completed = reader.wait_for("response.completed")[0]
    reply_seconds = time.monotonic() - posted_at
    reader.close()
    seconds = fail_fast(session, context_url, {"query": "anything"}, "cognition")
    memory_circuit = dependency(stack, "memory")["circuit"]

    stack.cognition.start()
    recovery = wait_closed(stack, "cognition", time.monotonic())
    again = StreamReader(api.stream_url(api.conv), token=api.token)
    again.wait_for("connected")
    assert session.post(post_url, json={"content": "reply with context"}, timeout=10).status_code == 202
    again.wait_for("response.completed")
    context = session.post(context_url, json={"query": "context"}, timeout=10)
    again.close()
    figures = {"health_first_seen_s_after_kill": watch.stop(), "post_status": posted.status_code,
               "post_s": round(post_seconds, 3), "post_to_reply_completed_s": round(reply_seconds, 3),
               "events": reader.types(), "fail_fast": latency_figures(seconds),
               "cognition_healthy_to_circuit_closed_s": round(recovery, 3), "recovery_bound_s": RECOVERY_BOUND,
               "events_after_recovery": again.types()}
    report(tmp_path, "cognition_killed_circuit", figures)

    assert posted.status_code == 202, posted.text
    warning = next(e for e in reader.events if e.event == "warning")
    assert warning.data["code"] == "context_unavailable" and "cognition" in warning.data["message"]
    assert reader.types().index("warning") < reader.types().index("response.completed")
    assert completed.data["message"]["role"] == "assistant" and completed.data["message"]["content"]
    assert figures["fail_fast"]["p99_ms"] < FAST * 1000 and figures["fail_fast"]["p50_ms"] < 100
    assert memory_circuit == "closed", "Cognition being down must not open Memory's circuit"
    assert recovery <= RECOVERY_BOUND
    assert "warning" not in again.types() and context.status_code == 200, context.text
    assert untouched(stack) == {**before, "cognition_service": untouched(stack)["cognition_service"]}
