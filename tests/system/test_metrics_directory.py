"""Where gunicorn's workers keep their metrics: a directory of each master's own, inside
PROMETHEUS_MULTIPROC_DIR when that is set, so nothing else there is read or deleted (a SQLite database beside
it, another service's files), and removed when the master exits, after a reload (HUP) too."""

from __future__ import annotations

import os
import signal

import requests

from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until

WORKERS = 2
# What gunicorn logs as each worker starts, and as one stops gracefully.
BOOTED, EXITED = "Booting worker with pid", "Worker exiting"


def metrics_directories(parent) -> list:
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("cortex-metrics-"))


def log_count(proc: ServiceProcess, text: str) -> int:
    return proc.log_text().count(text)


def test_two_services_share_a_chosen_directory_without_touching_what_else_is_there(tmp_path):
    shared = tmp_path / "metrics"
    shared.mkdir()
    keep = shared / "keep.db"  # what a careless setting may point at: a directory holding a database
    keep.write_bytes(b"not a metrics file")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "WEB_CONCURRENCY": str(WORKERS)}
    first = ServiceProcess("memory_service.app:create_app()", {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/a.db"},
                           tmp_path / "a.log")
    second = ServiceProcess("memory_service.app:create_app()", {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/b.db"},
                            tmp_path / "b.log")
    try:
        first.start()
        second.start()
        assert len(metrics_directories(shared)) == 2
        for _ in range(20):
            requests.get(f"{first.url}/health", timeout=5)
        for proc, ours in ((first, True), (second, False)):
            answer = requests.get(f"{proc.url}/metrics", timeout=5)
            assert answer.status_code == 200, answer.text
            line = 'cortex_http_requests_total{method="GET",route="/health",service="memory",status="200"}'
            counted = [float(row.split()[-1]) for row in answer.text.splitlines() if row.startswith(line)]
            # Each reports its own requests (the harness's readiness probes plus ours), never the other's.
            assert counted and (counted[0] >= 20 if ours else counted[0] < 20), answer.text[-2000:]
        # A reload (HUP): gunicorn.conf.py is read again, the directory stays known. The service answers
        # throughout, so what proves the reload over is gunicorn's log: new workers booted, the old ones gone.
        wait_until(lambda: log_count(first, BOOTED) == WORKERS, 10, message="the first workers to boot")
        os.kill(first.pid, signal.SIGHUP)
        wait_until(lambda: "Hang up: Master" in first.log_text() and log_count(first, BOOTED) == 2 * WORKERS
                   and log_count(first, EXITED) == WORKERS, 20, message="the reload's workers to replace the first")
        wait_until(first.healthy, 10, message="the reloaded service to answer")
    finally:
        first.stop()
        second.stop()
    assert keep.read_bytes() == b"not a metrics file"
    assert metrics_directories(shared) == []
    assert sorted(os.listdir(shared)) == ["keep.db"]
