"""`python -m <service>`: check the configuration, take the port, then become gunicorn with the gevent worker.

The process is replaced (exec), so signals from a terminal, honcho or docker reach gunicorn directly.
Everything a user can get wrong is found before the exec and reported as one line naming the variable:
gunicorn's own reports of the same problems are tracebacks or a dozen lines.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.config import ConfigError, Env, UnusableSetting, exit_on_config_error

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Listen:
    """Where a service listens, and the variable that sets its port (named when the port cannot be had)."""

    host: str
    port: int
    port_variable: str


def gunicorn_argv(app_spec: str, fd: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--chdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "gunicorn.conf.py"),
            "-b", f"fd://{fd}", app_spec]


def is_ipv6_literal(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return False
    return True


def listening_socket(listen: Listen) -> socket.socket:
    """Bind the service's address here and hand the bound socket to gunicorn (`fd://`), so a port in use
    is reported here, and nothing can take the port between this check and gunicorn's start."""
    where = f"{listen.host}:{listen.port}"
    host = listen.host.strip("[]")
    # As gunicorn picks the family: IPv6 only for an IPv6 literal, so `localhost` stays 127.0.0.1.
    family = socket.AF_INET6 if is_ipv6_literal(host) else socket.AF_INET
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, listen.port, family, socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError("HOST", f"is not an address of this machine, got {listen.host!r} ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    # As gunicorn does: a restart may bind while the previous process's connections are in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        variable = listen.port_variable
        if exc.errno == errno.EADDRINUSE:
            problem = (f"{listen.port} is already in use on {listen.host} (another program listens there): "
                       f"stop it or set {variable} to a free port")
        elif exc.errno == errno.EADDRNOTAVAIL:
            variable, problem = "HOST", f"{listen.host} is not an address of this machine"
        else:
            problem = f"{listen.port}: cannot listen on {where}: {exc.strerror}"
        raise UnusableSetting(variable, problem) from None
    sock.set_inheritable(True)
    return sock


def check_gunicorn_settings() -> None:
    """The settings gunicorn.conf.py reads. gunicorn itself parses WEB_CONCURRENCY with a bare int() as it
    is imported, so a bad value must be caught before the exec to be one line."""
    env = Env()
    env.int("WEB_CONCURRENCY", 1, minimum=1)
    env.int("WORKER_CONNECTIONS", 12000, minimum=1)
    if env.raw("WEB_CONCURRENCY") is None:  # blank means unset here, but gunicorn would int("") it
        os.environ.pop("WEB_CONCURRENCY", None)


def serve(app_spec: str, prepare: Callable[[], Listen]) -> None:
    """Run `prepare` (load and check the settings), take the port, then exec gunicorn on that socket."""
    try:
        check_gunicorn_settings()
        sock = listening_socket(prepare())
    except ConfigError as error:
        exit_on_config_error(error)
    argv = gunicorn_argv(app_spec, sock.fileno())
    os.execv(argv[0], argv)
