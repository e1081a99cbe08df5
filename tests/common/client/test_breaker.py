"""ConcurrentBreaker: pybreaker's state machine, without serialising the guarded calls."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import gevent
import pybreaker
import pytest

from common.client.breaker import ConcurrentBreaker
from common.errors import Conflict, Forbidden, NotFound, ServiceError, ServiceUnavailable, ToolError


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def callers_fault(exc: BaseException) -> bool:
    return isinstance(exc, ServiceError) and exc.status < 500


def make(fail_max: int = 3, reset_timeout: float = 30, **kwargs) -> ConcurrentBreaker:
    return ConcurrentBreaker(fail_max=fail_max, reset_timeout=reset_timeout, **kwargs)


def trip_by_failures(breaker: ConcurrentBreaker) -> None:
    for _ in range(breaker.fail_max - 1):
        with pytest.raises(Boom):
            breaker.call(fail)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(fail)


def backdate(breaker: ConcurrentBreaker, seconds: float) -> None:
    """Pretend the circuit opened `seconds` ago instead of sleeping through the reset timeout."""
    breaker._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=seconds)


def test_starts_closed_and_passes_results_through():
    breaker = make()
    assert breaker.circuit == "closed"
    assert breaker.call(lambda a, b=0: a + b, 2, b=3) == 5


def test_opens_after_fail_max_consecutive_failures():
    breaker = make(fail_max=3)
    for expected in (1, 2):
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.circuit == "closed"
        assert breaker.fail_counter == expected
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(fail)
    assert breaker.circuit == "open"


def test_a_success_resets_the_consecutive_count():
    breaker = make(fail_max=3)
    for _ in range(5):
        with pytest.raises(Boom):
            breaker.call(fail)
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.call(ok) == "ok"
    assert breaker.circuit == "closed"


def test_trip_raises_original_error_when_asked():
    breaker = make(fail_max=2, throw_new_error_on_trip=False)
    with pytest.raises(Boom):
        breaker.call(fail)
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.circuit == "open"


def test_fails_fast_while_open():
    breaker = make()
    trip_by_failures(breaker)
    ran = []
    for _ in range(5):
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(lambda: ran.append(1))
    assert ran == []
    assert breaker.circuit == "open"


def test_half_open_after_reset_timeout_and_success_closes():
    breaker = make(reset_timeout=30)
    trip_by_failures(breaker)
    backdate(breaker, 29)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(ok)
    backdate(breaker, 31)
    seen = []

    def trial() -> str:
        seen.append(breaker.circuit)
        return "trial ok"

    assert breaker.call(trial) == "trial ok"
    assert seen == ["half_open"]
    assert breaker.circuit == "closed"
    assert breaker.fail_counter == 0
    assert breaker.call(ok) == "ok"


def test_failed_trial_reopens():
    breaker = make(reset_timeout=30)
    trip_by_failures(breaker)
    backdate(breaker, 31)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(fail)
    assert breaker.circuit == "open"
    # The reset timeout starts again from the failed trial.
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(ok)



# --- calls cut off by their caller ------------------------------------------------------------------------

class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.seen.append("failure")

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self.seen.append("success")


def cancelled() -> None:
    raise gevent.GreenletExit


@pytest.mark.parametrize("cut", [gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt],
                         ids=["greenlet-exit", "gevent-timeout", "keyboard-interrupt"])
def test_a_cancelled_call_is_neither_a_failure_nor_a_success(cut):
    breaker = make(fail_max=3)
    recorder = Recorder()
    breaker.add_listener(recorder)
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)

    def cut_off() -> None:
        raise cut()

    for _ in range(6):
        with pytest.raises(cut):
            breaker.call(cut_off)
    assert (breaker.circuit, breaker.fail_counter) == ("closed", 2)  # counted nothing, reset nothing
    assert recorder.seen == ["failure", "failure"]
    with pytest.raises(pybreaker.CircuitBreakerError):  # an ordinary failure still counts: the third opens it
        breaker.call(fail)
    assert breaker.circuit == "open"


def test_greenlets_killed_mid_call_leave_the_circuit_closed():
    breaker = make(fail_max=5)
    started = []

    def slow() -> str:
        started.append(1)
        gevent.sleep(10)
        return "late"

    greenlets = [gevent.spawn(breaker.call, slow) for _ in range(6)]
    gevent.sleep(0)
    assert len(started) == 6  # all six are inside the guarded call
    gevent.killall(greenlets, block=True, timeout=5)
    assert all(isinstance(g.value, gevent.GreenletExit) for g in greenlets)
    assert (breaker.circuit, breaker.fail_counter) == ("closed", 0)


def test_a_call_cut_off_by_a_gevent_timeout_counts_nothing():
    breaker = make(fail_max=1)
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.01):
        breaker.call(gevent.sleep, 10)
    assert (breaker.circuit, breaker.fail_counter) == ("closed", 0)


def test_a_cancelled_trial_leaves_the_circuit_half_open_for_the_next_trial():
    breaker = make(reset_timeout=30)
    trip_by_failures(breaker)
    backdate(breaker, 31)
    with pytest.raises(gevent.GreenletExit):
        breaker.call(cancelled)
    assert breaker.circuit == "half_open"
    assert breaker.call(ok) == "ok"  # the next call is the trial, not refused as if one were still running
    assert breaker.circuit == "closed"


def test_a_cancelled_trial_does_not_close_the_circuit_with_a_success_threshold():
    breaker = make(reset_timeout=30, success_threshold=2)
    trip_by_failures(breaker)
    backdate(breaker, 31)
    assert breaker.call(ok) == "ok"
    with pytest.raises(gevent.GreenletExit):
        breaker.call(cancelled)
    assert (breaker.circuit, breaker.success_counter) == ("half_open", 1)
    assert breaker.call(ok) == "ok"
    assert breaker.circuit == "closed"


@pytest.mark.parametrize(
    ("action", "name"),
    [(lambda b: None, "closed"), (lambda b: b.open(), "open"), (lambda b: b.half_open(), "half_open"),
     (lambda b: (b.open(), b.close()), "closed")],
    ids=["initial", "open", "half-open", "reclosed"],
)
def test_circuit_names(action, name):
    breaker = make()
    action(breaker)
    assert breaker.circuit == name


def test_trip_opens_now_and_keeps_the_first_opening_time():
    breaker = make()
    breaker.trip()
    assert breaker.circuit == "open"
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(ok)
    backdate(breaker, 100)
    opened_at = breaker._state_storage.opened_at
    breaker.trip()  # already open: the reset timeout is not pushed back
    assert breaker._state_storage.opened_at == opened_at


def test_recover_if_due_waits_for_the_reset_timeout():
    breaker = make(reset_timeout=30)
    breaker.trip()
    breaker.recover_if_due()
    assert breaker.circuit == "open"
    backdate(breaker, 31)
    breaker.recover_if_due()
    assert breaker.circuit == "closed"
    assert breaker.call(ok) == "ok"


def test_recover_if_due_closes_half_open():
    breaker = make(reset_timeout=30)
    breaker.trip()
    backdate(breaker, 31)
    breaker.half_open()
    breaker.recover_if_due()
    assert breaker.circuit == "closed"


def test_recover_if_due_leaves_closed_alone():
    breaker = make(fail_max=3)
    with pytest.raises(Boom):
        breaker.call(fail)
    breaker.recover_if_due()
    assert breaker.circuit == "closed"
    assert breaker.fail_counter == 1


@pytest.mark.parametrize("error", [NotFound(), Forbidden(), Conflict(), ToolError(status=429, code="slow_down")])
def test_excluded_4xx_errors_never_open_the_circuit(error):
    breaker = make(fail_max=2, exclude=[callers_fault])

    def raise_it() -> None:
        raise error

    for _ in range(10):
        with pytest.raises(type(error)):
            breaker.call(raise_it)
    assert breaker.circuit == "closed"
    assert breaker.fail_counter == 0


@pytest.mark.parametrize("error", [ServiceUnavailable(), ToolError(status=500, code="boom")])
def test_5xx_service_errors_count(error):
    breaker = make(fail_max=2, exclude=[callers_fault])

    def raise_it() -> None:
        raise error

    with pytest.raises(type(error)):
        breaker.call(raise_it)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(raise_it)
    assert breaker.circuit == "open"


def run_concurrently(breaker: pybreaker.CircuitBreaker, threads: int = 20, seconds: float = 0.1) -> float:
    results: list[str] = []
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        results.append(breaker.call(time.sleep, seconds) or "done")

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in pool:
        thread.join(timeout=10)
    elapsed = time.monotonic() - began
    assert len(results) == threads
    return elapsed


def test_calls_through_one_breaker_run_concurrently():
    concurrent = run_concurrently(ConcurrentBreaker(fail_max=5, reset_timeout=30))
    serialised = run_concurrently(pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30))
    assert concurrent < 1.0
    assert serialised >= 1.5  # pybreaker holds its lock across the call: 20 x 0.1 s one after another


def test_only_one_trial_call_runs_after_the_reset_timeout():
    """Once the reset timeout has passed, one caller runs the trial; the others still fail at once."""
    breaker = ConcurrentBreaker(fail_max=1, reset_timeout=60)
    breaker.open()
    breaker._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=61)
    started, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def trial() -> str:
        started.set()
        release.wait(5)
        return "trial"

    runner = threading.Thread(target=lambda: outcomes.append(breaker.call(trial)))
    runner.start()
    assert started.wait(5)
    began = time.monotonic()
    for _ in range(5):
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(lambda: "should not run")
    assert time.monotonic() - began < 0.5
    release.set()
    runner.join(5)
    assert outcomes == ["trial"] and breaker.circuit == "closed"
    assert breaker.call(lambda: "after") == "after"


def test_no_trial_while_the_monitor_holds_the_circuit_open():
    breaker = make(reset_timeout=30)
    breaker.trip("memory is unreachable")
    backdate(breaker, 31)  # the reset timeout is over, but the monitor still sees the service down
    assert breaker.refuses_calls()
    with pytest.raises(pybreaker.CircuitBreakerError, match="memory is unreachable"):
        breaker.call(ok)
    breaker.recover_if_due()  # a good probe: the hold ends, and the reset timeout is over
    assert breaker.circuit == "closed" and breaker.reason is None
    assert breaker.call(ok) == "ok"


def test_a_good_probe_before_the_reset_timeout_lets_the_usual_trial_decide():
    breaker = make(reset_timeout=30)
    breaker.trip()
    breaker.recover_if_due()
    assert breaker.circuit == "open" and breaker.reason is None
    backdate(breaker, 31)
    assert not breaker.refuses_calls()
    assert breaker.call(ok) == "ok"
    assert breaker.circuit == "closed"


def test_a_trial_that_succeeds_after_the_monitor_tripped_does_not_end_the_hold():
    breaker = make(reset_timeout=30)
    trip_by_failures(breaker)
    backdate(breaker, 31)

    def trial_while_the_probe_fails() -> str:
        breaker.trip("memory names itself 'cognition'")  # the monitor's probe lands during the trial
        return "a 4xx or 2xx answer, which counts as success"

    breaker.call(trial_while_the_probe_fails)
    assert breaker.circuit == "open" and breaker.refuses_calls()
    backdate(breaker, 31)
    assert breaker.refuses_calls()  # held: no trial while the monitor sees the wrong service
    breaker.recover_if_due()
    assert breaker.circuit == "closed"
