"""Idempotency keys: a mutating call's result, kept for a while so a retry with the same key replays it.

A stored result is a copy of what the call wrote (a message's content, a conversation's topic), so keys
expire after a time-to-live (a day by default, like Stripe's) and are pruned in small batches as new
keys are written; and each key records the object its result carries (`subject_id`), so deleting that
object (directly or by cascade) deletes the copy too (triggers in `schema.py`). A retry after the key
has expired or after its object was deleted runs again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from common.errors import Conflict

DEFAULT_TTL_SECONDS = 86_400
PRUNE_BATCH = 100
"""Expired keys deleted per new key: more than one, so pruning outpaces new keys and a backlog drains."""

# The deletable objects a result can carry (users are never deleted).
_SUBJECTS = ("message", "conversation", "workspace")


class IdempotencyKey(NamedTuple):
    key: str
    tool: str
    fingerprint: str


def subject_of(result: Any) -> str | None:
    """The id of the stored object a result carries (`{"message": {"id": ...}}`), if any."""
    if isinstance(result, dict):
        for kind in _SUBJECTS:
            value = result.get(kind)
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                return value["id"]
    return None


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
        return json.loads(row["result_json"])
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
