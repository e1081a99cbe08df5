"""DATABASE_URL selects PostgreSQL in one place; its pool settings load with the configuration."""

from __future__ import annotations

import pytest

from common.config import ConfigError
from memory_service.config import load_config
from memory_service.store import parse_database_url


@pytest.mark.parametrize("url, target", [
    ("postgresql://u:p@db.example:5433/cortex", "postgresql://u:p@db.example:5433/cortex"),
    ("postgres://u@db.example/cortex?sslmode=require", "postgresql://u@db.example/cortex?sslmode=require"),
    ("POSTGRESQL://127.0.0.1/test", "postgresql://127.0.0.1/test"),
])
def test_postgresql_urls_select_the_postgresql_backend(url: str, target: str) -> None:
    assert parse_database_url(url) == ("postgresql", target)


@pytest.mark.parametrize("url", ["postgresql:///cortex", "postgresql://", "postgres:cortex"])
def test_a_postgresql_url_without_a_host_fails_in_one_line_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL must be a postgresql://") as caught:
        parse_database_url(url)
    assert "cortex" not in str(caught.value)


def test_pool_settings_load_with_their_defaults_and_bounds() -> None:
    settings = load_config({"DATABASE_URL": "postgresql://127.0.0.1/test", "SERVICE_TOKEN": ""})
    assert (settings.database.backend, settings.db_pool_size, settings.db_pool_timeout) == ("postgresql", 8, 5)
    with pytest.raises(ConfigError, match="DB_POOL_TIMEOUT"):
        load_config({"DATABASE_URL": "postgresql://127.0.0.1/test", "DB_POOL_TIMEOUT": "0"})
