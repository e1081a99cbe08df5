"""What a scenario reports: one figure against its target, with the samples behind it."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    scenario: str
    figure: str
    value: float
    unit: str
    target: str
    ok: bool
    runs: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        data["samples"] = [round(v, 3) for v in self.samples[:20_000]]
        return data


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
