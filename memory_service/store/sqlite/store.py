"""The SQLite backend of the storage interface: each operation is a transaction on the pooled `Database`,
written in the per-domain modules next to this one (`ModuleStore` calls them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from common.models import DEFAULT_MAX_METADATA_BYTES
from memory_service.store.idempotency import DEFAULT_TTL_SECONDS
from memory_service.store.interface import StoreUnavailable
from memory_service.store.modules import Modules, ModuleStore
from memory_service.store.sqlite import (
    claims,
    conversations,
    messages,
    participants,
    search,
    users,
    vectors,
    workspaces,
)
from memory_service.store.sqlite.database import Database
from memory_service.store.values import DEFAULT_LIMITS, DEFAULT_PAGE_BYTES, InvitationLimits


class SqliteStore(ModuleStore):
    """Memory's data in one SQLite file, WAL mode, with a pool of connections and group commit."""

    modules = Modules(users, workspaces, conversations, participants, messages, claims, search, vectors)

    def __init__(self, path: str, *, pool_size: int = 8, synchronous: str = "normal",
                 idempotency_ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES, max_page_bytes: int = DEFAULT_PAGE_BYTES,
                 limits: InvitationLimits = DEFAULT_LIMITS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        try:
            self.db = Database(path, pool_size, synchronous, idempotency_ttl_seconds=idempotency_ttl_seconds,
                               max_metadata_bytes=max_metadata_bytes, max_page_bytes=max_page_bytes, clock=clock)
            users.normalize_stored_emails(self.db)
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StoreUnavailable(f"{path} cannot be opened: {reason}") from None
        self.limits = limits
