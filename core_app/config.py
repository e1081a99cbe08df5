"""Every setting the Core App reads, with its default (mirrored in .env.example)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from limits import parse_many
from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from common.client import ClientSettings
from common.config import ConfigError, Env
from common.logs import LOG_FORMATS
from common.server.auth import check_strong, is_loopback_host, service_token_setting
from common.server.cors import parse_origins
from common.server.metrics import MetricsSettings
from core_app.reply_pool import ReplyLimits
from core_app.workers import worker_count

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_FILE = REPO_ROOT / "var" / "dev-jwt-secret"


@dataclass(frozen=True)
class CoreConfig:
    host: str
    port: int
    environment: str
    distributed: bool
    memory_url: str
    cognition_url: str
    service_token: str | None
    jwt_secret: str
    jwt_expires_seconds: int
    registration_enabled: bool
    llm_provider: str
    llm_base_url: str | None
    llm_api_key: str | None
    llm_model: str
    llm_timeout: float
    reply_limits: ReplyLimits
    heartbeat_seconds: float
    worker_connections: int
    event_retention: int
    subscriber_buffer: int
    subscriber_buffer_bytes: int
    event_log_conversation_bytes: int
    event_log_bytes: int
    redis_url: str | None
    redis_key_prefix: str
    redis_pool_size: int
    web_concurrency: int
    streams_per_user: int
    stream_send_buffer_bytes: int
    stream_access_check_seconds: float
    stream_ticket_seconds: int
    health_interval: float
    max_body_bytes: int
    log_level: str
    log_format: str
    metrics: MetricsSettings
    debug_stats: bool
    auth_rate_limit_per_address: str
    auth_rate_limit_per_account: str
    ratelimit_storage_uri: str
    trusted_proxies: int
    sign_in_concurrency: int
    sign_in_wait: float
    search_concurrency_per_user: int
    cors_allowed_origins: tuple[str, ...]
    client: ClientSettings
    values: Mapping[str, str]


def development_secret() -> str:
    """One generated secret per checkout, shared by every local process through a private file."""
    try:
        return DEV_SECRET_FILE.read_text().strip()
    except FileNotFoundError:
        pass
    DEV_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(48)
    try:
        fd = os.open(DEV_SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its secret
        return DEV_SECRET_FILE.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(candidate)
    return candidate


def rate_limit(env: Env, name: str, default: str) -> str:
    """A Flask-Limiter limit such as "10/minute;100/hour", checked at start."""
    value = env.str(name, default) or default
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(name, f'must be limits like "10/minute;100/hour", got {value!r}') from None
    return value


def ratelimit_storage(env: Env) -> str:
    """Where rate-limit counters live: memory:// (one process) now, redis://... when processes share them."""
    value = env.str("RATELIMIT_STORAGE_URI", "memory://") or "memory://"
    try:
        storage_from_string(value)
    except ConfigurationError as error:
        raise ConfigError("RATELIMIT_STORAGE_URI", str(error)) from None
    return value


def keyless_allowed(env: Env, base_url: str) -> bool:
    """An OpenAI-compatible server may run without a key only on this machine (Ollama, llama.cpp, vLLM on
    loopback), and only when LLM_API_KEY is set and empty: a forgotten key is never taken for "none"."""
    return "LLM_API_KEY" in env.values and is_loopback_host(urlparse(base_url).hostname or "")


def redis_url(env: Env) -> str | None:
    """REDIS_URL: the shared event log (redis:// or rediss://); unset, the in-process one."""
    value = env.str("REDIS_URL")
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ConfigError("REDIS_URL", f"must be a redis:// or rediss:// URL, got {redact(value)!r}")
    try:
        parsed.port  # noqa: B018 - reading it validates the port number
    except ValueError:
        raise ConfigError("REDIS_URL", f"has an invalid port: {redact(value)!r}") from None
    return value


def redact(url: str) -> str:
    """The URL without its password, for a message."""
    parsed = urlparse(url)
    return url if parsed.password is None else url.replace(f":{parsed.password}@", ":[redacted]@", 1)


def load_config(values: Mapping[str, str] | None = None) -> CoreConfig:
    env = Env(values)
    environment = env.choice("CORTEX_ENV", "development", ("development", "production"))
    secret = env.str("JWT_SECRET")
    if secret is None:
        if environment != "development":
            raise ConfigError("JWT_SECRET", "is required when CORTEX_ENV is production")
        secret = development_secret()
    elif environment == "production":
        check_strong("JWT_SECRET", secret)
    elif len(secret) < 32:
        raise ConfigError("JWT_SECRET", "must be at least 32 characters (HS256 wants a 256-bit key)")
    distributed = env.bool("CORTEX_DISTRIBUTED_MODE", False)
    # The Core's own routes are guarded by user tokens, so its HOST does not matter here; what needs
    # SERVICE_TOKEN is its calls to Memory and Cognition, which in production require one.
    service_token = service_token_setting(env, host="localhost", environment=environment, in_process=not distributed)
    provider = env.choice("LLM_PROVIDER", "builtin", ("builtin", "openai"))
    base_url = env.url("LLM_BASE_URL", "https://api.openai.com/v1") if provider == "openai" else None
    api_key = env.str("LLM_API_KEY")
    if base_url is not None and api_key is None and not keyless_allowed(env, base_url):
        raise ConfigError("LLM_API_KEY", "is required when LLM_PROVIDER is openai (for a server on this machine "
                                         "that needs no key, set LLM_API_KEY to an empty value)")
    shared_log = redis_url(env)
    prefix = env.str("REDIS_KEY_PREFIX", "cortex") or "cortex"
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix):
        raise ConfigError("REDIS_KEY_PREFIX", f"must be 1-64 letters, digits, '_', '.', ':' or '-', got {prefix!r}")
    return CoreConfig(
        host=env.str("HOST", "127.0.0.1") or "127.0.0.1",
        port=env.int("PORT", 8000, minimum=1, maximum=65535),
        environment=environment,
        distributed=distributed,
        memory_url=env.url("MEMORY_SERVICE_URL", "http://localhost:9000"),
        cognition_url=env.url("COGNITION_SERVICE_URL", "http://localhost:9100"),
        service_token=service_token,
        jwt_secret=secret,
        jwt_expires_seconds=env.int("JWT_EXPIRES_SECONDS", 86400, minimum=1),
        registration_enabled=env.bool("REGISTRATION_ENABLED", True),
        llm_provider=provider,
        llm_base_url=base_url,
        llm_api_key=api_key,
        llm_model=env.str("LLM_MODEL", "gpt-4o-mini") or "gpt-4o-mini",
        llm_timeout=env.float("LLM_TIMEOUT_SECONDS", 60.0, minimum=0.1),
        reply_limits=ReplyLimits(concurrency=env.int("REPLY_CONCURRENCY", 64, minimum=1, maximum=10_000),
                                 queue=env.int("REPLY_QUEUE", 256, minimum=0, maximum=1_000_000),
                                 per_user=env.int("REPLIES_PER_USER", 4, minimum=1, maximum=10_000)),
        heartbeat_seconds=env.float("SSE_HEARTBEAT_SECONDS", 15.0, minimum=0.05),
        # gunicorn.conf.py reads it too (with the same default), for the gevent worker's connection slots.
        worker_connections=env.int("WORKER_CONNECTIONS", 12000, minimum=1),
        event_retention=env.int("EVENT_RETENTION", 1000, minimum=1),
        subscriber_buffer=env.int("SUBSCRIBER_BUFFER", 1000, minimum=1),
        subscriber_buffer_bytes=env.int("SUBSCRIBER_BUFFER_BYTES", 1 << 20, minimum=1024),
        event_log_conversation_bytes=env.int("EVENT_LOG_CONVERSATION_BYTES", 4 << 20, minimum=1024),
        event_log_bytes=env.int("EVENT_LOG_BYTES", 128 << 20, minimum=1024),
        redis_url=shared_log,
        redis_key_prefix=prefix,
        redis_pool_size=env.int("REDIS_POOL_SIZE", 10, minimum=1, maximum=1000),
        web_concurrency=worker_count(env, shared_log is not None),
        streams_per_user=env.int("STREAMS_PER_USER", 20, minimum=1),
        stream_send_buffer_bytes=env.int("STREAM_SEND_BUFFER_BYTES", 64 << 10, minimum=0),
        stream_access_check_seconds=env.float("STREAM_ACCESS_CHECK_SECONDS", 30.0, minimum=0.05),
        stream_ticket_seconds=env.int("STREAM_TICKET_SECONDS", 60, minimum=1, maximum=3600),
        health_interval=env.float("HEALTH_INTERVAL_SECONDS", 5.0, minimum=0),
        max_body_bytes=env.int("MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        log_level=env.log_level(),
        log_format=env.choice("LOG_FORMAT", "text", LOG_FORMATS),
        metrics=MetricsSettings.from_env(env),
        debug_stats=env.bool("DEBUG_STATS", False),
        auth_rate_limit_per_address=rate_limit(env, "AUTH_RATE_LIMIT_PER_ADDRESS", "30/minute;300/hour"),
        auth_rate_limit_per_account=rate_limit(env, "AUTH_RATE_LIMIT_PER_ACCOUNT", "10/minute;100/hour"),
        ratelimit_storage_uri=ratelimit_storage(env),
        trusted_proxies=env.int("TRUSTED_PROXIES", 0, minimum=0, maximum=10),
        sign_in_concurrency=env.int("SIGN_IN_CONCURRENCY", 16, minimum=1),
        sign_in_wait=env.float("SIGN_IN_WAIT_SECONDS", 2.0, minimum=0, maximum=30),
        search_concurrency_per_user=env.int("SEARCH_CONCURRENCY_PER_USER", 4, minimum=1),
        cors_allowed_origins=parse_origins("CORS_ALLOWED_ORIGINS", env.str("CORS_ALLOWED_ORIGINS")),
        client=ClientSettings.from_env(env),
        values=env.values,
    )
