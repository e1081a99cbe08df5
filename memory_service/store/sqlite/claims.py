"""Reply claims: the first claim on a message wins, once ever, so exactly one Core process replies to it.

The claim is a row keyed by the message id, inserted with INSERT OR IGNORE inside the write transaction:
SQLite's single writer (and, in another backend, the primary key) decides the one winner across processes.
The row goes with its message (a foreign-key cascade).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite.messages import load_for
from memory_service.store.values import utc_now


def claim_reply(
    db: Database, user_id: str, message_id: str, *, idempotency: IdempotencyKey | None = None
) -> dict[str, Any]:
    """`claimed` true for the first claim on the message, false for every later one; the user must be
    able to read the message, as for `get_message`."""

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        load_for(conn, user_id, message_id)
        claimed = conn.execute("INSERT OR IGNORE INTO reply_claims (message_id, claimed_at) VALUES (?, ?)",
                               (message_id, utc_now())).rowcount == 1
        return {"claimed": claimed, "message_id": message_id}

    return db.write(tx, idempotency=idempotency)
