"""The client's retry policy: backoff, jitter, the total-time cap, and which answers are retried."""

from __future__ import annotations

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter
from responses.registries import OrderedRegistry
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError
from urllib3.response import HTTPResponse

from common.client import RetryPolicy
from common.client.retry import BoundedRetry, build_retry

URL = "http://memory.test/tool/store"


class FakeClock:
    """A monotonic clock that only moves when the sleeper sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def policy(**overrides) -> RetryPolicy:
    values = {"attempts": 10, "backoff_factor": 0.5, "backoff_max": 100.0, "jitter": 0.0, "max_elapsed": 1e6}
    values.update(overrides)
    return RetryPolicy(**values)


def fail_connect(retry: BoundedRetry, method: str = "POST") -> BoundedRetry:
    """What urllib3 does after a failed connection attempt: count it, then wait the backoff."""
    retry = retry.increment(method, URL, error=ConnectTimeoutError("connect timed out"))
    retry.sleep()
    return retry


def run_until_exhausted(retry: BoundedRetry) -> int:
    attempts = 1
    with pytest.raises(MaxRetryError):
        while True:
            retry = fail_connect(retry)
            attempts += 1
    return attempts


@pytest.mark.parametrize(
    ("factor", "cap", "expected"),
    [
        (0.5, 3.0, [1.0, 2.0, 3.0, 3.0, 3.0]),
        (0.1, 2.0, [0.2, 0.4, 0.8, 1.6, 2.0]),
        (1.0, 100.0, [2.0, 4.0, 8.0, 16.0, 32.0]),
    ],
)
def test_backoff_grows_and_is_capped(factor, cap, expected):
    clock = FakeClock()
    retry = build_retry(policy(attempts=6, backoff_factor=factor, backoff_max=cap), clock=clock, sleeper=clock.sleep)
    attempts = run_until_exhausted(retry)
    # The first retry is immediate (urllib3 waits 0 before it), then the backoff doubles up to the cap.
    assert clock.slept == pytest.approx(expected)
    assert attempts == 7  # the first try plus `attempts` retries


def test_zero_backoff_never_sleeps():
    clock = FakeClock()
    retry = build_retry(policy(attempts=4, backoff_factor=0), clock=clock, sleeper=clock.sleep)
    run_until_exhausted(retry)
    assert clock.slept == []


def test_jitter_is_bounded_and_applied():
    factor, cap, jitter = 0.5, 3.0, 0.25
    bases = [1.0, 2.0, 3.0, 3.0]
    schedules = []
    for _ in range(100):
        clock = FakeClock()
        retry = build_retry(policy(attempts=5, backoff_factor=factor, backoff_max=cap, jitter=jitter),
                            clock=clock, sleeper=clock.sleep)
        run_until_exhausted(retry)
        assert len(clock.slept) == len(bases)
        for delay, base in zip(clock.slept, bases, strict=True):
            assert base <= delay <= min(base + jitter, cap)
        schedules.append(tuple(clock.slept))
    # Jitter spreads clients out: the uncapped delays differ between runs.
    assert len({schedule[:2] for schedule in schedules}) > 50


def test_max_elapsed_stops_once_the_clock_passes_it():
    clock = FakeClock()
    retry = build_retry(policy(backoff_factor=0, max_elapsed=5.0), clock=clock, sleeper=clock.sleep)
    retry = fail_connect(retry)  # the clock starts at the first failure
    clock.now += 4.0  # slow attempts, not sleeps, use up the budget
    retry = fail_connect(retry)
    clock.now += 1.5
    with pytest.raises(MaxRetryError):
        fail_connect(retry)


def test_max_elapsed_counts_the_next_backoff():
    clock = FakeClock()
    retry = build_retry(policy(backoff_factor=1.0, max_elapsed=5.0), clock=clock, sleeper=clock.sleep)
    run_until_exhausted(retry)
    # 0 then 2 s fit in 5 s; waiting another 4 s would not, so it gives up instead of sleeping.
    assert clock.slept == [2.0]
    assert sum(clock.slept) <= 5.0


def test_max_elapsed_is_per_call_not_per_client():
    """The retry object is shared by every call of a client: a later call gets its own time budget."""
    clock = FakeClock()
    base = build_retry(policy(backoff_factor=0, max_elapsed=5.0), clock=clock, sleeper=clock.sleep)
    fail_connect(base)
    clock.now += 3600
    retry = fail_connect(base)
    clock.now += 4.0
    fail_connect(retry)


def test_max_elapsed_caps_retry_after_waits():
    clock = FakeClock()
    retry = build_retry(policy(attempts=5, backoff_factor=0.1, max_elapsed=10.0), clock=clock, sleeper=clock.sleep)
    response = HTTPResponse(body=b"", headers={"Retry-After": "9"}, status=503)
    with pytest.raises(MaxRetryError):
        while True:
            retry = retry.increment("POST", URL, response=response)
            retry.sleep(response)
    assert sum(clock.slept) <= 10.0


def test_retry_after_header_is_honoured_and_capped():
    clock = FakeClock()
    retry = build_retry(policy(attempts=5, backoff_factor=0, max_elapsed=7.0), clock=clock, sleeper=clock.sleep)
    response = HTTPResponse(body=b"", headers={"Retry-After": "3600"}, status=503)
    retry = retry.increment("POST", URL, response=response)
    retry.sleep(response)
    assert clock.slept == [7]  # retry_after_max follows max_elapsed, not the server's hour


@pytest.mark.parametrize("method", ["POST", "GET", "PUT", "DELETE"])
def test_every_method_is_retryable(method):
    retry = build_retry(policy())
    assert retry.is_retry(method, 503)
    # A read timeout after the request was sent is retried too: tool calls carry an Idempotency-Key.
    retry.increment(method, URL, error=ReadTimeoutError(None, URL, "read timed out"))


@pytest.mark.parametrize(
    ("status", "retried"),
    [(502, True), (503, True), (504, True), (500, False), (501, False), (400, False), (401, False),
     (404, False), (409, False), (413, False), (429, False)],
)
def test_is_retry_by_status(status, retried):
    assert build_retry(policy()).is_retry("POST", status) is retried


def session_with(retry: BoundedRetry) -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    ("status", "calls", "final"),
    [(502, 2, 200), (503, 2, 200), (504, 2, 200), (500, 1, 500), (400, 1, 400), (404, 1, 404), (409, 1, 409)],
)
@responses.activate(registry=OrderedRegistry)
def test_status_retries_over_http(method, status, calls, final):
    responses.add(method, URL, status=status, json={"error": {"code": "x", "message": "m", "details": {}}})
    responses.add(method, URL, status=200, json={"result": {}})
    clock = FakeClock()
    session = session_with(build_retry(policy(backoff_factor=0), clock=clock, sleeper=clock.sleep))
    response = session.request(method, URL, json={"arguments": {}})
    assert response.status_code == final
    assert len(responses.calls) == calls


@responses.activate(registry=OrderedRegistry)
def test_exhausted_status_retries_return_the_last_answer():
    for _ in range(3):
        responses.post(URL, status=503, json={"error": {"code": "unavailable", "message": "m", "details": {}}})
    responses.post(URL, status=200, json={"result": {}})
    session = session_with(build_retry(policy(attempts=2, backoff_factor=0)))
    response = session.post(URL, json={"arguments": {}})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert len(responses.calls) == 3
