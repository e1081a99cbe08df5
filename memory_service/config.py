"""Every setting the Memory Service reads, with its default (mirrored in .env.example)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.config import Env
from common.logs import LOG_FORMATS
from common.mcp import AllowedOrigins, parse_allowed_origins
from common.models import DEFAULT_MAX_METADATA_BYTES
from common.server.auth import allowed_hosts_setting, service_token_setting
from common.server.metrics import MetricsSettings
from memory_service.store import DatabaseLocation, parse_database_url
from memory_service.store.idempotency import DEFAULT_TTL_SECONDS

DEFAULT_DATABASE_URL = "sqlite:///var/cortex-memory.db"


@dataclass(frozen=True)
class MemoryConfig:
    database: DatabaseLocation
    host: str
    port: int
    service_token: str | None
    allowed_hosts: tuple[str, ...]
    in_process: bool
    log_level: str
    log_format: str
    metrics: MetricsSettings
    max_body_bytes: int
    db_pool_size: int
    db_pool_timeout: int
    sqlite_synchronous: str
    mcp_allowed_origins: AllowedOrigins
    max_conversation_participants: int
    max_pending_invitations: int
    idempotency_ttl_seconds: int
    max_metadata_bytes: int
    max_page_bytes: int
    password_hash_threads: int
    password_hash_queue: int
    vector_cache_mb: int


def load_config(values: Mapping[str, str] | None = None) -> MemoryConfig:
    env = Env(values)
    host = env.str("HOST", "127.0.0.1") or "127.0.0.1"
    environment = env.choice("CORTEX_ENV", "development", ("development", "production"))
    # Set by the Core for the copy it runs inside itself, which has no port of its own.
    in_process = env.bool("CORTEX_IN_PROCESS", False)
    return MemoryConfig(
        database=parse_database_url(env.str("DATABASE_URL", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL),
        host=host,
        port=env.int("MEMORY_SERVICE_PORT", 9000, minimum=1, maximum=65535),
        service_token=service_token_setting(env, host=host, environment=environment, in_process=in_process),
        allowed_hosts=allowed_hosts_setting(env),
        in_process=in_process,
        log_level=env.log_level(),
        log_format=env.choice("LOG_FORMAT", "text", LOG_FORMATS),
        metrics=MetricsSettings.from_env(env),
        max_body_bytes=env.int("MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        db_pool_size=env.int("DB_POOL_SIZE", 8, minimum=1, maximum=10),
        # PostgreSQL only: how long a call waits for a pooled connection (all busy, or the server down)
        # before it is answered 503 `unavailable`.
        db_pool_timeout=env.int("DB_POOL_TIMEOUT", 5, minimum=1, maximum=60),
        sqlite_synchronous=env.choice("SQLITE_SYNCHRONOUS", "normal", ("normal", "full")),
        mcp_allowed_origins=parse_allowed_origins(env.str("MCP_ALLOWED_ORIGINS")),
        max_conversation_participants=env.int("MAX_CONVERSATION_PARTICIPANTS", 100, minimum=1, maximum=10_000),
        max_pending_invitations=env.int("MAX_PENDING_INVITATIONS", 100, minimum=1, maximum=10_000),
        # A retry comes within seconds to minutes; below a minute a slow retry would store twice.
        idempotency_ttl_seconds=env.int("IDEMPOTENCY_TTL_SECONDS", DEFAULT_TTL_SECONDS, minimum=60),
        max_metadata_bytes=env.int("MAX_METADATA_BYTES", DEFAULT_MAX_METADATA_BYTES, minimum=2),
        # Above the largest single message (32,000 characters, metadata, JSON escaping), so every page
        # holds at least one.
        max_page_bytes=env.int("MAX_PAGE_BYTES", 1024 * 1024, minimum=512 * 1024),
        password_hash_threads=env.int("PASSWORD_HASH_THREADS", 2, minimum=1, maximum=64),
        password_hash_queue=env.int("PASSWORD_HASH_QUEUE", 16, minimum=0, maximum=10_000),
        # Memory's per-process copies of message vectors for similarity search (store/vectors.py).
        vector_cache_mb=env.int("VECTOR_CACHE_MB", 256, minimum=1, maximum=1_000_000),
    )
