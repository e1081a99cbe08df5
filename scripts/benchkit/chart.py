"""The latency chart of docs/bench.png: one box per latency scenario, on a log scale, with its target."""

from __future__ import annotations

from pathlib import Path

from benchkit.results import Result

# Time to first token has no bar: its target is on what the system adds to the upstream's own time.
TARGETS_MS = {"input → stream latency": 50, "stream capacity": 500, "context retrieval": 50, "fail fast": 20}


def draw(results: list[Result], path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[float]] = {}
    for result in results:
        if result.unit == "ms" and result.samples and result.scenario not in series:
            series[result.scenario] = [max(v, 0.01) for v in result.samples]
    if not series:
        return
    labels = list(series)
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.boxplot([series[label] for label in labels], vert=False, whis=(1, 99), showfliers=True, flierprops={
        "markersize": 2, "alpha": 0.4})
    for row, label in enumerate(labels, start=1):
        if label in TARGETS_MS:
            ax.plot([TARGETS_MS[label]] * 2, [row - 0.4, row + 0.4], color="crimson", linewidth=2)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale); whiskers p1-p99, red bar = target")
    ax.set_title(f"Cortex Core latency distributions\n{machine}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
