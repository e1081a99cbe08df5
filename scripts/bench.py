#!/usr/bin/env python3
"""Cortex Core benchmarks: starts the services itself (gunicorn + gevent, as the Procfile does), runs each
scenario, prints a table against the targets, writes bench-results.json and draws docs/bench.png.

    python scripts/bench.py            # the full run, about 10 minutes
    python scripts/bench.py --quick    # reduced counts, about 3 minutes
    python scripts/bench.py --only breaker,throughput
    python scripts/bench.py --only stores   # SQLite against PostgreSQL (skipped without a server)
    python scripts/bench.py --only context-quality --locomo PATH   # recall on a LoCoMo file (opt-in)
    python scripts/bench.py --only context-scale   # get_context at 100,000 messages (opt-in, ~5 minutes)
    python scripts/bench.py --only metrics --output /tmp/metrics.json --chart /tmp/metrics.png   # metrics on vs off

Every load loop is bounded in count and time and talks to 127.0.0.1 only.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from benchkit import (  # noqa: E402
    chart,
    context_scale,
    locomo,
    metrics_cost,
    micro,
    replies,
    scaleout,
    scaleturns,
    services,
    stores,
    streams,
)
from benchkit.procs import raise_file_limit  # noqa: E402
from benchkit.results import Result  # noqa: E402

FULL = {"rounds": 3, "seconds": 4.0, "idle": 1000, "latency_samples": 150, "streams": 10_000, "broadcasts": 3,
        "history": 6000, "queries": 300, "failfast": 300, "ttft": 25,
        "many": 200, "scale_idle": 1000, "scale_samples": 200, "scale_streams": 20_000,
        "scale_broadcasts": 3, "scale_user_messages": 100_000, "scale_other_messages": 1_000_000,
        "metrics_rounds": 10, "metrics_calls": 2000}
QUICK = {"rounds": 1, "seconds": 1.0, "idle": 300, "latency_samples": 30, "streams": 1000, "broadcasts": 1,
         "history": 500, "queries": 50, "failfast": 50, "ttft": 5,
         "many": 50, "scale_idle": 1000, "scale_samples": 30, "scale_streams": 2000,
         "scale_broadcasts": 1, "scale_user_messages": 20_000, "scale_other_messages": 200_000,
         "metrics_rounds": 3, "metrics_calls": 1000}


# Run only when named in --only: a file the project does not ship, or minutes of data building.
OPT_IN = {"context-quality", "context-scale"}


def scenarios(p: dict, work: Path, locomo_path: str | None = None) -> dict:
    return {
        "breaker": lambda: micro.breaker_concurrency(p["rounds"] * 3),
        "throughput": lambda: micro.tool_throughput(work, p["rounds"], p["seconds"]),
        "stores": lambda: stores.store_throughput(work, p["rounds"], p["seconds"]),
        # Issue 14: what the embedding queue and the stemmed index add to a write, same run, with and without.
        "ingest": lambda: stores.ingest_cost(work, p["rounds"], p["seconds"]),
        "latency": lambda: streams.input_to_stream(work, p["idle"], p["latency_samples"]),
        "capacity": lambda: streams.stream_capacity(work, p["streams"], p["broadcasts"]),
        "context": lambda: services.context_retrieval(work, p["history"], p["queries"]),
        "failfast": lambda: services.fail_fast(work, p["failfast"]),
        "ttft": lambda: replies.time_to_first_token(work, p["ttft"]),
        "many": lambda: replies.many_conversations(work, p["many"]),
        # Issue 13: the Redis event log and several Core processes, each beside its in-process reference.
        "scaleout-latency": lambda: scaleout.redis_latency(work, p["scale_idle"], p["scale_samples"],
                                                           max(1, p["scale_idle"] // 10)),
        "scaleout-capacity": lambda: scaleout.redis_capacity(work, p["scale_streams"], p["scale_broadcasts"]),
        "scaleout-many": lambda: scaleturns.many_on_redis(work, p["many"]),
        # Issue 14: evidence recall of get_context on a LoCoMo-format file.
        "context-quality": lambda: locomo.context_quality(work, locomo_path),
        # Issue 14: get_context for a user with 100,000 messages, alone and beside 1,000,000 of others'.
        "context-scale": lambda: context_scale.context_scale(work, p["scale_user_messages"], p["scale_other_messages"]),
        # Issue 14: how soon a message stored at an ordinary rate can be found by meaning.
        "embedding-lag": lambda: context_scale.embedding_lag(work),
        # Issue 16: tool-call throughput with metrics on and off, in turns in one run, and one scrape's time.
        "metrics": lambda: metrics_cost.metrics_cost(work, p["metrics_rounds"], p["metrics_calls"]),
    }


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}; load generator on the same machine")


def table(results: list[Result]) -> str:
    rows = [("scenario", "figure", "value", "target", "pass")]
    for r in results:
        value = f"{r.value:,.0f} {r.unit}" if r.unit == "streams" else f"{r.value:,.2f} {r.unit}"
        rows.append((r.scenario, r.figure, value, r.target, "PASS" if r.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the Cortex Core benchmarks.")
    parser.add_argument("--quick", action="store_true", help="reduced counts; about 3 minutes")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(scenarios(FULL, Path("."))))
    parser.add_argument("--locomo", metavar="PATH", help="a LoCoMo-format JSON file for context-quality")
    parser.add_argument("--output", default="bench-results.json")
    parser.add_argument("--chart", default=str(HERE.parent / "docs" / "bench.png"))
    args = parser.parse_args()
    params = QUICK if args.quick else FULL
    # Each process has its own descriptor table: the load generator and the Core each need one per stream.
    limit = raise_file_limit(params["streams"] + 2000)
    if limit < params["streams"] + 500:
        params = {**params, "streams": max(100, limit - 500)}
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as tmp:
        table_of = scenarios(params, Path(tmp), args.locomo)
        chosen = args.only.split(",") if args.only else [name for name in table_of if name not in OPT_IN]
        for index, name in enumerate(chosen, start=1):
            print(f"[{index}/{len(chosen)}] {name} ...", flush=True)
            began = time.monotonic()
            # The load generator holds up to 10,000 streams: a full garbage collection in it would pause
            # every client at once and show up as server latency. Reference counting still frees memory.
            gc.collect()
            gc.disable()
            try:
                found = table_of[name]()
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                found = [Result(name, "scenario failed", float("nan"), "", "-", False, note=repr(exc)[:300])]
            finally:
                gc.enable()
            for result in found:
                print(f"    {result.figure}: {result.value:,.2f} {result.unit} (target {result.target}) "
                      f"{'PASS' if result.ok else 'FAIL'} {result.note}", flush=True)
            print(f"    ({time.monotonic() - began:.1f} s)", flush=True)
            results += found
    machine = machine_line()
    print(f"\n{machine}\n{'quick' if args.quick else 'full'} run in {time.monotonic() - started:.0f} s\n")
    print(table(results))
    Path(args.output).write_text(json.dumps({"machine": machine, "quick": args.quick, "params": params,
                                             "results": [r.as_dict() for r in results]}, indent=1))
    chart.draw(results, Path(args.chart), machine)
    print(f"\nwrote {args.output} and {args.chart}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
