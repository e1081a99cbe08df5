"""Backend-neutral values every store uses: ids, timestamps, bounds on lists, metadata as stored JSON."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.errors import InvalidArguments, PayloadTooLarge

MAX_LIMIT = 1000
"""The most items one list or search page may ask for."""
DEFAULT_PAGE_BYTES = 1024 * 1024


def utc_now() -> str:
    """The current time as UTC ISO-8601 with a +00:00 offset."""
    return datetime.now(UTC).isoformat()


def new_id() -> str:
    """A fresh uuid4 string for a stored object."""
    return str(uuid.uuid4())


def clamp(value: int, low: int, high: int) -> int:
    """`value` forced into [low, high]; the schema layer validates, this only keeps queries sane."""
    return max(low, min(high, int(value)))


def page_bounds(limit: int, offset: int) -> tuple[int, int]:
    """A list page's limit in [1, MAX_LIMIT] and a non-negative offset."""
    return clamp(limit, 1, MAX_LIMIT), max(0, int(offset))


def encode_metadata(metadata: dict[str, Any] | None, max_bytes: int) -> str:
    """Metadata as stored JSON; None is an empty object, anything else must be a JSON-serialisable dict
    of at most `max_bytes` once serialised (PayloadTooLarge above)."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        raise InvalidArguments("metadata must be an object")
    try:
        encoded = json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidArguments("metadata must be JSON-serialisable") from exc
    # json.dumps escapes every non-ASCII character, so characters are bytes here.
    if len(encoded) > max_bytes:
        raise PayloadTooLarge(f"metadata is {len(encoded)} bytes as JSON, more than the {max_bytes} allowed",
                              {"field": "metadata", "bytes": len(encoded), "max_bytes": max_bytes})
    return encoded


@dataclass(frozen=True)
class InvitationLimits:
    """Bounds on invitations, so one user cannot grow a conversation or another user's inbox without end."""

    max_participants: int = 100
    """Members plus pending invitations of one conversation, its owner not counted."""
    max_pending_per_invitee: int = 100
    """Pending invitations one user may have received, from everyone together."""


DEFAULT_LIMITS = InvitationLimits()
