"""Pydantic building blocks shared by every service's tool arguments, and the field types and limits that
the Core App's API and Memory's tools both enforce, defined here once."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from common.credentials import MAX_EMAIL_INPUT, normalize_email

MAX_METADATA_DEPTH = 32
DEFAULT_MAX_METADATA_BYTES = 16 * 1024

# Ids are uuid4 strings here, but any short slug-like id is accepted; anything else is a bad argument.
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Limit = Annotated[int, Field(ge=1, le=1000)]
Offset = Annotated[int, Field(ge=0, le=1_000_000_000)]

MAX_MESSAGE_CHARS = 32_000
"""The longest message content, and the longest search query (a whole message may be the query)."""
Content = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS)]
SearchQuery = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
"""A person's or a workspace's name."""
Topic = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=500)]


def _plain_json(value: Any, depth: int = 1) -> Any:
    """Metadata is stored and sent back as JSON: refuse what could not make that trip (deep nesting
    that serialisers give up on)."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata may be nested at most {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, dict):
        for item in value.values():
            _plain_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _plain_json(item, depth + 1)
    return value


def _small_json(value: dict) -> dict:
    """Refuse metadata above the default size early; Memory enforces its configured MAX_METADATA_BYTES."""
    size = len(json.dumps(value))
    if size > DEFAULT_MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON, more than the {DEFAULT_MAX_METADATA_BYTES} allowed")
    return value


Metadata = Annotated[dict, Field(max_length=100), AfterValidator(_plain_json)]
SmallMetadata = Annotated[Metadata, AfterValidator(_small_json)]


def _normalized_email(value: Any) -> Any:
    # Before the pattern: NFKC turns a full-width "＠" into "@", so the check sees what is stored.
    return normalize_email(value) if isinstance(value, str) and len(value) <= MAX_EMAIL_INPUT else value


# Whitespace and control characters (NUL included) have no place in an address.
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254,
                                         pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"),
                  BeforeValidator(_normalized_email)]


class Arguments(BaseModel):
    """Base of every tool's and resource's arguments: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")
