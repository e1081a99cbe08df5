#!/usr/bin/env python3
"""Start Cortex Core in distributed mode: the Procfile's three processes, each waited for on /health.

Prints the URLs, streams every log line with its process's name, and stops everything on Ctrl-C,
SIGTERM, or as soon as one process dies. Exits non-zero, naming the process, if one fails to start, and
naming the port's variable if another program holds a port or answers on it in the service's place.

    python scripts/run_distributed.py [--timeout 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.config import ConfigError, Env  # noqa: E402 - importable once the repository is on the path
from common.serving import Listen  # noqa: E402
from common.serving.launch import listening_socket  # noqa: E402

PORT_VARS = {"web": ("PORT", 8000), "memory": ("MEMORY_SERVICE_PORT", 9000),
             "cognition": ("COGNITION_SERVICE_PORT", 9100)}
# What each process's /health answers in its "service" field.
SERVICE_NAMES = {"web": "core", "memory": "memory", "cognition": "cognition"}


def read_procfile(path: Path) -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not line.lstrip().startswith("#"):
            processes[name.strip()] = command.strip()
    return processes


def environment() -> dict[str, str]:
    env = dict(os.environ)
    for var, default in PORT_VARS.values():
        env.setdefault(var, str(default))
    env.setdefault("MEMORY_SERVICE_URL", f"http://127.0.0.1:{env['MEMORY_SERVICE_PORT']}")
    env.setdefault("COGNITION_SERVICE_URL", f"http://127.0.0.1:{env['COGNITION_SERVICE_PORT']}")
    env["CORTEX_DISTRIBUTED_MODE"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    # The Procfile calls `gunicorn`: make sure it is this interpreter's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


class Runner:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.width = max(len(name) for name in PORT_VARS)
        self.stopping = threading.Event()

    def start(self, name: str, command: str) -> None:
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        threading.Thread(target=self.pump, args=(name, proc), daemon=True).start()

    def pump(self, name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sys.stdout.write(f"{name:<{self.width}} | {raw.decode(errors='replace')}")
            sys.stdout.flush()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.env[PORT_VARS[name][0]]}"

    def port_taken(self, name: str) -> str | None:
        """Why `name`'s port cannot be had, or None. Checked before anything starts: while gunicorn retries
        a port in use, whatever holds it would answer /health in its place."""
        variable, default = PORT_VARS[name]
        try:
            port = Env(self.env).int(variable, default, minimum=1, maximum=65535)
            listening_socket(Listen(self.env.get("HOST") or "127.0.0.1", port, variable)).close()
        except ConfigError as error:
            return str(error)
        return None

    def health(self, name: str) -> tuple[int, str] | None:
        """What answers /health on `name`'s port: its status and the "service" it names ("" when the
        answer is not a Cortex /health), or None while nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.url(name)}/health", timeout=1) as response:
                status, body = response.status, response.read(65536)
        except urllib.error.HTTPError as exc:  # a 503 from our own service while its database is not ready
            status, body = exc.code, exc.read(65536)
        except OSError:
            return None
        try:
            service = json.loads(body).get("service")
        except (ValueError, AttributeError):
            service = ""
        return status, service if isinstance(service, str) else ""

    def wait_healthy(self, name: str, timeout: float) -> str | None:
        """None once the process this runner started answers /health as its service, else why not."""
        variable, expected = PORT_VARS[name][0], SERVICE_NAMES[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            code = self.procs[name].poll()
            if code is not None:
                return f"exited with status {code}"
            answer = self.health(name)
            if answer is not None:
                status, service = answer
                if service != expected:
                    return (f"another program answers on {self.url(name)} ({variable}), "
                            f"not the {expected} service: stop it or set {variable}")
                # An answer while our own child is gone (or going) came from someone else.
                if status == 200 and self.procs[name].poll() is None:
                    return None
            time.sleep(0.2)
        return f"did not answer /health within {timeout:g} s"

    def stop_all(self, grace: float = 5.0) -> None:
        self.stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def first_death(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds each service has to become healthy")
    args = parser.parse_args()
    runner = Runner(environment())
    # Ctrl-C and SIGTERM stop it the same way. SIGINT is set explicitly: a process started in the background
    # of a shell (or by one that was) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: runner.stopping.set())
    processes = read_procfile(REPO / "Procfile")
    for name in PORT_VARS:
        problem = runner.port_taken(name)
        if problem:
            print(f"run_distributed: {name}: {problem}", file=sys.stderr)
            return 1
    # Memory first: the others report themselves degraded until it is up.
    for name in ("memory", "cognition", "web"):
        runner.start(name, processes[name])
        problem = runner.wait_healthy(name, args.timeout)
        if runner.stopping.is_set():  # Ctrl-C while starting
            break
        if problem:
            print(f"run_distributed: {name} failed to start: {problem}", file=sys.stderr)
            runner.stop_all()
            return 1
    else:
        print(f"\nCortex Core is up:\n  Core App          {runner.url('web')}\n"
              f"  Memory Service    {runner.url('memory')}\n  Cognition Service {runner.url('cognition')}\n"
              "Press Ctrl-C to stop.\n", flush=True)
        while not runner.stopping.wait(0.3):
            dead = runner.first_death()
            if dead:
                print(f"run_distributed: {dead[0]} exited with status {dead[1]}; stopping the others",
                      file=sys.stderr)
                runner.stop_all()
                return 1
    runner.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
