"""Issue 16's acceptance for metrics: the three services scraped while a conversation runs, with one gunicorn
worker each and with two (WEB_CONCURRENCY=2, prometheus-client's multiprocess mode: a scrape of either worker
reports both). A request is counted once, a stream raises the open-streams gauge and lowers it when it ends,
a reply is timed, and stopping Memory shows as a circuit transition in the services that call it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.engines import redis_url, require_engine
from tests.system.support.api import Api
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader
from tests.system.support.stack import Stack, start_stack

Samples = dict[tuple[str, frozenset], float]
CALLS_TO_MEMORY = "cortex_client_calls_total"


def scrape(url: str) -> Samples:
    answer = requests.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    workers = request.param
    core_env = {}
    if workers > 1:  # several Core workers share their streams through Redis
        core_env = {"REDIS_URL": require_engine("Redis", redis_url()), "REDIS_KEY_PREFIX": f"m-{uuid.uuid4().hex[:8]}"}
    # Without the embedding worker, every call Memory answers is one the Core or Cognition made for a test step.
    started = start_stack(tmp_path_factory.mktemp(f"metrics-{workers}"), core_env=core_env,
                          common_env={"WEB_CONCURRENCY": str(workers), "EMBEDDINGS": "off"})
    yield started
    started.stop()


@pytest.fixture(scope="module")
def user(stack) -> Api:
    return Api(stack.core.url, f"metrics-{uuid.uuid4().hex[:8]}@example.com", password="a long enough password 42")


def has(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= found for n, found in samples)


def test_every_service_serves_its_metrics_to_this_machine(stack):
    for proc, service in ((stack.core, "core"), (stack.memory, "memory"), (stack.cognition, "cognition")):
        samples = scrape(proc.url)
        assert value(samples, "cortex_http_requests_total", service=service, route="/health") > 0
    core = scrape(stack.core.url)
    for dependency in ("memory", "cognition"):  # known from the start, before any call or transition
        assert has(core, "cortex_circuit_state", dependency=dependency)
        assert value(core, "cortex_circuit_state", dependency=dependency) == 0


def test_a_request_is_counted_once_and_so_is_each_call_it_makes(stack, user):
    conv = user.conversation("Counting")
    core_before, memory_before = scrape(stack.core.url), scrape(stack.memory.url)
    cognition_before = scrape(stack.cognition.url)
    for _ in range(7):
        assert user.request("GET", f"/v1/conversation/{conv}/messages").status_code == 200
    core_after, memory_after = scrape(stack.core.url), scrape(stack.memory.url)
    cognition_after = scrape(stack.cognition.url)

    def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/conversation/<id:conversation_id>/messages"
    assert delta(core_before, core_after, "cortex_http_requests_total", route=route, method="GET", status="200") == 7
    assert delta(core_before, core_after, "cortex_http_request_duration_seconds_count", route=route) == 7
    # Memory answered exactly the tool calls the Core and Cognition made, no more (no retries were needed).
    def tool_calls(before: Samples, after: Samples, **labels: str) -> float:  # health probes go to /health
        return (delta(before, after, CALLS_TO_MEMORY, dependency="memory", **labels)
                - delta(before, after, CALLS_TO_MEMORY, dependency="memory", tool="probe:health", **labels))

    made = tool_calls(core_before, core_after) + tool_calls(cognition_before, cognition_after)
    answered = delta(memory_before, memory_after, "cortex_http_requests_total", route="/tool/<path:name>")
    assert made >= 7 and answered == made, (made, answered)
    assert tool_calls(core_before, core_after, outcome="ok") + tool_calls(cognition_before, cognition_after,
                                                                          outcome="ok") == made


def test_a_stream_raises_the_gauge_a_reply_is_timed_and_the_gauge_comes_back_down(stack, user):
    conv = user.conversation("Streaming")
    before = scrape(stack.core.url)
    open_before = value(before, "cortex_streams_open")
    reader = StreamReader(user.stream_url(conv), user.token)
    try:
        reader.wait_for("connected")
        wait_until(lambda: value(scrape(stack.core.url), "cortex_streams_open") == open_before + 1, 10,
                   message="the open-streams gauge to count the new stream")
        sent = user.request("POST", f"/v1/conversation/{conv}/messages", json={"content": "How is Porto in spring?"})
        assert sent.status_code in (200, 201, 202), sent.text
        reader.wait_for("response.completed")
    finally:
        reader.close()
    wait_until(lambda: value(scrape(stack.core.url), "cortex_streams_open") == open_before, 10,
               message="the open-streams gauge to come back down once the client left")
    after = scrape(stack.core.url)
    first_text = "cortex_reply_first_token_seconds_count"
    assert value(after, first_text) == value(before, first_text) + 1
    assert value(after, "cortex_reply_duration_seconds_count", outcome="completed") == \
        value(before, "cortex_reply_duration_seconds_count", outcome="completed") + 1
    assert value(after, "cortex_events_published_total") > value(before, "cortex_events_published_total")
    assert value(after, "cortex_streams_limit") > 0
    # Memory timed the transactions that stored the message and the reply, and reports its database's size.
    memory = scrape(stack.memory.url)
    assert value(memory, "cortex_db_transaction_duration_seconds_count", backend="sqlite") > 0
    assert value(memory, "cortex_db_size_bytes", backend="sqlite") > 0
    # The reply asked Cognition for context.
    assert value(scrape(stack.cognition.url), "cortex_retrieval_duration_seconds_count", part="total") > 0


def test_stopping_memory_opens_the_circuits_to_it_and_starting_it_closes_them(stack):
    callers = (stack.core, stack.cognition)
    before = {proc.url: scrape(proc.url) for proc in callers}
    stack.memory.stop()
    try:
        for proc in callers:
            opened = value(before[proc.url], "cortex_circuit_transitions_total", dependency="memory", state="open")
            wait_until(lambda proc=proc, opened=opened: (
                (samples := scrape(proc.url))
                and value(samples, "cortex_circuit_transitions_total", dependency="memory", state="open") > opened
                and value(samples, "cortex_circuit_state", dependency="memory") == 2
                and value(samples, "cortex_dependency_up", dependency="memory") == 0), 15,
                message=f"{proc.app}: the circuit to Memory to open")
    finally:
        stack.memory.start()
    for proc in callers:
        closed = value(before[proc.url], "cortex_circuit_transitions_total", dependency="memory", state="closed")
        wait_until(lambda proc=proc, closed=closed: (
            (samples := scrape(proc.url))
            and value(samples, "cortex_circuit_transitions_total", dependency="memory", state="closed") > closed
            and value(samples, "cortex_circuit_state", dependency="memory") == 0
            and value(samples, "cortex_dependency_up", dependency="memory") == 1), 15,
            message=f"{proc.app}: the circuit to Memory to close again")
