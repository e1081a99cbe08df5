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
# The result is stored and up to PRUNE_BATCH expired keys deleted (oldest first, skipping rows another
# transaction holds) in one statement, a round trip fewer per keyed write. The rows pruned are older than
# the cutoff, so never the key this transaction has just claimed with the current time.
STORE_AND_PRUNE = (
    "WITH pruned AS (DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys"
    " WHERE created_at < %(cutoff)s ORDER BY created_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED))"
    " UPDATE idempotency_keys SET result_json = %(result)s, subject_id = %(subject)s WHERE key = %(key)s"
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
    conn.execute(STORE_AND_PRUNE, {"result": json.dumps(result), "subject": subject_of(result), "key": key.key,
                                   "cutoff": cutoff, "batch": PRUNE_BATCH})
    return result
