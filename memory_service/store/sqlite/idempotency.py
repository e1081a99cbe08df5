"""Idempotency keys in SQLite: a mutating call's result, kept in the write's own transaction so a retry
with the same key replays it (rules in memory_service/store/idempotency.py; deletion by triggers in
`schema.py`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from common.errors import Conflict
from memory_service.store.idempotency import PRUNE_BATCH, IdempotencyKey, as_replay, subject_of


def remembered(conn: sqlite3.Connection, key: IdempotencyKey, fn: Callable[[sqlite3.Connection], Any],
               now: datetime, ttl: timedelta) -> Any:
    """Replay the stored result of `key` if it has not expired; otherwise run `fn` and store its result.

    The same key for a different tool or arguments is a Conflict. Runs inside the caller's transaction.
    """
    cutoff = (now - ttl).isoformat()
    row = conn.execute(
        "SELECT tool, fingerprint, result_json, created_at FROM idempotency_keys WHERE key = ?", (key.key,)
    ).fetchone()
    if row is not None and row["created_at"] >= cutoff:
        if row["tool"] != key.tool or row["fingerprint"] != key.fingerprint:
            raise Conflict("idempotency key reused for a different request")
        return as_replay(json.loads(row["result_json"]))
    result = fn(conn)
    conn.execute(
        "INSERT OR REPLACE INTO idempotency_keys (key, tool, fingerprint, result_json, created_at, subject_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key.key, key.tool, key.fingerprint, json.dumps(result), now.isoformat(), subject_of(result)),
    )
    prune(conn, cutoff)
    return result


def prune(conn: sqlite3.Connection, cutoff: str, batch: int = PRUNE_BATCH) -> int:
    """Delete up to `batch` keys created before `cutoff` (oldest first, by index); returns how many."""
    return conn.execute(
        "DELETE FROM idempotency_keys WHERE key IN"
        " (SELECT key FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)",
        (cutoff, batch),
    ).rowcount
