"""The PostgreSQL backend of the storage interface (psycopg 3 with a connection pool).

Imported only by `open_store` when DATABASE_URL is a postgresql:// URL, inside a gevent worker after
monkey-patching: psycopg picks its wait function when it is first imported, and imported before the
patching it would block the hub (docs/SCALING.md).
"""

from memory_service.store.postgresql.store import PostgresStore

__all__ = ["PostgresStore"]
