"""Message vectors and the queue of messages waiting for one (store/vectors.py says what they are for).

The queue is filled by triggers (schema.py) in the message write's own transaction, so acknowledging a
message never waits for its vector; embedding workers lease rows from it, and storing a vector removes the
row. Which vectors a user may search is the readable-conversations rule of `access.py`.
"""

from __future__ import annotations

import sqlite3
import time
from functools import partial
from typing import Any

from memory_service.store.sqlite.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite.messages import message_from_row
from memory_service.store.sqlite.users import require_user
from memory_service.store.vectors import VectorRow, WorkItem

_MAX_VARIABLES = 500  # ids bound per statement, well under SQLite's limit
BACKFILL_BATCH = 20_000


def claim_embedding_work(db: Database, limit: int, lease_seconds: float) -> list[WorkItem]:
    """Lease up to `limit` queued messages not leased by anyone now, oldest first."""

    def tx(conn: sqlite3.Connection) -> list[WorkItem]:
        now = time.time()
        rows = conn.execute(
            "UPDATE embedding_queue SET lease_until = ? WHERE ticket IN ("
            " SELECT ticket FROM embedding_queue WHERE lease_until < ? ORDER BY ticket LIMIT ?)"
            " RETURNING ticket, message_id", (now + lease_seconds, now, limit)).fetchall()
        contents = dict(conn.execute(
            f"SELECT id, content FROM messages WHERE id IN ({', '.join('?' * len(rows))})",
            [row["message_id"] for row in rows]).fetchall()) if rows else {}
        return sorted((WorkItem(row["ticket"], row["message_id"], contents[row["message_id"]])
                       for row in rows if row["message_id"] in contents), key=lambda item: item.ticket)

    return db.write(tx)


def store_embeddings(db: Database, model: str, items: list[tuple[int, str, bytes]]) -> dict[str, int]:
    """Store each `(ticket, message_id, vector)` whose ticket is still queued, replacing the message's
    vector, and take the ticket off the queue. A ticket that is gone (the message changed or was deleted
    since its claim, or another worker stored it) stores nothing."""

    def tx(conn: sqlite3.Connection) -> dict[str, int]:
        stored = 0
        for ticket, message_id, vector in items:
            if conn.execute("DELETE FROM embedding_queue WHERE ticket = ? AND message_id = ?",
                            (ticket, message_id)).rowcount != 1:
                continue
            conn.execute("DELETE FROM message_vectors WHERE message_id = ?", (message_id,))
            stored += conn.execute(
                "INSERT INTO message_vectors (message_id, conversation_id, model, vector)"
                " SELECT id, conversation_id, ?, ? FROM messages WHERE id = ?",
                (model, vector, message_id)).rowcount
        return {"stored": stored, "skipped": len(items) - stored}

    return db.write(tx)


def queue_missing_embeddings(db: Database, model: str) -> int:
    """Queue every message that has no vector of `model` and is not queued yet; how many were queued. In
    transactions of BACKFILL_BATCH messages, so a large backfill never holds other writes up for long."""
    last = db.read(lambda conn: conn.execute("SELECT COALESCE(MAX(seq_global), 0) FROM messages").fetchone()[0])

    def batch(conn: sqlite3.Connection, start: int) -> int:
        return conn.execute(
            "INSERT OR IGNORE INTO embedding_queue (message_id) SELECT m.id FROM messages m"
            " WHERE m.seq_global > ? AND m.seq_global <= ? AND NOT EXISTS"
            " (SELECT 1 FROM message_vectors v WHERE v.message_id = m.id AND v.model = ?) ORDER BY m.seq_global",
            (start, start + BACKFILL_BATCH, model)).rowcount

    return sum(db.write(partial(batch, start=start)) for start in range(0, last, BACKFILL_BATCH))


def embedding_backlog(db: Database) -> int:
    """How many messages wait for a vector."""
    return db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM embedding_queue").fetchone()[0])


def vector_versions(db: Database, user_id: str, model: str,
                    conversation_id: str | None = None) -> dict[str, tuple[int, int]]:
    """For each conversation the user may read (or the one named, if they may) that has vectors of `model`,
    the seq of the newest and how many there are. NotFound/Forbidden as for search."""

    def tx(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
        if conversation_id is None:
            require_user(conn, user_id)
            scope, params = READABLE_CONVERSATION_IDS, {"user_id": user_id, "model": model}
        else:
            load_conversation(conn, user_id, conversation_id)
            scope, params = "SELECT :conversation_id", {"conversation_id": conversation_id, "model": model}
        # Both from the (conversation_id, model, seq) index: MAX is one step down it, COUNT a scan of it.
        rows = conn.execute(
            f"WITH readable(id) AS ({scope}) SELECT id, (SELECT MAX(seq) FROM message_vectors v"
            " WHERE v.conversation_id = readable.id AND v.model = :model) AS version,"
            " (SELECT COUNT(*) FROM message_vectors v WHERE v.conversation_id = readable.id AND v.model = :model)"
            " AS count FROM readable", params).fetchall()
        return {row["id"]: (row["version"], row["count"]) for row in rows if row["version"] is not None}

    return db.read(tx)


def vectors_after(db: Database, conversation_id: str, model: str, after: int) -> list[VectorRow]:
    """The conversation's vectors of `model` written after seq `after`, in seq order."""
    return db.read(lambda conn: [VectorRow(*row) for row in conn.execute(
        "SELECT seq, message_id, vector FROM message_vectors WHERE conversation_id = ? AND seq > ? AND model = ?"
        " ORDER BY seq", (conversation_id, after, model))])


def readable_messages(db: Database, user_id: str, message_ids: list[str]) -> list[dict[str, Any]]:
    """The messages among `message_ids` that exist and the user may read, in no particular order."""

    def tx(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        found = []
        for start in range(0, len(message_ids), _MAX_VARIABLES):
            chunk = message_ids[start:start + _MAX_VARIABLES]
            params: dict[str, Any] = {"user_id": user_id, **{f"m{i}": mid for i, mid in enumerate(chunk)}}
            found += [message_from_row(row) for row in conn.execute(
                f"SELECT * FROM messages WHERE id IN ({', '.join(f':m{i}' for i in range(len(chunk)))})"
                f" AND conversation_id IN ({READABLE_CONVERSATION_IDS})", params)]
        return found

    return db.read(tx)
