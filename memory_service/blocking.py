"""Running blocking calls off the gevent hub: in gevent's native threadpool when monkey-patched, inline
otherwise. Shared by the SQLite backend (sqlite3 blocks the hub) and password hashing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import gevent.monkey

T = TypeVar("T")


def patched() -> bool:
    """True when gevent has monkey-patched this process (a gunicorn gevent worker)."""
    return gevent.monkey.is_module_patched("socket")


def captured(fn: Callable[..., T], *args: Any) -> tuple[bool, Any]:
    """`fn(*args)` as (ok, value or exception): gevent's hub prints every exception escaping a pool thread,
    and ours (NotFound...) are ordinary results."""
    try:
        return True, fn(*args)
    except Exception as exc:
        return False, exc


def unwrap(outcome: tuple[bool, Any]) -> Any:
    """The value of a `captured` outcome, or its exception raised here."""
    ok, value = outcome
    if not ok:
        raise value
    return value


def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in gevent's native threadpool when monkey-patched, inline otherwise."""
    if patched():
        return unwrap(gevent.get_hub().threadpool.apply(captured, (fn, *args)))
    return fn(*args)
