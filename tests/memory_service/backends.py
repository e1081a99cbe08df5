"""The storage backends the contract suite runs against, and how a test opens a fresh store on each.

Adding a backend to the suite is one name in BACKENDS and one branch in `open_test_store`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memory_service.store import Store
from memory_service.store.sqlite import SqliteStore

BACKENDS = ["sqlite"]


def open_test_store(backend: str, directory: Path, **options: Any) -> Store:
    """A new, empty store of `backend` holding its data under `directory`; `options` are the backend's
    keyword settings (clock, max_page_bytes, limits ...)."""
    if backend == "sqlite":
        return SqliteStore(str(directory / "memory.db"), **options)
    raise ValueError(f"no test setup for backend {backend!r}")
