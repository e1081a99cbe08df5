"""The storage backends the contract suite runs against, and how a test opens a fresh store on each.

Adding a backend to the suite is one entry in OPENERS (and its skip when its engine is unreachable).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory_service.store import Store
from memory_service.store.sqlite import SqliteStore

OPENERS: dict[str, Callable[..., Store]] = {
    "sqlite": lambda directory, **options: SqliteStore(str(directory / "memory.db"), **options),
}
BACKENDS = list(OPENERS)


def open_test_store(backend: str, directory: Path, **options: Any) -> Store:
    """A new, empty store of `backend` holding its data under `directory` (a backend on a server uses a
    database of its own); `options` are the backend's keyword settings (clock, max_page_bytes, limits ...)."""
    return OPENERS[backend](directory, **options)
