"""Issue 13's stream scenarios on the Redis event log, each beside its in-process reference in the same run:
input → own stream across two Core processes, and one event to 20,000 streams held by two Core processes.

Redis is the machine's (BENCH_REDIS_URL, else CORTEX_TEST_REDIS_URL, else redis://127.0.0.1:6379/0) under a
key prefix of this run's own, deleted afterwards; unreachable, the scenarios report "skipped: no Redis"."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent

from benchkit.holding import HeldStream, hold
from benchkit.procs import Service, raise_file_limit
from benchkit.replies import _cpu_ms
from benchkit.results import Result, median
from benchkit.stack import Stack, User, content_of
from benchkit.streams import open_streams
from benchkit.wire import Connection, percentile, post_json

HERE = Path(__file__).resolve().parent


class NoRedis(Exception):
    """The Redis the benchmark would use cannot be reached."""


def redis_url() -> str:
    return (os.environ.get("BENCH_REDIS_URL") or os.environ.get("CORTEX_TEST_REDIS_URL")
            or "redis://127.0.0.1:6379/0")


@contextmanager
def redis_env() -> Iterator[dict[str, str]]:
    """The Core environment for the Redis event log under a fresh key prefix, whose keys are deleted after."""
    import redis

    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=2, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise NoRedis(str(exc)) from None
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        yield {"REDIS_URL": redis_url(), "REDIS_KEY_PREFIX": prefix}
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        client.close()


def skipped(scenario: str, target: str, why: str) -> list[Result]:
    return [Result(scenario, "skipped: no Redis", float("nan"), "", target, True, note=why[:200])]


def second_core(stack: Stack, name: str) -> Service:
    """Core B: another Core process with Core A's settings (same Memory, Cognition, secret and Redis)."""
    return Service("core_app.app:create_app()", stack.core.env, stack.core.log_path.parent, name).start()


class Probe:
    """Input → own stream: POST through `post_port`, time until the poster's stream on `stream_port` has it."""

    def __init__(self, user: User, post_port: int, stream_port: int) -> None:
        self.user, self.conv = user, user.conversation()
        self.seen: dict[str, float] = {}
        open_streams(stream_port, user.stream_path(self.conv), 1,
                     lambda now, kind, data: kind == "message" and self.seen.setdefault(content_of(data), now))
        self.poster = Connection(post_port)
        self.latencies: list[float] = []

    def sample(self, i: int) -> None:
        marker = f"latency probe {i} {uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        status, _ = self.poster.request(post_json(self.user.message_path(self.conv), {"content": marker},
                                                  {"Authorization": f"Bearer {self.user.token}"}))
        deadline = time.monotonic() + 5
        while marker not in self.seen and time.monotonic() < deadline:
            gevent.sleep(0.0005)
        if status == 202 and marker in self.seen:
            self.latencies.append((self.seen[marker] - started) * 1000)


def idle_streams(user: User, port: int, count: int, conversations: int) -> list[HeldStream]:
    """`count` idle streams spread over `conversations` conversations (each one a key the reader reads)."""
    convs = [user.conversation() for _ in range(conversations)]
    held: list[HeldStream] = []
    for index, conv in enumerate(convs):
        share = count // conversations + (1 if index < count % conversations else 0)
        held += hold(port, user.stream_path(conv), share, {})
    return held


def redis_latency(log_dir: Path, idle: int, samples: int, conversations: int) -> list[Result]:
    """In-process one Core (reference), Redis one Core, Redis Core A → Core B; samples interleaved."""
    scenario = "input → stream, Redis"
    try:
        with redis_env() as env:
            reference = Stack(log_dir, "scale-latency-ref").start()
            shared = Stack(log_dir, "scale-latency-redis", env).start()
            core_b: Service | None = None
            held: list[HeldStream] = []
            on_b: list[HeldStream] = []
            try:
                core_b = second_core(shared, "scale-latency-redis-core-b")
                ref_user, user = User(reference.core.url), User(shared.core.url)
                held += idle_streams(ref_user, reference.core.port, idle, conversations)
                on_b = idle_streams(user, core_b.port, idle, conversations)
                held += on_b
                probes = {"in-process": Probe(ref_user, reference.core.port, reference.core.port),
                          "redis-one": Probe(user, core_b.port, core_b.port),
                          "redis-cross": Probe(user, shared.core.port, core_b.port)}
                for i in range(samples):
                    for probe in probes.values():
                        probe.sample(i)
                        gevent.sleep(0.03)
                for stream in held:
                    stream.close()
            finally:
                if core_b is not None:
                    core_b.send_signal()
                reference.stop()
                shared.stop()
                if core_b is not None:
                    core_b.stop()
    except NoRedis as exc:
        return skipped(scenario, "p50 ≤ 15 ms, p99 ≤ 50 ms", str(exc))
    ref, one, cross = (probes[k].latencies for k in ("in-process", "redis-one", "redis-cross"))

    def summary(values: list[float]) -> str:
        return f"p50 {percentile(values, 0.5):.1f} / p99 {percentile(values, 0.99):.1f} ms, {len(values)}/{samples}"

    note = (f"idle streams over {conversations} conversations on the streaming process: {len(held) - len(on_b)} "
            f"in-process, {len(on_b)} on Core B; interleaved: "
            f"in-process {summary(ref)}; Redis one process {summary(one)}; Redis A → B {summary(cross)}")
    c50, c99 = percentile(cross, 0.5), percentile(cross, 0.99)
    ratio = percentile(one, 0.99) / percentile(ref, 0.99)
    return [
        Result(scenario, "posted on Core A, streamed on Core B, p50", c50, "ms", "≤ 15 ms", c50 <= 15,
               samples=cross, note=note),
        Result(scenario, "posted on Core A, streamed on Core B, p99", c99, "ms", "≤ 50 ms", c99 <= 50,
               samples=cross, note=note),
        Result(scenario, "one process, Redis p99 / in-process p99", ratio, "×", "≤ 2×", ratio <= 2,
               samples=one, note=note),
    ]


class Holder:
    """The child process holding Core B's half of the streams (see holder.py)."""

    def __init__(self, port: int, path: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "holder.py"), str(port), path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def redis_capacity(log_dir: Path, top: int, broadcasts: int) -> list[Result]:
    """Streams on one conversation, half on Core A (held here), half on Core B (held by a child process);
    at 1,000, 5,000 and `top` streams, `broadcasts` events to all: p99 from POST to the marker at each."""
    scenario = "stream capacity, Redis"
    levels = [1000, 5000, top]
    limit = raise_file_limit(top // 2 + 2000)  # the Cores inherit it; each holds half the streams
    top = min(top, 2 * (limit - 1000))
    levels = [level for level in levels if level < top] + [top]
    curve: list[tuple[int, int, float, list[float]]] = []
    cpu_notes: list[str] = []
    try:
        with redis_env() as env:
            stack = Stack(log_dir, "scale-capacity", env).start()
            core_b: Service | None = None
            holder: Holder | None = None
            mine: list[HeldStream] = []
            try:
                core_b = second_core(stack, "scale-capacity-core-b")
                user = User(stack.core.url)
                conv = user.conversation()
                path = user.stream_path(conv)
                holder = Holder(core_b.port, path)
                received: dict[str, list[float]] = {}
                for level in levels:
                    mine += hold(stack.core.port, path, level // 2 - len(mine), received)
                    theirs = int(holder.ask(f"open {level - level // 2}").split()[1])
                    held = len(mine) + theirs
                    gevent.sleep(1)
                    p99s, every = [], []
                    cpu_before = _cpu(stack.core, core_b, holder)
                    for i in range(broadcasts):
                        every_one = _broadcast(user, conv, stack.core.port, holder, received, mine, f"{level}x{i}")
                        every += every_one
                        p99s.append(percentile(every_one, 0.99) if len(every_one) == held else float("inf"))
                        gevent.sleep(2)  # let the reply's events drain before the next broadcast
                    # CPU per broadcast (its reply's events included) of the 2 Cores and the 2 load generators.
                    spent = [(after - before) / broadcasts
                             for after, before in zip(_cpu(stack.core, core_b, holder), cpu_before, strict=True)]
                    cpu_notes.append(f"{held:,} streams: Cores {spent[0]:.0f} ms, load generators {spent[1]:.0f} ms")
                    curve.append((level, held, median(p99s), every))
            finally:
                for stream in mine:
                    stream.close()
                if holder is not None:
                    holder.stop()
                if core_b is not None:
                    core_b.send_signal()
                stack.stop()
                if core_b is not None:
                    core_b.stop()
    except NoRedis as exc:
        return skipped(scenario, "≤ 500 ms", str(exc))
    level, held, p99, every = curve[-1]
    note = "; ".join(f"{h:,} streams: p99 {p:.0f} ms" for _, h, p, _ in curve) + \
        f" ({broadcasts} broadcast(s) per level, median of their p99s; streams split evenly over 2 Core processes)." \
        f" CPU per broadcast: {'; '.join(cpu_notes)}"
    return [
        Result(scenario, "streams held by 2 Core processes", held, "streams", f"{top:,} held", held >= top),
        Result(scenario, f"one event to all {held:,} streams, p99", p99, "ms", "≤ 500 ms", p99 <= 500,
               samples=every, note=note),
    ]


def _cpu(core_a: Service, core_b: Service, holder: Holder) -> tuple[float, float]:
    """CPU so far (ms) of the two Core processes, and of the two load-generator processes."""
    cores = sum(_cpu_ms([core_a, core_b]).values())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fields = Path(f"/proc/{holder.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    child = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    return cores, (usage.ru_utime + usage.ru_stime) * 1000 + child


def _broadcast(user: User, conv: str, port: int, holder: Holder, received: dict[str, list[float]],
               mine: list[HeldStream], tag: str) -> list[float]:
    """Post one marker on Core A; milliseconds until it reached each stream, here and in the holder."""
    marker = f"broadcast-{tag.replace('x', '0')}-{uuid.uuid4().hex[:6]}"
    # A fresh connection: opening thousands of streams outlasts the server's 5 s keep-alive.
    poster = Connection(port)
    started = time.monotonic()
    poster.request(post_json(user.message_path(conv), {"content": marker}, {"Authorization": f"Bearer {user.token}"}))
    held = len(mine)
    poster.close()
    deadline = time.monotonic() + 20
    while len(received.get(marker, [])) < held and time.monotonic() < deadline:
        gevent.sleep(0.01)
    theirs = json.loads(holder.ask(f"report {marker} {max(0.1, deadline - time.monotonic()):.2f}"))
    return [(t - started) * 1000 for t in received.get(marker, []) + theirs]
