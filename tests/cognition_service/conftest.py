"""A Cognition app per test, with `responses` standing in for the Memory Service (no sockets, no threads)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from cognition_service.app import create_app
from tests.cognition_service.fake_memory import BASE_CONFIG, FakeMemory


@pytest.fixture
def memory() -> Iterator[FakeMemory]:
    # Unregistered URLs raise ConnectionError, which is exactly "Memory is unreachable".
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeMemory(mock)


@pytest.fixture
def app(memory):
    return create_app(BASE_CONFIG)


@pytest.fixture
def client(app):
    return app.test_client()

