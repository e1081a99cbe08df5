"""Figures of a fault test: latency percentiles, and a report printed and saved as JSON next to the test."""

from __future__ import annotations

import json
import math
import os
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


def session_cpu_seconds(session_id: int) -> float:
    """CPU time (user + system) used so far by the live processes of a session (a service's gunicorn master
    and workers: `Process.pid` leads its session), read from /proc; 0 where /proc is not there."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # fields after the command: state ppid pgrp session ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / ticks
