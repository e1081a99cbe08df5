"""`python -m <service>`: check the configuration, then become gunicorn with the gevent worker.

The process is replaced (exec), so signals from a terminal, honcho or docker reach gunicorn directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from common.config import ConfigError, exit_on_config_error

REPO_ROOT = Path(__file__).resolve().parent.parent


def gunicorn_argv(app_spec: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--chdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "gunicorn.conf.py"),
            "-b", f"{host}:{port}", app_spec]


def serve(app_spec: str, load_address: Callable[[], tuple[str, int]]) -> None:
    """Validate settings first, so a bad one is one line here rather than a worker boot failure."""
    try:
        host, port = load_address()
    except ConfigError as error:
        exit_on_config_error(error)
    argv = gunicorn_argv(app_spec, host, port)
    os.execv(argv[0], argv)
