"""Issue 13's reply scenario: 200 conversations posting at once to a Core with 2 workers on the Redis event
log, beside the default deployment (one worker, in-process log) measured in the same run with the same
machinery (`replies.run_many`): time to first token beyond the stand-in's own, and CPU per turn by service."""

from __future__ import annotations

from pathlib import Path

from benchkit.replies import ManyRun, run_many
from benchkit.results import Result
from benchkit.scaleout import NoRedis, redis_env, redis_url, skipped
from benchkit.wire import percentile


def _redis_cpu_ms() -> float:
    """The Redis server's own CPU so far (user + system), in ms; it serves every client of the machine."""
    import redis

    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=2)
    try:
        info = client.info("cpu")
        return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1000
    finally:
        client.close()


def _per_service(run: ManyRun) -> str:
    return ", ".join(f"{name.split('-')[-1]} {ms / run.conversations:.1f}" for name, ms in run.by_service.items())


def many_on_redis(log_dir: Path, conversations: int, workers: int = 2) -> list[Result]:
    scenario = "many conversations, Redis"
    target = "≤ 300 ms"
    try:
        with redis_env() as env:
            reference = run_many(log_dir, conversations, "scale-many-ref")
            before = _redis_cpu_ms()
            run = run_many(log_dir, conversations, "scale-many-redis", {**env, "WEB_CONCURRENCY": str(workers)})
            redis_ms = _redis_cpu_ms() - before
    except NoRedis as exc:
        return skipped(scenario, target, str(exc))
    own = percentile(run.reference, 0.5)
    p50, p99 = percentile(run.ttft, 0.5), percentile(run.ttft, 0.99)
    beyond = p99 - own
    ref50, ref99 = percentile(reference.ttft, 0.5), percentile(reference.ttft, 0.99)
    note = (f"{workers} Core workers on Redis: POST → first response.delta p50 {p50:.0f} ms, p99 {p99:.0f} ms "
            f"({run.accepted} × 202, {len(run.ttft)} first tokens, {run.done} replies ended) minus the stand-in's "
            f"own first token asked by {conversations} clients at once (median {own:.1f} ms, p99 "
            f"{percentile(run.reference, 0.99):.1f}); same run, 1 worker in-process: p50 {ref50:.0f} ms, "
            f"p99 {ref99:.0f} ms ({len(reference.ttft)} first tokens)")
    cpu = sum(run.by_service.values()) / conversations
    ref_cpu = sum(reference.by_service.values()) / conversations
    cpu_note = (f"{workers} workers on Redis: {_per_service(run)} ms; the Redis server {redis_ms / conversations:.1f} "
                f"ms (shared with the machine's other clients); servers, stand-in and client together "
                f"{run.everything_cpu / conversations:.1f} ms. Same run, 1 worker in-process: {ref_cpu:.1f} ms "
                f"({_per_service(reference)})")
    results = [
        Result(scenario, f"time to first token beyond the stand-in's own, p99 ({workers} workers)", beyond, "ms",
               target, beyond <= 300, samples=run.ttft, note=note),
        Result(scenario, "time to first token, p50, 1 worker in-process (reference)", ref50, "ms",
               "reference (issue 13, 200 at once: 1,360 ms)", True, samples=reference.ttft),
        Result(scenario, "time to first token, p99, 1 worker in-process (reference)", ref99, "ms",
               "reference (issue 13, 200 at once: 2,350 ms)", True),
        Result(scenario, f"services' CPU per turn ({workers} workers, Redis)", cpu, "ms", "≤ 4 ms", cpu <= 4,
               note=cpu_note),
    ]
    for name, spent in run.by_service.items():
        short = name.split("-")[-1]
        results.append(Result(scenario, f"CPU per turn: {short}", spent / conversations, "ms",
                              "reference (its share of the total above)", True))
    return results
