"""Memory's /metrics: the database's size read at each scrape, on both backends, and a scrape that still
answers when the size cannot be read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from memory_service.app import create_app
from tests.memory_service.backends import create_schema, drop_schema
from tests.memory_service.postgresql.test_unavailable import Relay

pytestmark = pytest.mark.usefixtures("metrics_on")


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema, url = create_schema()
    yield url
    drop_schema(schema)


def scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the app's /metrics, by name and labels."""
    response = app.test_client().get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def db_size(samples: dict, backend: str) -> float | None:
    return samples.get(("cortex_db_size_bytes", (("backend", backend),)))


def sqlite_app(tmp_path: Path, **config: str) -> Flask:
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/memory.db", "SERVICE_TOKEN": "", **config})


def test_sqlite_reports_its_database_size_at_each_scrape(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    try:
        size = db_size(scrape(app), "sqlite")
        assert size is not None and size > 0
        assert db_size(scrape(app), "postgresql") is None
        # Written through the service, the next scrape sees the database grow.
        client = app.test_client()
        user = client.post("/tool/create_user", json={"arguments": {
            "email": "ann@example.com", "name": "Ann", "password": "password1"}}).json["result"]["user"]["id"]
        for n in range(20):
            response = client.post("/tool/create_workspace", json={"arguments": {
                "user_id": user, "name": f"Home {n}", "description": "room to grow " * 30}})
            assert response.status_code == 200, response.json
        grown = db_size(scrape(app), "sqlite")
        assert grown is not None and grown > size
    finally:
        app.extensions["cortex.store"].close()


def test_a_size_that_cannot_be_read_leaves_it_out_and_the_scrape_answers(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    try:
        for name in ("memory.db", "memory.db-wal"):
            (tmp_path / name).unlink(missing_ok=True)
        samples = scrape(app)
        assert db_size(samples, "sqlite") is None
        assert any(name == "cortex_http_requests_total" for name, _ in samples)  # the rest is there
    finally:
        app.extensions["cortex.store"].close()


def test_with_metrics_off_there_is_no_scrape(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, METRICS="false")
    try:
        assert app.test_client().get("/metrics").status_code == 404
    finally:
        app.extensions["cortex.store"].close()


def test_postgresql_reports_its_database_size(pg_url: str) -> None:
    app = create_app({"DATABASE_URL": pg_url, "SERVICE_TOKEN": ""})
    try:
        size = db_size(scrape(app), "postgresql")
        assert size is not None and size > 1_000_000  # an empty PostgreSQL database is several megabytes
        assert db_size(scrape(app), "sqlite") is None
    finally:
        app.extensions["cortex.store"].close()


def test_a_lost_postgresql_leaves_the_size_out_and_the_scrape_answers(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = f"{parts.username}@" if parts.username else ""
    app = create_app({"DATABASE_URL": urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{relay.port}")),
                      "SERVICE_TOKEN": "", "DB_POOL_TIMEOUT": "1"})
    try:
        assert db_size(scrape(app), "postgresql") is not None
        relay.stop()
        samples = scrape(app)
        assert db_size(samples, "postgresql") is None
        assert any(name == "cortex_http_requests_total" for name, _ in samples)
    finally:
        relay.stop()
        app.extensions["cortex.store"].close()
