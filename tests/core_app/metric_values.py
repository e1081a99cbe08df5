"""Reading the metrics this process recorded (tests run without PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def value(name: str, **labels: str) -> float:
    """A sample's value now; 0 for one never recorded (compare deltas: other tests record too)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
