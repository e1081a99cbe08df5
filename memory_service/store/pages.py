"""Pages bounded in bytes as well as in items: a page of large messages stops early and says so."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

ENVELOPE_BYTES = 1024
"""Kept free for the page's other fields (count, has_more, ids), so the whole page fits; a search also
leaves room for its query."""


def take_within(items: Iterable[dict[str, Any]], count: int, budget: int) -> tuple[list[dict[str, Any]], bool]:
    """The leading items, at most `count` of them and, with the page around them, at most `budget` bytes
    of JSON (but always the first one), and whether any item was left out. `items` is consumed lazily,
    so what is not taken is never built: feed it a cursor, not a list."""
    taken: list[dict[str, Any]] = []
    used = ENVELOPE_BYTES
    for item in items:
        # ensure_ascii, as the response is written: an escaped character is up to 12 bytes, not 1-4.
        size = len(json.dumps(item)) + 1
        if len(taken) == count or (taken and used + size > budget):
            return taken, True
        taken.append(item)
        used += size
    return taken, False
