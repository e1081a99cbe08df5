"""Pydantic building blocks shared by every service's tool arguments."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Ids are uuid4 strings here, but any short slug-like id is accepted; anything else is a bad argument.
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Limit = Annotated[int, Field(ge=1, le=1000)]
Offset = Annotated[int, Field(ge=0, le=1_000_000_000)]
Metadata = Annotated[dict, Field(max_length=100)]


class Arguments(BaseModel):
    """Base of every tool's and resource's arguments: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")
