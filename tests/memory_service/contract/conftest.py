"""Every test in this package runs once per backend in BACKENDS, through the `store` fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memory_service.store import Store
from tests.memory_service.backends import BACKENDS, open_test_store

MakeStore = Callable[..., Store]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, fast_hashing: None) -> Iterator[MakeStore]:
    """Opens fresh stores of the backend under test with the given options; all are closed afterwards."""
    opened: list[Store] = []

    def make(**options: Any) -> Store:
        store = open_test_store(request.param, tmp_path / f"store-{len(opened)}", **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()
