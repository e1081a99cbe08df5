"""The PostgreSQL backend of the storage interface: each operation is a transaction on the pooled
`Database`, written in the per-domain modules next to this one (`ModuleStore` calls them)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from common.models import DEFAULT_MAX_METADATA_BYTES
from memory_service.store.idempotency import DEFAULT_TTL_SECONDS
from memory_service.store.modules import Modules, ModuleStore
from memory_service.store.postgresql import (
    conversations,
    messages,
    participants,
    search,
    users,
    vectors,
    workspaces,
)
from memory_service.store.postgresql.database import Database
from memory_service.store.values import DEFAULT_LIMITS, DEFAULT_PAGE_BYTES, InvitationLimits


class PostgresStore(ModuleStore):
    """Memory's data in PostgreSQL (the schema the URL's search_path names), shared by any number of
    Memory processes; StoreUnavailable when the server cannot be reached at start."""

    # claim_reply lives with the messages in this backend.
    modules = Modules(users, workspaces, conversations, participants, messages, claims=messages, search=search,
                      vectors=vectors)

    def __init__(self, url: str, *, pool_size: int = 8, pool_timeout: float = 5.0,
                 idempotency_ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES, max_page_bytes: int = DEFAULT_PAGE_BYTES,
                 limits: InvitationLimits = DEFAULT_LIMITS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = Database(url, pool_size, pool_timeout=pool_timeout, idempotency_ttl_seconds=idempotency_ttl_seconds,
                           max_metadata_bytes=max_metadata_bytes, max_page_bytes=max_page_bytes, clock=clock)
        self.limits = limits
