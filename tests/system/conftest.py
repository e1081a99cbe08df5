from __future__ import annotations

import pytest

from tests.system.support.harness import ServiceProcess


@pytest.fixture
def spawn(tmp_path):
    """Start services for one test and make sure none outlives it."""
    started: list[ServiceProcess] = []

    def _spawn(app: str, env: dict[str, str], name: str, wait: bool = True, port: int | None = None):
        proc = ServiceProcess(app, env, tmp_path / f"{name}.log", port=port)
        started.append(proc)
        return proc.start(wait=wait)

    yield _spawn
    for proc in reversed(started):  # dependents first, so nobody waits on their open connections
        proc.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/system/" in str(item.fspath):
            item.add_marker(pytest.mark.system)
