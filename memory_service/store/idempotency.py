"""Idempotency keys, backend-neutral: what a key is, which object a stored result is a copy of, and how
a replayed result says so. Each backend stores the key in the same transaction as the write it guards.

A stored result is a copy of what the call wrote (a message's content, a conversation's topic), so keys
expire after a time-to-live (a day by default, like Stripe's) and are pruned in small batches as new
keys are written; and each key records the object its result carries (`subject_id`), so deleting that
object (directly or by cascade) deletes the copy too. A retry after the key has expired or after its
object was deleted runs again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


def as_replay(stored: Any) -> Any:
    """A stored result as its replay returns it: a result that says whether it was replayed (`store_input`'s
    `replayed`, stored as false) says true, so a caller can tell a retry from a first write."""
    if isinstance(stored, dict) and "replayed" in stored:
        return {**stored, "replayed": True}
    return stored
