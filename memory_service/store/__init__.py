"""Memory's storage: the `Store` interface, and `open_store`, the one place that picks a backend.

DATABASE_URL's scheme names the backend (`sqlite:///path`, `postgresql://…` or `postgres://…`);
`parse_database_url` checks it when the configuration loads, so an unknown scheme fails at start with one
line naming the variable. A backend's driver is imported only in `open_store`: psycopg must be imported
after gevent's monkey-patching, which happens in the worker before the app (and so the store) is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from common.config import ConfigError
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.interface import Store, StoreUnavailable
from memory_service.store.values import InvitationLimits

if TYPE_CHECKING:
    from memory_service.config import MemoryConfig

__all__ = ["DatabaseLocation", "IdempotencyKey", "Store", "StoreUnavailable", "open_store",
           "parse_database_url"]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMES = ("sqlite", "postgresql")


class DatabaseLocation(NamedTuple):
    backend: str
    """A name from SCHEMES."""
    target: str
    """What the backend opens: a file path for sqlite, the URL itself for a server."""


def _sqlite_path(url: str) -> str:
    """`sqlite:///relative/file.db` is relative to the repository, `sqlite:////abs/file.db` absolute."""
    if not url.startswith("sqlite:///"):
        raise ConfigError("DATABASE_URL", f"must be a sqlite:/// URL, got {url!r}")
    rest = url[len("sqlite:///"):]
    if not rest or rest.endswith("/"):
        raise ConfigError("DATABASE_URL", f"must name a database file, got {url!r}")
    path = Path(rest)
    return str(path if path.is_absolute() else REPO_ROOT / path)


def _postgres_url(url: str) -> str:
    """A postgresql:// URL as libpq reads it (`postgres://` is the same); it must name a host."""
    rest = url.partition("://")[2]
    if not url.partition(":")[2].startswith("//") or not rest or rest.startswith(("/", "?")):
        # The URL is not echoed: it may carry a password.
        raise ConfigError("DATABASE_URL", "must be a postgresql://[user[:password]@]host[:port]/database URL;"
                                          " this one names no host")
    return f"postgresql://{rest}"


def parse_database_url(url: str) -> DatabaseLocation:
    """The backend and target DATABASE_URL names; ConfigError for a scheme no backend serves."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return DatabaseLocation("sqlite", _sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        return DatabaseLocation("postgresql", _postgres_url(url))
    raise ConfigError("DATABASE_URL", f"must be a {' or '.join(f'{s}:' for s in SCHEMES)} URL in this version,"
                                      f" got {url!r}")


def open_store(settings: MemoryConfig, *, pool_size: int | None = None) -> Store:
    """The store DATABASE_URL names, open and with its schema in place; StoreUnavailable if it cannot be
    opened. `pool_size` overrides DB_POOL_SIZE (a start-up check needs one connection)."""
    limits = InvitationLimits(settings.max_conversation_participants, settings.max_pending_invitations)
    if settings.database.backend == "sqlite":
        # Imported here so a server backend's process never loads the other drivers (and vice versa).
        from memory_service.store.sqlite import SqliteStore

        return SqliteStore(settings.database.target, pool_size=pool_size or settings.db_pool_size,
                           synchronous=settings.sqlite_synchronous,
                           idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
                           max_metadata_bytes=settings.max_metadata_bytes, max_page_bytes=settings.max_page_bytes,
                           limits=limits)
    if settings.database.backend == "postgresql":
        from memory_service.store.postgresql import PostgresStore

        return PostgresStore(settings.database.target, pool_size=pool_size or settings.db_pool_size,
                             pool_timeout=settings.db_pool_timeout,
                             idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
                             max_metadata_bytes=settings.max_metadata_bytes, max_page_bytes=settings.max_page_bytes,
                             limits=limits)
    raise ValueError(f"no backend {settings.database.backend!r}")  # parse_database_url let it through
