"""Concurrency under gevent, measured in a patched subprocess (pytest itself is not patched)."""

from __future__ import annotations

import json
import sys

from tests.system.support.harness import run


def run_check(*args: str) -> dict:
    done = run([sys.executable, "-m", "tests.system.load.gevent_checks", *args])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_calls_through_one_breaker_run_concurrently():
    timings = run_check("breaker")
    # 20 calls of 100 ms: concurrent is about 0.1 s; pybreaker's own lock serialises them to about 2 s.
    assert timings["concurrent_breaker_s"] < 0.6, timings
    assert timings["plain_pybreaker_s"] > 1.5, timings


def test_a_slow_sqlite_query_does_not_stall_the_hub(tmp_path):
    timings = run_check("sqlite", str(tmp_path / "stall.db"))
    assert timings["query_s"] > 0.2, timings  # the query really was slow
    assert timings["max_hub_gap_s"] < 0.1, timings
