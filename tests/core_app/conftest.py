"""The Core App through its client API (SPEC §6–§7), with the real Memory and Cognition apps running
in-process behind the requests adapter (`CORTEX_DISTRIBUTED_MODE=false`): the Flask test client drives
the whole stack without sockets. The fixtures live here; the helpers the `test_api_*` modules call live in
`embedded_config`, `accounts`, `api_calls`, `polling` and `output_stream`."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core_app.app import create_app
from tests.core_app.accounts import Account, sign_up
from tests.core_app.embedded_config import core_config
from tests.core_app.event_backends import close_opened


@pytest.fixture(autouse=True)
def _close_event_logs():
    """Close the engine-backed event logs a test opened and delete their keys."""
    yield
    close_opened()


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One whole system per test module: users are slow to create (password hashing), so they are shared."""
    return create_app(core_config(tmp_path_factory.mktemp("core-api")))


@pytest.fixture(scope="module")
def client(api_app: Flask) -> FlaskClient:
    return api_app.test_client()


@pytest.fixture(scope="module")
def alice(client: FlaskClient) -> Account:
    return sign_up(client, "Alice")


@pytest.fixture(scope="module")
def bob(client: FlaskClient) -> Account:
    return sign_up(client, "Bob")


@pytest.fixture(scope="module")
def carol(client: FlaskClient) -> Account:
    return sign_up(client, "Carol")
