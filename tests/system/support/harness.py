"""The one way system tests start programs: every child runs from the repository root, in a session of its
own that dies with the test process, so none outlives a run. `ServiceProcess` is a service under gunicorn +
gevent on a free loopback port; `Process` is any other long-running command; `run` is a command run to its end."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

from tests.system.support.polling import wait_until

REPO = Path(__file__).resolve().parents[3]


def die_with_parent() -> None:
    """Ask Linux to SIGTERM the child when the test process dies, so no service outlives a killed run."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(env: Mapping[str, str] | None = None, unset: Iterable[str] = ()) -> dict[str, str]:
    """The test's own environment without the `unset` variables, with `env` on top."""
    dropped = set(unset)
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **(env or {})}


def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen:
    """Start `argv` from the repository root in a session of its own (its process group is its pid) that
    dies with the test process; `kwargs` go to `subprocess.Popen` (stdio, env, text)."""
    return subprocess.Popen(argv, cwd=REPO, start_new_session=True, preexec_fn=die_with_parent, **kwargs)


def run(argv: list[str], env: Mapping[str, str] | None = None, unset: Iterable[str] = (), timeout: float = 60,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """Run `argv` from the repository root to its end and capture its output as text."""
    return subprocess.run(argv, cwd=REPO, env=environment(env, unset), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def session_alive(pid: int) -> bool:
    """Whether any process of the session `pid` leads (a gunicorn master and its workers, say) still runs."""
    listing = subprocess.run(["ps", "-eo", "sid="], capture_output=True, text=True).stdout.split()
    return str(pid) in listing


class Process:
    """A long-running command from the repository root, logging to a file, stoppable with its children."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path, unset: Iterable[str] = ()) -> None:
        self.argv = argv
        self.env = environment({**env, "PYTHONUNBUFFERED": "1"}, unset)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.proc = popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        assert self.proc is not None, "never started"
        return self.proc.wait(timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "never started"
        return self.proc.pid

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the program and every child of it (SIGSTOP freezes them all, SIGCONT thaws them)."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Signal the whole process group and wait for it to go; SIGKILL if it will not."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.signal_group(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def shut_down(self, sig: int = signal.SIGTERM, timeout: float = 10) -> float:
        """Signal only the program, as a supervisor would, so that it stops its own children; SIGKILL the group
        if it has not exited within `timeout`; wait until nothing of its session runs. Returns the seconds taken."""
        assert self.proc is not None, "never started"
        started = time.monotonic()
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        wait_until(lambda: not self.session_alive(), 5, message="every child process to exit")
        return time.monotonic() - started

    def session_alive(self) -> bool:
        """Whether any process of the child's session (gunicorn masters and workers) is still running."""
        return self.proc is not None and session_alive(self.proc.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ServiceProcess(Process):
    """One service under `gunicorn -k gevent`, logging to a file, restartable on the same port."""

    def __init__(self, app: str, env: Mapping[str, str], log_path: Path, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        # The master's metrics directory goes in the test's own directory, so a master a test kills (which
        # cannot remove it) leaves nothing in the system's temporary directory.
        metrics = log_path.parent / "prometheus"
        metrics.mkdir(parents=True, exist_ok=True)
        env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics), **env}
        super().__init__([sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "-b",
                          f"127.0.0.1:{self.port}", "--graceful-timeout", "2", app], env, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServiceProcess:
        super().start()
        if wait:
            self.wait_healthy()
        return self

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_healthy(self, timeout: float = 20) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.app} exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self.healthy()

        try:
            wait_until(ready, timeout, message=f"{self.app} /health")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
