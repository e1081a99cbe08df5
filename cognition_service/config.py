"""Every setting the Cognition Service reads, with its default (mirrored in .env.example)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cognition_service.analysis import AnalysisLimits
from common.client import ClientSettings
from common.config import ConfigError, Env
from common.logs import LOG_FORMATS
from common.mcp import AllowedOrigins, parse_allowed_origins
from common.server.auth import allowed_hosts_setting, service_token_setting
from common.server.metrics import MetricsSettings

DEFAULT_MEMORY_SERVICE_URL = "http://localhost:9000"


@dataclass(frozen=True)
class CognitionConfig:
    host: str
    port: int
    memory_service_url: str
    service_token: str | None
    allowed_hosts: tuple[str, ...]
    in_process: bool
    health_interval: float
    log_level: str
    log_format: str
    metrics: MetricsSettings
    max_body_bytes: int
    client: ClientSettings
    mcp_allowed_origins: AllowedOrigins
    analysis_limits: AnalysisLimits
    analysis_threads: int
    embeddings: str
    embeddings_url: str | None
    embeddings_model: str | None
    embeddings_api_key: str | None
    embedding_poll_seconds: float
    embedding_batch: int
    embedding_threads: int


def load_config(values: Mapping[str, str] | None = None) -> CognitionConfig:
    env = Env(values)
    host = env.str("HOST", "127.0.0.1") or "127.0.0.1"
    environment = env.choice("CORTEX_ENV", "development", ("development", "production"))
    # Set by the Core for the copy it runs inside itself, which has no port of its own.
    in_process = env.bool("CORTEX_IN_PROCESS", False)
    return CognitionConfig(
        host=host,
        port=env.int("COGNITION_SERVICE_PORT", 9100, minimum=1, maximum=65535),
        memory_service_url=env.url("MEMORY_SERVICE_URL", DEFAULT_MEMORY_SERVICE_URL),
        # One shared secret: sent to Memory and required from Cognition's own callers (SPEC §3.6).
        service_token=service_token_setting(env, host=host, environment=environment, in_process=in_process),
        allowed_hosts=allowed_hosts_setting(env),
        in_process=in_process,
        # 0 turns the background probe off (unit tests); the breaker then learns from calls alone.
        health_interval=env.float("HEALTH_INTERVAL_SECONDS", 5.0, minimum=0),
        log_level=env.log_level(),
        log_format=env.choice("LOG_FORMAT", "text", LOG_FORMATS),
        metrics=MetricsSettings.from_env(env),
        max_body_bytes=env.int("MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        client=ClientSettings.from_env(env),
        mcp_allowed_origins=parse_allowed_origins(env.str("MCP_ALLOWED_ORIGINS")),
        # One more than the messages is asked of Memory, whose pages hold at most 1000.
        analysis_limits=AnalysisLimits(
            max_messages=env.int("ANALYSIS_MAX_MESSAGES", 500, minimum=1, maximum=999),
            max_chars=env.int("ANALYSIS_MAX_CHARS", 200_000, minimum=1000)),
        analysis_threads=env.int("ANALYSIS_THREADS", 2, minimum=1, maximum=16),
        **embedding_settings(env),
    )


def embedding_settings(env: Env) -> dict[str, Any]:
    """EMBEDDINGS and the settings of the embedder it names (cognition_service/embeddings.py)."""
    kind = env.choice("EMBEDDINGS", "builtin", ("builtin", "openai", "off"))
    url, model = env.str("EMBEDDINGS_URL"), env.str("EMBEDDINGS_MODEL")
    if kind == "openai":
        if not url:
            raise ConfigError("EMBEDDINGS_URL", "must be set with EMBEDDINGS=openai (e.g. https://api.openai.com/v1)")
        url = env.url("EMBEDDINGS_URL", url)
        if not model:
            raise ConfigError("EMBEDDINGS_MODEL", "must be set with EMBEDDINGS=openai (e.g. text-embedding-3-small)")
        # Stored with every vector by Memory, which takes printable ASCII without spaces, up to 200 characters.
        if len(model) > 190 or not all("\x21" <= char <= "\x7e" for char in model):
            raise ConfigError("EMBEDDINGS_MODEL", "must be printable ASCII without spaces, at most 190 characters")
    return {
        "embeddings": kind, "embeddings_url": url, "embeddings_model": model,
        "embeddings_api_key": env.str("EMBEDDINGS_API_KEY") or None,
        # How often an idle embedding worker asks Memory for new messages; 0 turns the worker off.
        "embedding_poll_seconds": env.float("EMBEDDING_POLL_SECONDS", 0.2, minimum=0),
        "embedding_batch": env.int("EMBEDDING_BATCH", 32, minimum=1, maximum=256),
        "embedding_threads": env.int("EMBEDDING_THREADS", 1, minimum=1, maximum=16),
    }
