"""The real engines some tests need (PostgreSQL, Redis): where they are, and what happens when they are not.

`CORTEX_TEST_DATABASE_URL` (default `postgresql://127.0.0.1:5432/test`) and `CORTEX_TEST_REDIS_URL`
(default `redis://127.0.0.1:6379/0`) name them. A test that needs an unreachable engine is skipped with the
reason, so `python -m pytest` passes on a machine without them; with `CORTEX_REQUIRE_BACKENDS=1` (which
`.ci/run` sets) the skip becomes a failure. Tests use their own database schema or key prefix and clean up.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_DATABASE_URL = "postgresql://127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379}


def postgres_url() -> str:
    """The PostgreSQL the tests may use (a database of their own making inside it)."""
    return os.environ.get("CORTEX_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url() -> str:
    """The Redis the tests may use (keys under a prefix of their own making)."""
    return os.environ.get("CORTEX_TEST_REDIS_URL") or DEFAULT_REDIS_URL


def required() -> bool:
    """Whether a missing engine fails the run instead of skipping (CI)."""
    return os.environ.get("CORTEX_REQUIRE_BACKENDS", "").strip().lower() in {"1", "true", "yes", "on"}


def unreachable(url: str, timeout: float = 1.0) -> str | None:
    """Why nothing accepts connections where `url` points, or None when something does."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc})"


def require_engine(name: str, url: str) -> str:
    """`url` when its engine answers; otherwise skip the test (fail it under CORTEX_REQUIRE_BACKENDS=1)."""
    problem = unreachable(url)
    if problem is None:
        return url
    variable = "CORTEX_TEST_DATABASE_URL" if name == "PostgreSQL" else "CORTEX_TEST_REDIS_URL"
    reason = f"{name} is not reachable: {problem}; set {variable} to one"
    if required():
        pytest.fail(f"{reason} (CORTEX_REQUIRE_BACKENDS=1: engines are required here)", pytrace=False)
    pytest.skip(reason)
