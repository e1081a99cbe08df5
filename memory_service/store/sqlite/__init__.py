"""The SQLite backend: `SqliteStore` over a pooled, group-committed SQLite file."""

from __future__ import annotations

from memory_service.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
