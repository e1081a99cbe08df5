"""Bounded reply work (issue 11 item 3): places are taken before a message is stored, per user and per
process, given back when the message is not stored or its reply ends; at most `concurrency` replies run."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

import pytest

from common import logs, tracing
from common.errors import TooManyRequests
from core_app.reply_pool import ReplyLimits, ReplyPool, Ticket


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)  # poll interval; the deadline decides


class Gate:
    """Work that blocks until the test opens the gate, and notes the order it ran in and the most
    that ran at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.order: list[int] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def work(self, n: int) -> Callable[[], None]:
        def run() -> None:
            with self._lock:
                self.order.append(n)
                self.running += 1
                self.most = max(self.most, self.running)
            self.open.wait(10)
            with self._lock:
                self.running -= 1
        return run


def refusal(pool: ReplyPool, user: str, key: str | None = None) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as caught:
        pool.admit(user, key)
    return caught.value


def test_a_user_holds_at_most_per_user_places_and_others_are_still_admitted():
    pool = ReplyPool(ReplyLimits(concurrency=10, queue=10, per_user=2))
    with ExitStack() as held:
        held.enter_context(pool.admit("alice"))
        held.enter_context(pool.admit("alice"))

        error = refusal(pool, "alice")
        assert (error.status, error.code) == (429, "too_many_requests")
        assert error.details == {"limit": "replies_per_user", "allowed": 2, "retry_after": error.retry_after}
        assert error.retry_after >= 1
        with pool.admit("bob"):
            pass
    with pool.admit("alice"):  # both places were given back on leaving the blocks
        assert pool.stats()["admitted"] == 1


def test_the_process_admits_at_most_concurrency_plus_queue():
    pool = ReplyPool(ReplyLimits(concurrency=2, queue=1, per_user=10))
    with ExitStack() as held:
        for user in ("a", "b", "c"):
            held.enter_context(pool.admit(user))

        error = refusal(pool, "d")
        assert error.details == {"limit": "reply_queue", "allowed": 3, "retry_after": error.retry_after}
        assert error.retry_after >= 1


def test_a_place_is_given_back_when_the_message_is_not_stored():
    pool = ReplyPool(ReplyLimits(concurrency=1, queue=0, per_user=1))
    for _ in range(3):
        with pytest.raises(RuntimeError), pool.admit("alice"):
            raise RuntimeError("memory said no")
    assert pool.stats() == {"running": 0, "waiting": 0, "admitted": 0, "users": 0, "workers": 0}


def test_at_most_concurrency_replies_run_the_rest_wait_in_order_and_no_worker_stays():
    pool = ReplyPool(ReplyLimits(concurrency=2, queue=4, per_user=10))
    gate = Gate()
    for n in range(6):
        with pool.admit(f"user-{n}") as ticket:
            pool.start(ticket, gate.work(n))
    wait_for(lambda: gate.running == 2)
    assert pool.stats() == {"running": 2, "waiting": 4, "admitted": 6, "users": 6, "workers": 2}
    assert refusal(pool, "late").details["limit"] == "reply_queue"

    gate.open.set()
    wait_for(lambda: pool.stats()["workers"] == 0)
    assert gate.most == 2
    assert sorted(gate.order[:2]) == [0, 1] and gate.order[2:] == [2, 3, 4, 5]
    assert pool.stats() == {"running": 0, "waiting": 0, "admitted": 0, "users": 0, "workers": 0}


def test_a_failing_reply_gives_its_place_back_and_the_worker_goes_on():
    pool = ReplyPool(ReplyLimits(concurrency=1, queue=5, per_user=5))
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("not handled by the reply itself")

    for work in (broken, done.set):
        with pool.admit("alice") as ticket:
            pool.start(ticket, work)

    assert done.wait(5)
    wait_for(lambda: pool.stats()["admitted"] == 0)



def test_a_reply_runs_in_the_trace_of_the_request_that_started_it_and_logs_its_failure_there():
    """A worker starts with an empty context; the reply still logs under, and passes on, its request's trace."""
    pool = ReplyPool(ReplyLimits(concurrency=1, queue=5, per_user=5))
    traces = [tracing.begin(None, None, f"req-{n}") for n in range(2)]
    seen: list[tracing.Trace | None] = []
    done = threading.Event()

    def broken() -> None:
        seen.append(tracing.current())
        raise RuntimeError("not handled by the reply itself")

    def request(trace: tracing.Trace, work: Callable[[], None]) -> None:
        tracing.enter(trace)
        with pool.admit("alice") as ticket:
            pool.start(ticket, work)

    failures: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.addFilter(logs.TraceIds())  # what each service's log handler adds
    handler.emit = failures.append  # type: ignore[method-assign]
    logger = logging.getLogger("core_app.reply_pool")
    logger.addHandler(handler)
    try:
        contextvars.Context().run(request, traces[0], broken)
        contextvars.Context().run(request, traces[1], lambda: (seen.append(tracing.current()), done.set()))
        assert done.wait(5)
    finally:
        logger.removeHandler(handler)
    assert seen == traces  # one worker ran both, each in its own request's trace
    assert len(failures) == 1 and failures[0].exc_info
    assert (failures[0].request_id, failures[0].trace_id) == ("req-0", traces[0].trace_id)
    assert tracing.current() is None

def started_and_held(pool: ReplyPool, user: str, key: str | None, gate: Gate) -> Ticket:
    with pool.admit(user, key) as ticket:
        pool.start(ticket, gate.work(0))
    return ticket


def test_a_retry_whose_reply_is_still_coming_is_never_refused_and_takes_no_second_place():
    pool = ReplyPool(ReplyLimits(concurrency=4, queue=4, per_user=1))
    gate = Gate()
    started_and_held(pool, "alice", "alice:key-1", gate)
    wait_for(lambda: gate.running == 1)

    with pool.admit("alice", "alice:key-1"):  # the retry: Memory replays the message, no new reply
        assert pool.stats()["admitted"] == 1
    assert refusal(pool, "alice", "alice:key-2").details["limit"] == "replies_per_user"
    assert refusal(pool, "alice").details["limit"] == "replies_per_user"

    gate.open.set()
    wait_for(lambda: pool.stats()["admitted"] == 0)
    with pool.admit("alice", "alice:key-1"):  # once the reply is over the key holds nothing
        assert pool.stats()["admitted"] == 1


def test_concurrent_retries_with_one_key_share_one_place():
    pool = ReplyPool(ReplyLimits(concurrency=4, queue=4, per_user=1))
    with pool.admit("alice", "alice:k") as first, pool.admit("alice", "alice:k") as second:
        assert first.place is second.place
        pool.start(second, lambda: None)  # the second one's store answered first
    wait_for(lambda: pool.stats()["admitted"] == 0)


def test_a_retry_that_found_a_message_of_its_own_needs_a_place_of_its_own():
    """Only when Memory stored a new message for a key whose reply is still coming (the first one was
    deleted meanwhile): the limits still hold."""
    pool = ReplyPool(ReplyLimits(concurrency=4, queue=4, per_user=1))
    gate = Gate()
    started_and_held(pool, "alice", "alice:k", gate)
    with pool.admit("alice", "alice:k") as retry, pytest.raises(TooManyRequests):
        pool.start(retry, gate.work(1))
    gate.open.set()
    wait_for(lambda: pool.stats()["admitted"] == 0)


def test_retry_after_follows_how_long_replies_take():
    now = [0.0]
    pool = ReplyPool(ReplyLimits(concurrency=1, queue=0, per_user=1), clock=lambda: now[0])

    def slow_reply() -> None:
        now[0] += 20.0

    for _ in range(10):
        with pool.admit("alice") as ticket:
            pool.start(ticket, slow_reply)
        wait_for(lambda: pool.stats()["admitted"] == 0)
    with pool.admit("alice"):
        assert 15 <= refusal(pool, "alice").retry_after <= 20
        assert 15 <= refusal(pool, "bob").retry_after <= 20
