"""How many gunicorn workers the Core App may run. Also read by gunicorn's master (`gunicorn.conf.py`), before
gevent patches anything, so it imports nothing but `common.config`."""

from __future__ import annotations

from common.config import ConfigError, Env


def worker_count(env: Env, shared_log: bool) -> int:
    """WEB_CONCURRENCY, refused above 1 without REDIS_URL: each worker would keep its own in-process
    event log, and a message posted through one would never reach the streams another holds."""
    workers = env.int("WEB_CONCURRENCY", 1, minimum=1)
    if workers > 1 and not shared_log:
        raise ConfigError("WEB_CONCURRENCY", f"must be 1 for the Core App without REDIS_URL, got {workers}: the "
                                             "in-process event log is per worker, so a message posted through "
                                             "one worker would never reach streams held by another")
    return workers
