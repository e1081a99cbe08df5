"""Settings a service refuses when gunicorn runs it directly (the Procfile's way, several workers): the
master stops with one line naming the variable, and leaves no metrics directory behind, even when it is
every worker that refuses (the master is halted then, without gunicorn's own exit hook)."""

from __future__ import annotations

import sys

import pytest

from tests.system.support.harness import REPO, free_port, run


def gunicorn(app: str, env: dict[str, str], tmp_path) -> object:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    return run([sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "-b",
                f"127.0.0.1:{free_port()}", app],
               {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                "DATABASE_URL": f"sqlite:///{tmp_path}/m.db", **env}, timeout=60)


def test_an_unknown_log_format_stops_the_master_with_one_line(tmp_path):
    done = gunicorn("memory_service.app:create_app()", {"LOG_FORMAT": "xml"}, tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1 and "LOG_FORMAT" in lines[0] and lines[0].startswith("cortex: "), done.stderr
    assert list((tmp_path / "metrics").iterdir()) == []


@pytest.mark.parametrize("app", ["memory_service.app:create_app()", "cognition_service.app:create_app()"])
def test_a_setting_every_worker_refuses_leaves_no_metrics_directory(app, tmp_path):
    done = gunicorn(app, {"METRICS_TOKEN": "short"}, tmp_path)
    assert done.returncode != 0
    assert "METRICS_TOKEN" in done.stderr
    assert list((tmp_path / "metrics").iterdir()) == [], done.stderr[-2000:]
