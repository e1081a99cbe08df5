"""Watching and disturbing a running stack in fault tests: `/health` over time, restarts, frozen processes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from tests.system.support.harness import ServiceProcess
from tests.system.support.stack import Stack


def health(stack: Stack) -> dict:
    return requests.get(f"{stack.core.url}/health", timeout=5).json()


def dependency(stack: Stack, name: str) -> dict:
    return health(stack)["dependencies"][name]


def is_error_shape(body: object, code: str) -> bool:
    """`body` is `{"error": {"code": code, "message": <non-empty>, "details": {...}}}`."""
    error = body.get("error") if isinstance(body, dict) else None
    return (isinstance(error, dict) and error.get("code") == code and isinstance(error.get("message"), str)
            and bool(error["message"]) and isinstance(error.get("details"), dict))


class HealthWatch:
    """Polls Core's `/health` in the background (bounded to a minute) and notes when each combination
    of overall status, dependency status and circuit was first seen."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.stack, self.name, self.started = stack, name, time.monotonic()
        self.first: dict[tuple[str, str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = self.started + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                report = health(self.stack)
                dep = report["dependencies"][self.name]
                self.first.setdefault((report["status"], dep["status"], dep["circuit"]),
                                      round(time.monotonic() - self.started, 3))
            except (requests.RequestException, ValueError, KeyError):
                pass
            self._stop.wait(0.05)

    def stop(self) -> dict[str, float]:
        """Stop polling; seconds from the start of the watch to the first sight of each combination."""
        self._stop.set()
        self._thread.join(5)
        return {"/".join(key): at for key, at in sorted(self.first.items(), key=lambda item: item[1])}


def boots(proc: ServiceProcess) -> int:
    """How many gunicorn workers the process has started: more than one means it was restarted."""
    return proc.log_path.read_text(errors="replace").count("Booting worker")


def untouched(stack: Stack) -> dict:
    """What shows a restart: the Core worker's pid (Core needs DEBUG_STATS=true), and each process's
    pid and worker boots."""
    return {"core_worker_pid": requests.get(f"{stack.core.url}/debug/stats", timeout=5).json()["pid"],
            **{proc.app.split(".")[0]: (proc.pid, boots(proc)) for proc in stack.all()}}


@contextmanager
def frozen(proc: ServiceProcess) -> Iterator[None]:
    """SIGSTOP the service: its port still accepts connections, but nothing is answered until SIGCONT."""
    proc.signal_group(signal.SIGSTOP)
    try:
        yield
    finally:
        proc.signal_group(signal.SIGCONT)
