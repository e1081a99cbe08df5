"""Message vectors and the queue of messages waiting for one, on PostgreSQL (as sqlite/vectors.py).

Vectors are `bytea` (float32, store/vectors.py), searched by Memory's own index: pgvector is not required,
so any PostgreSQL serves. Workers on several processes lease queue rows with `FOR UPDATE SKIP LOCKED`, so
two never wait for, or take, the same rows.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from memory_service.store.postgresql.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.postgresql.messages import COLUMNS, message_from_row
from memory_service.store.postgresql.users import require_user
from memory_service.store.vectors import VectorRow, WorkItem

BACKFILL_BATCH = 20_000

_CLAIM = """
WITH free AS (
    SELECT ticket FROM embedding_queue WHERE lease_until < %(now)s ORDER BY ticket LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED),
leased AS (
    UPDATE embedding_queue q SET lease_until = %(until)s FROM free WHERE q.ticket = free.ticket
    RETURNING q.ticket, q.message_id)
SELECT leased.ticket, leased.message_id, m.content FROM leased JOIN messages m ON m.id = leased.message_id
ORDER BY leased.ticket
"""


def claim_embedding_work(db: Database, limit: int, lease_seconds: float) -> list[WorkItem]:
    """Lease up to `limit` queued messages not leased by anyone now, oldest first."""
    now = time.time()
    rows = db.write(lambda conn: conn.execute(
        _CLAIM, {"now": now, "until": now + lease_seconds, "limit": limit}).fetchall(), one_statement=True)
    return [WorkItem(row["ticket"], row["message_id"], row["content"]) for row in rows]


def store_embeddings(db: Database, model: str, items: list[tuple[int, str, bytes]]) -> dict[str, int]:
    """Store each `(ticket, message_id, vector)` whose ticket is still queued, replacing the message's
    vector, and take the ticket off the queue (a ticket that is gone stores nothing). Each vector's seq is
    its conversation's next, taken under the counter row's lock; conversations are locked in id order, so
    two workers' batches never deadlock."""

    def tx(conn: Connection) -> dict[str, int]:
        # The messages first, in id order, as a delete takes them (message, then its queue row by cascade):
        # taking the queue row first would deadlock with a delete of the same message.
        where = {row["id"]: row["conversation_id"] for row in conn.execute(
            "SELECT id, conversation_id FROM messages WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",
            ([item[1] for item in items],))}
        stored = 0
        for ticket, message_id, vector in sorted(items, key=lambda item: (where.get(item[1], ""), item[0])):
            conversation_id = where.get(message_id)
            if conversation_id is None or conn.execute(
                    "DELETE FROM embedding_queue WHERE ticket = %s AND message_id = %s",
                    (ticket, message_id)).rowcount != 1:
                continue
            seq = one(conn.execute(
                "INSERT INTO vector_counters (conversation_id, seq) VALUES (%s, 1) ON CONFLICT (conversation_id)"
                " DO UPDATE SET seq = vector_counters.seq + 1 RETURNING seq", (conversation_id,)))["seq"]
            stored += conn.execute(
                "INSERT INTO message_vectors (message_id, conversation_id, model, seq, vector)"
                " SELECT id, conversation_id, %s, %s, %s FROM messages WHERE id = %s"
                " ON CONFLICT (message_id) DO UPDATE SET model = EXCLUDED.model, seq = EXCLUDED.seq,"
                " vector = EXCLUDED.vector", (model, seq, vector, message_id)).rowcount
        return {"stored": stored, "skipped": len(items) - stored}

    return db.write(tx)


def queue_missing_embeddings(db: Database, model: str) -> int:
    """Queue every message that has no vector of `model` and is not queued yet; how many were queued. In
    transactions of BACKFILL_BATCH messages, so a large backfill never holds locks for long."""
    last = int(db.read(lambda conn: one(conn.execute(
        "SELECT COALESCE(max(seq_global), 0) AS last FROM messages"))["last"]))

    def batch(conn: Connection, start: int) -> int:
        return int(conn.execute(
            "INSERT INTO embedding_queue (message_id) SELECT m.id FROM messages m"
            " WHERE m.seq_global > %s AND m.seq_global <= %s AND NOT EXISTS"
            " (SELECT 1 FROM message_vectors v WHERE v.message_id = m.id AND v.model = %s)"
            " ORDER BY m.seq_global ON CONFLICT (message_id) DO NOTHING",
            (start, start + BACKFILL_BATCH, model)).rowcount)

    return sum(db.write(partial(batch, start=start), one_statement=True) for start in range(0, last, BACKFILL_BATCH))


def embedding_backlog(db: Database) -> int:
    """How many messages wait for a vector."""
    return int(db.read(lambda conn: one(conn.execute("SELECT COUNT(*) AS n FROM embedding_queue"))["n"]))


def vector_versions(db: Database, user_id: str, model: str,
                    conversation_id: str | None = None) -> dict[str, tuple[int, int]]:
    """For each conversation the user may read (or the one named, if they may) that has vectors of `model`,
    the seq of the newest and how many there are. NotFound/Forbidden as for search."""

    def tx(conn: Connection) -> dict[str, tuple[int, int]]:
        if conversation_id is None:
            require_user(conn, user_id)
            scope, params = READABLE_CONVERSATION_IDS, {"user_id": user_id, "model": model}
        else:
            load_conversation(conn, user_id, conversation_id)
            scope, params = "SELECT %(conversation_id)s::text", {"conversation_id": conversation_id, "model": model}
        rows = conn.execute(
            f"WITH readable(id) AS ({scope}) SELECT id, s.version, s.count FROM readable,"
            " LATERAL (SELECT max(seq) AS version, count(*) AS count FROM message_vectors v"
            " WHERE v.conversation_id = readable.id AND v.model = %(model)s) s", params).fetchall()
        return {row["id"]: (row["version"], row["count"]) for row in rows if row["version"] is not None}

    return db.read(tx)


def vectors_after(db: Database, conversation_id: str, model: str, after: int) -> list[VectorRow]:
    """The conversation's vectors of `model` written after seq `after`, in seq order."""
    return db.read(lambda conn: [VectorRow(row["seq"], row["message_id"], bytes(row["vector"])) for row in conn.execute(
        "SELECT seq, message_id, vector FROM message_vectors WHERE conversation_id = %s AND seq > %s AND model = %s"
        " ORDER BY seq", (conversation_id, after, model))])


def readable_messages(db: Database, user_id: str, message_ids: list[str]) -> list[dict[str, Any]]:
    """The messages among `message_ids` that exist and the user may read, in no particular order."""
    return db.read(lambda conn: [message_from_row(row) for row in conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE id = ANY(%(ids)s)"
        f" AND conversation_id IN ({READABLE_CONVERSATION_IDS})", {"ids": message_ids, "user_id": user_id})])
