"""get_context at scale (issue 14): one user with 100,000 messages, first alone in the database, then beside
other users holding millions; p50/p95 of get_context with a query and without, and of the Memory searches
it makes, in each phase of the same run.

The data is synthetic, written straight into a SQLite file before Memory starts (storing 1,000,000 messages
through the API would take longer than the measurement): words drawn from a Zipf distribution over 30,000
made-up words, 5-30 to a message, and a random unit vector per message of the measured user (the built-in
model's size and name), so the dense half searches 100,000 vectors. The reference in the same run is
Memory's exact-word search, the one search the previous get_context made (it ranks every match).
Cognition's embedding worker is off
(EMBEDDING_POLL_SECONDS=0): it would otherwise start embedding the other users' messages meanwhile. Queries
are four words of one of the user's own messages, so every query matches.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np

from benchkit.locomo import Caller
from benchkit.procs import Service, free_port
from benchkit.results import Result
from benchkit.wire import percentile

MODEL, DIMS = "all-MiniLM-L6-v2-int8", 384
CONVERSATIONS = 10
OTHER_USERS = 1000
NOW = "2026-01-01T00:00:00+00:00"


class Texts:
    """Made-up messages with a Zipf-like word distribution, reproducible from the seed."""

    def __init__(self, seed: int = 7, vocabulary: int = 30_000) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = self.rng.integers(3, 10, vocabulary)
        self.words = np.array(["".join(self.rng.choice(letters, n)) for n in lengths])
        weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.05
        self.p = weights / weights.sum()

    def take(self, count: int) -> list[str]:
        sizes = self.rng.integers(5, 31, count)
        drawn = self.words[self.rng.choice(len(self.words), int(sizes.sum()), p=self.p)]
        out, at = [], 0
        for size in sizes:
            out.append(" ".join(drawn[at:at + size]))
            at += size
        return out


def _users(conn: sqlite3.Connection, count: int) -> list[tuple[str, list[str]]]:
    """`count` users, each with a workspace and CONVERSATIONS conversations (ids only)."""
    made = []
    for _ in range(count):
        user, workspace = str(uuid.uuid4()), str(uuid.uuid4())
        conn.execute("INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, 'Bench', 'x', ?)",
                     (user, f"{user}@bench.local", NOW))
        conn.execute("INSERT INTO workspaces (id, owner_id, name, created_at, updated_at) VALUES (?, ?, 'w', ?, ?)",
                     (workspace, user, NOW, NOW))
        conversations = [str(uuid.uuid4()) for _ in range(CONVERSATIONS)]
        for conversation in conversations:
            conn.execute("INSERT INTO conversations (id, workspace_id, topic, participant_ids_json, created_at,"
                         " updated_at) VALUES (?, ?, 't', ?, ?, ?)", (conversation, workspace, f'["{user}"]', NOW, NOW))
            conn.execute("INSERT INTO conversation_participants (conversation_id, user_id) VALUES (?, ?)",
                         (conversation, user))
        made.append((user, conversations))
    return made


def _messages(conn: sqlite3.Connection, texts: Texts, owners: list[tuple[str, list[str]]], count: int,
              vectors: bool) -> list[str]:
    """`count` messages spread over the owners' conversations in turn; returns a sample of their texts."""
    rng = np.random.default_rng(11)
    sequence: dict[str, int] = {}
    sample: list[str] = []
    for start in range(0, count, 50_000):
        batch = texts.take(min(50_000, count - start))
        rows, vector_rows = [], []
        for offset, content in enumerate(batch):
            user, conversations = owners[(start + offset) % len(owners)]
            conversation = conversations[(start + offset) // len(owners) % len(conversations)]
            sequence[conversation] = sequence.get(conversation, 0) + 1
            message_id = str(uuid.uuid4())
            rows.append((message_id, conversation, user, "user", content, sequence[conversation], NOW))
            if vectors:
                vector_rows.append((message_id, conversation, MODEL))
        conn.executemany("INSERT INTO messages (id, conversation_id, sender_id, role, content, sequence, created_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        if vector_rows:
            matrix = rng.standard_normal((len(vector_rows), DIMS)).astype("<f4")
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            conn.executemany("INSERT INTO message_vectors (message_id, conversation_id, model, vector)"
                             " VALUES (?, ?, ?, ?)", ((*row, matrix[i].tobytes()) for i, row in enumerate(vector_rows)))
        sample += batch[:200]
    for conversation, last in sequence.items():
        conn.execute("UPDATE conversations SET next_sequence = ? WHERE id = ?", (last + 1, conversation))
    conn.execute("DELETE FROM embedding_queue")  # no worker runs here; see the module's docstring
    return sample


def _schema(path: Path) -> None:
    from memory_service.store.sqlite import SqliteStore

    SqliteStore(str(path)).close()


def _measure(work: Path, db: Path, user: str, queries: list[str], phase: str) -> list[Result]:
    memory_port, cognition_port = free_port(), free_port()
    shared = {"MEMORY_SERVICE_URL": f"http://127.0.0.1:{memory_port}", "HEALTH_INTERVAL_SECONDS": "0"}
    memory = Service("memory_service.app:create_app()", {**shared, "DATABASE_URL": f"sqlite:///{db}"}, work,
                     f"scale-{phase}-memory")
    memory.port = memory_port
    cognition = Service("cognition_service.app:create_app()", {**shared, "EMBEDDING_POLL_SECONDS": "0"}, work,
                        f"scale-{phase}-cognition")
    cognition.port = cognition_port
    memory.start(timeout=300)
    cognition.start()
    timings: dict[str, list[float]] = {"get_context": [], "get_context, no query": [], "search_messages": [],
                                       "search_similar": [], "search_messages by exact words": []}
    try:
        cog, mem = Caller(cognition_port), Caller(memory_port)
        vector = [1.0 / DIMS ** 0.5] * DIMS
        for query in queries[:20]:  # warm-up: the model loads, Memory's copy of the vectors fills
            cog("get_context", {"user_id": user, "query": query, "limit": 10})
        for query in queries[20:]:
            for name, call in (
                    ("get_context", lambda q=query: cog("get_context", {"user_id": user, "query": q, "limit": 10})),
                    ("search_messages", lambda q=query: mem("search_messages", {
                        "user_id": user, "query": q, "limit": 50, "match": "stems"})),
                    ("search_similar", lambda: mem("search_similar", {"user_id": user, "model": MODEL,
                                                                      "vector": vector, "limit": 50})),
                    # The reference: what get_context's one search cost before (BM25 over every match).
                    ("search_messages by exact words", lambda q=query: mem("search_messages", {
                        "user_id": user, "query": q, "limit": 50}))):
                began = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - began) * 1000)
        for _ in range(50):
            began = time.perf_counter()
            cog("get_context", {"user_id": user, "limit": 10})
            timings["get_context, no query"].append((time.perf_counter() - began) * 1000)
    finally:
        for service in (cognition, memory):
            service.send_signal()
        for service in (cognition, memory):
            service.stop()
    return [Result("context scale", f"{name} p95, {phase}", percentile(values, 0.95), "ms",
                   "≤ 50 ms" if name.startswith("get_context") else "reference",
                   percentile(values, 0.95) <= 50 or not name.startswith("get_context"),
                   note=f"p50 {percentile(values, 0.5):.1f} ms over {len(values)}")
            for name, values in timings.items()]


def context_scale(work: Path, user_messages: int, other_messages: int, queries: int = 220) -> list[Result]:
    db = work / "scale.db"
    _schema(db)
    texts = Texts()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    began = time.monotonic()
    conn.execute("BEGIN")
    ((user, conversations),) = _users(conn, 1)
    sample = _messages(conn, texts, [(user, conversations)], user_messages, vectors=True)
    conn.execute("COMMIT")
    built = time.monotonic() - began
    rng = np.random.default_rng(3)
    asked = [" ".join(rng.choice(text.split(), 4, replace=False)) for text in rng.choice(sample, queries)]
    alone = f"{user_messages:,} messages, alone"
    results = _measure(work, db, user, asked, alone)
    began = time.monotonic()
    conn.execute("BEGIN")
    _messages(conn, texts, _users(conn, OTHER_USERS), other_messages, vectors=False)
    conn.execute("COMMIT")
    conn.close()
    added = time.monotonic() - began
    crowded = f"beside {other_messages:,} of {OTHER_USERS:,} other users"
    results += _measure(work, db, user, asked, crowded)
    for name in ("get_context", "get_context, no query"):
        first = next(r for r in results if r.figure == f"{name} p95, {alone}")
        second = next(r for r in results if r.figure == f"{name} p95, {crowded}")
        ratio = second.value / first.value if first.value else float("nan")
        results.append(Result("context scale", f"{name} p95, crowded ÷ alone", ratio, "×", "≤ 1.2×", ratio <= 1.2,
                              note=f"data built in {built:.0f} s + {added:.0f} s"))
    return results


def embedding_lag(work: Path, messages: int = 60, per_second: float = 5.0) -> list[Result]:
    """How long after its write a message has its vector, under ordinary load: `messages` stored one by one
    at `per_second` through Memory's store_input, each followed by polling Memory's embedding backlog (every
    10 ms) until it is empty. The worker's idle poll interval (EMBEDDING_POLL_SECONDS, 0.2 s) is the floor."""
    memory_port, cognition_port = free_port(), free_port()
    shared = {"MEMORY_SERVICE_URL": f"http://127.0.0.1:{memory_port}", "HEALTH_INTERVAL_SECONDS": "0"}
    memory = Service("memory_service.app:create_app()", {**shared, "DATABASE_URL": f"sqlite:///{work}/lag.db"},
                     work, "lag-memory")
    memory.port = memory_port
    cognition = Service("cognition_service.app:create_app()", shared, work, "lag-cognition")
    cognition.port = cognition_port
    memory.start()
    cognition.start()
    lags: list[float] = []
    try:
        mem = Caller(memory_port)
        user = mem("create_user", {"email": f"lag-{uuid.uuid4().hex[:8]}@bench.local", "name": "Lag",
                                   "password": "bench-password"})["user"]["id"]
        workspace = mem("create_workspace", {"user_id": user, "name": "lag"})["workspace"]["id"]
        conversation = mem("create_conversation", {"user_id": user, "workspace_id": workspace,
                                                   "topic": "lag"})["conversation"]["id"]
        texts = Texts(seed=5).take(messages + 3)
        for text in texts[:3]:  # unmeasured: the model loads on the first batch
            mem("store_input", {"user_id": user, "input_data": {"conversation_id": conversation, "content": text}})
        while mem("embedding_backlog", {})["backlog"]:
            time.sleep(0.05)
        for text in texts[3:]:
            began = time.perf_counter()
            mem("store_input", {"user_id": user, "input_data": {"conversation_id": conversation, "content": text}})
            while mem("embedding_backlog", {})["backlog"]:
                time.sleep(0.01)
            lags.append((time.perf_counter() - began) * 1000)
            time.sleep(max(0.0, 1 / per_second - (time.perf_counter() - began)))
    finally:
        for service in (cognition, memory):
            service.send_signal()
        for service in (cognition, memory):
            service.stop()
    p95 = percentile(lags, 0.95)
    return [Result("embedding lag", f"write to vector, {per_second:g} messages/s, p95", p95, "ms", "≤ 1000 ms",
                   p95 <= 1000, note=f"p50 {percentile(lags, 0.5):.0f} ms, max {max(lags):.0f} ms over {len(lags)};"
                                     " the idle worker asks every 200 ms")]
