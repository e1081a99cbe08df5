"""Idempotency keys in PostgreSQL, unique across processes (rules in memory_service/store/idempotency.py).

The key's row is inserted first, in the write's own transaction, with ON CONFLICT: a concurrent call with
the same key on another process waits on the unique index until the first commits, then finds its row and
replays the stored result; if the first rolled back, the second writes. So one key is one write, ever.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from common.errors import Conflict
from memory_service.store.idempotency import PRUNE_BATCH, IdempotencyKey, as_replay, subject_of

# An expired key is taken over as if new: its old result is no longer replayed.
CLAIM = (
    "INSERT INTO idempotency_keys (key, tool, fingerprint, created_at) VALUES (%(key)s, %(tool)s, %(fp)s, %(now)s)"
    " ON CONFLICT (key) DO UPDATE SET tool = EXCLUDED.tool, fingerprint = EXCLUDED.fingerprint,"
    " result_json = NULL, created_at = EXCLUDED.created_at, subject_id = NULL"
    " WHERE idempotency_keys.created_at < %(cutoff)s RETURNING key"
)


def remembered(conn: Any, key: IdempotencyKey, fn: Callable[[Any], Any], now: datetime, ttl: timedelta,
               attempts: int = 3) -> Any:
    """Replay the stored result of `key` if it has not expired; otherwise run `fn` and store its result.

    The same key for a different tool or arguments is a Conflict. Runs inside the caller's transaction.
    """
    cutoff = (now - ttl).isoformat()
    params = {"key": key.key, "tool": key.tool, "fp": key.fingerprint, "now": now.isoformat(), "cutoff": cutoff}
    if conn.execute(CLAIM, params).fetchone() is None:
        # Someone holds the key, committed (ON CONFLICT waited for them): replay what they stored.
        row = conn.execute("SELECT tool, fingerprint, result_json FROM idempotency_keys WHERE key = %s",
                           (key.key,)).fetchone()
        if row is None and attempts > 1:  # deleted with its subject meanwhile: the call runs again
            return remembered(conn, key, fn, now, ttl, attempts - 1)
        if row is None or row["result_json"] is None:
            raise Conflict("idempotency key is being used by a request still in progress")
        if row["tool"] != key.tool or row["fingerprint"] != key.fingerprint:
            raise Conflict("idempotency key reused for a different request")
        return as_replay(json.loads(row["result_json"]))
    result = fn(conn)
    conn.execute("UPDATE idempotency_keys SET result_json = %s, subject_id = %s WHERE key = %s",
                 (json.dumps(result), subject_of(result), key.key))
    prune(conn, cutoff)
    return result


def prune(conn: Any, cutoff: str, batch: int = PRUNE_BATCH) -> int:
    """Delete up to `batch` keys created before `cutoff`, oldest first, skipping rows another transaction
    holds; returns how many."""
    return int(conn.execute(
        "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE created_at < %s"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)", (cutoff, batch)).rowcount)
