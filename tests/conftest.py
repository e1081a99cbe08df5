"""Fixtures shared by tests in more than one package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common import metrics


@pytest.fixture
def metrics_on() -> Iterator[None]:
    """Recording on, whatever app an earlier test in this process built with METRICS=false, and put back as
    it was afterwards (a test may turn it off itself). Modules that read the metrics use it for every test:
    `pytestmark = pytest.mark.usefixtures("metrics_on")`."""
    was = metrics.enabled()
    metrics.enable(True)
    yield
    metrics.enable(was)
