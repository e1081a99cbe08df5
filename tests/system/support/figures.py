"""Figures of a fault test: latency percentiles, and a report printed and saved as JSON next to the test."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in (0, 1]) of `values`."""
    ordered = sorted(values)
    assert ordered, "no values"
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_figures(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max of a list of durations, in milliseconds."""
    return {"count": len(seconds), "p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
            "p99_ms": round(percentile(seconds, 0.99) * 1000, 1), "max_ms": round(max(seconds) * 1000, 1)}


def report(directory: Path, name: str, figures: dict[str, Any]) -> Path:
    """Print the figures (seen with `pytest -s`) and write them to `<directory>/<name>.json`."""
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(f"\n[{name}] {text}")
    path = directory / f"{name}.json"
    path.write_text(text + "\n")
    return path
