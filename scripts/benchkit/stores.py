"""Memory's two stores side by side: `store_input` and `get_message` throughput over HTTP, SQLite against
PostgreSQL, with the same load generator and callers in one run.

Each side is Memory under gunicorn + gevent as the Procfile runs it. store_input: SQLite with one process
against PostgreSQL with two (the callers spread over both ports), as a deployment that outgrows SQLite
would run it. get_message: one process each. PostgreSQL gets a schema of its own (the URL's search_path),
created and dropped here, on BENCH_DATABASE_URL or CORTEX_TEST_DATABASE_URL (default
postgresql://127.0.0.1:5432/test); without a reachable server the scenario reports itself skipped.

A third side, for reference only, runs PostgreSQL's two processes with `synchronous_commit=off`: SQLite
here runs with `synchronous=NORMAL`, which does not flush the disk at each commit, while PostgreSQL's
default waits for its WAL flush; the difference between the two PostgreSQL figures is that flush.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

from benchkit.micro import rate
from benchkit.procs import Service
from benchkit.results import Result, median
from benchkit.wire import post_json
from common.client import ServiceClient

CALLERS = 50
"""Keep-alive connections of the load generator, as in micro.tool_throughput; the same for both sides."""
CONVERSATIONS = 10
"""Writes go round these: SQLite serialises every write anyway, PostgreSQL locks one conversation's row."""


def database_url() -> str:
    return (os.environ.get("BENCH_DATABASE_URL") or os.environ.get("CORTEX_TEST_DATABASE_URL")
            or "postgresql://127.0.0.1:5432/test")


def _schema_url(url: str, schema: str, settings: str = "") -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}{settings}', safe='')}"


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(statement)




class Side:
    """One store's Memory processes with a user, conversations and a message to read back."""

    def __init__(self, name: str, env: dict[str, str], processes: int, log_dir: Path) -> None:
        self.name = name
        # Started one after the other: the second finds the schema the first created.
        self.services = [Service("memory_service.app:create_app()", env, log_dir, f"memory-{name}-{i}").start()
                         for i in range(processes)]
        seed = ServiceClient("memory", self.services[0].url)
        self.user = seed.call_tool("create_user", {"email": f"s{uuid.uuid4().hex[:8]}@bench.local", "name": "S",
                                                   "password": "bench-password"})["user"]["id"]
        ws = seed.call_tool("create_workspace", {"user_id": self.user, "name": "bench"})["workspace"]["id"]
        self.conversations = [seed.call_tool("create_conversation", {"user_id": self.user, "workspace_id": ws,
                                                                     "topic": f"t{i}"})["conversation"]["id"]
                              for i in range(CONVERSATIONS)]
        message = seed.call_tool("store_input", {"user_id": self.user, "input_data": {
            "conversation_id": self.conversations[0], "content": "a message to read back"}})["item_id"]
        self.read = post_json("/tool/get_message", {"arguments": {"user_id": self.user, "message_id": message}})

    def ports(self, processes: int | None = None) -> list[int]:
        return [service.port for service in self.services[:processes]]

    def write(self, index: int) -> bytes:
        """A store_input with its own Idempotency-Key, as Core sends them."""
        conversation = self.conversations[index % len(self.conversations)]
        return post_json("/tool/store_input", {"arguments": {"user_id": self.user, "input_data": {
            "conversation_id": conversation, "content": "benchmark write"}}}, {"Idempotency-Key": uuid.uuid4().hex})

    def stop(self) -> None:
        for service in self.services:
            service.stop()


def _turns(sides: list[tuple[Side, int]], call: str, slices: int, seconds: float) -> dict[str, float]:
    """Each side's rate of `call` ("write" or "read") on its first N processes, the sides taking turns in
    `slices` slices, so that a neighbour's burst on the shared machine falls on both sides of a ratio."""
    rates: dict[str, list[float]] = {side.name: [] for side, _ in sides}
    for _ in range(slices):
        for side, processes in sides:
            build = side.write if call == "write" else (lambda _, side=side: side.read)
            rates[side.name].append(rate(side.ports(processes), build, CALLERS, seconds / slices))
    return {name: sum(values) / len(values) for name, values in rates.items()}


def store_throughput(log_dir: Path, rounds: int, seconds: float) -> list[Result]:
    url = database_url()
    schema = f"cortex_bench_{uuid.uuid4().hex[:10]}"
    try:
        _admin(url, f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # noqa: BLE001 - any reason the server cannot be used is a skip
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [Result("store throughput", "skipped: no PostgreSQL", float("nan"), "", "-", True,
                       note=f"{url}: {reason}")]
    sides: list[Side] = []
    try:
        sqlite = Side("sqlite", {"DATABASE_URL": f"sqlite:///{log_dir}/stores.db"}, 1, log_dir)
        sides.append(sqlite)
        postgres = Side("postgresql", {"DATABASE_URL": _schema_url(url, schema)}, 2, log_dir)
        sides.append(postgres)
        unflushed = Side("unflushed", {"DATABASE_URL": _schema_url(url, schema, " -csynchronous_commit=off")}, 2,
                         log_dir)
        sides.append(unflushed)
        writes: dict[str, list[float]] = {"sqlite": [], "postgresql": [], "unflushed": []}
        reads: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        # Unmeasured first: pools growing to their size, statements being prepared, SQLite's page cache.
        for side, processes in ((sqlite, 1), (postgres, 2), (unflushed, 2)):
            rate(side.ports(processes), side.write, CALLERS, 0.5)
        for side in (sqlite, postgres):
            rate(side.ports(1), lambda _, side=side: side.read, CALLERS, 0.5)
        slices = max(1, round(seconds))
        for _ in range(rounds):
            for side, speed in _turns([(sqlite, 1), (postgres, 2), (unflushed, 2)], "write", slices, seconds).items():
                writes[side].append(speed)
            for side, speed in _turns([(sqlite, 1), (postgres, 1)], "read", slices, seconds).items():
                reads[side].append(speed)
    finally:
        for side in sides:
            side.stop()
        _admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    write_ratio = [p / s for p, s in zip(writes["postgresql"], writes["sqlite"], strict=True)]
    unflushed_ratio = [p / s for p, s in zip(writes["unflushed"], writes["sqlite"], strict=True)]
    read_ratio = [p / s for p, s in zip(reads["postgresql"], reads["sqlite"], strict=True)]
    common = (f"{CALLERS} keep-alive callers over HTTP (JSON, tool dispatch, access checks included); PostgreSQL"
              " server on the same cores")
    return [
        Result("store throughput", "store_input, PostgreSQL 2 procs vs SQLite 1", median(write_ratio), "×",
               "≥ 1.0×", median(write_ratio) >= 1.0, write_ratio,
               note=f"SQLite {median(writes['sqlite']):.0f}/s, PostgreSQL {median(writes['postgresql']):.0f}/s;"
                    f" each write with an Idempotency-Key, over {CONVERSATIONS} conversations; {common}"),
        Result("store throughput", "store_input, as above, synchronous_commit=off", median(unflushed_ratio), "×",
               "reference", True, unflushed_ratio,
               note=f"PostgreSQL {median(writes['unflushed']):.0f}/s without waiting for the WAL flush at commit"
                    " (SQLite's synchronous=NORMAL does not flush either); the same schema and callers"),
        Result("store throughput", "get_message, PostgreSQL vs SQLite, 1 proc each", median(read_ratio), "×",
               "≥ 0.8×", median(read_ratio) >= 0.8, read_ratio,
               note=f"SQLite {median(reads['sqlite']):.0f}/s, PostgreSQL {median(reads['postgresql']):.0f}/s;"
                    f" one message read back; {common}"),
    ]


# Issue 14's additions to every message write: the embedding queue's row and the stemmed index's entry
# (SQLite triggers; on PostgreSQL the queue's trigger and the generated `stem_vector` with its GIN index).
BEFORE_SQLITE = ("DROP TRIGGER messages_embedding_insert", "DROP TRIGGER messages_stems_insert")
BEFORE_POSTGRES = ("DROP TRIGGER messages_embedding_insert ON messages", "ALTER TABLE messages DROP COLUMN stem_vector")


def ingest_cost(log_dir: Path, rounds: int, seconds: float) -> list[Result]:
    """store_input throughput now against the same Memory with issue 14's additions removed from the write
    (the reference: what a write cost before), in turns, in one run; SQLite, and PostgreSQL when reachable."""
    import sqlite3

    results: list[Result] = []
    now = Side("ingest-now", {"DATABASE_URL": f"sqlite:///{log_dir}/ingest-now.db"}, 1, log_dir)
    before = Side("ingest-before", {"DATABASE_URL": f"sqlite:///{log_dir}/ingest-before.db"}, 1, log_dir)
    try:
        with sqlite3.connect(log_dir / "ingest-before.db") as conn:
            for statement in BEFORE_SQLITE:
                conn.execute(statement)
        results.append(_ingest_result("SQLite", now, before, rounds, seconds))
    finally:
        now.stop()
        before.stop()
    url = database_url()
    schemas = [f"cortex_bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        for schema in schemas:
            _admin(url, f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # noqa: BLE001 - any reason the server cannot be used is a skip
        return [*results, Result("ingest cost", "PostgreSQL skipped", float("nan"), "", "-", True,
                                 note=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)]
    sides: list[Side] = []
    try:
        now = Side("ingest-now-pg", {"DATABASE_URL": _schema_url(url, schemas[0])}, 1, log_dir)
        sides.append(now)
        before = Side("ingest-before-pg", {"DATABASE_URL": _schema_url(url, schemas[1])}, 1, log_dir)
        sides.append(before)
        for statement in BEFORE_POSTGRES:
            _admin(_schema_url(url, schemas[1]), statement)
        results.append(_ingest_result("PostgreSQL", now, before, rounds, seconds))
    finally:
        for side in sides:
            side.stop()
        for schema in schemas:
            _admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return results


def _ingest_result(backend: str, now: Side, before: Side, rounds: int, seconds: float) -> Result:
    for side in (now, before):
        rate(side.ports(), side.write, CALLERS, 0.5)  # unmeasured warm-up
    ratios, speeds = [], {"now": [], "before": []}
    for _ in range(rounds):
        turn = _turns([(now, 1), (before, 1)], "write", max(1, round(seconds)), seconds)
        speeds["now"].append(turn[now.name])
        speeds["before"].append(turn[before.name])
        ratios.append(turn[now.name] / turn[before.name])
    value = median(ratios)
    return Result("ingest cost", f"store_input rate on {backend}, now ÷ without the queue and stems index", value, "×",
                  "≥ 0.83× (not 20% slower)", value >= 1 / 1.2, ratios,
                  note=f"now {median(speeds['now']):.0f}/s, without {median(speeds['before']):.0f}/s;"
                       f" {CALLERS} keep-alive callers, each write with an Idempotency-Key")
