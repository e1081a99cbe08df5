"""Request bodies and query strings of the client API, as pydantic models (unknown fields rejected)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from common.models import (
    Arguments,
    Content,
    Description,
    Email,
    Id,
    Limit,
    Metadata,
    Name,
    Offset,
    SearchQuery,
    SmallMetadata,
    Topic,
)
from core_app.passwords import MAX_LENGTH, password_problem


class Register(Arguments):
    email: Email
    name: Name
    password: Annotated[str, StringConstraints(max_length=MAX_LENGTH)]

    @field_validator("password")
    @classmethod
    def _acceptable(cls, password: str, info: ValidationInfo) -> str:
        problem = password_problem(password, email=info.data.get("email", ""), name=info.data.get("name", ""))
        if problem is not None:
            raise ValueError(f"password {problem}")
        return password


class Login(Arguments):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH)]


class Page(Arguments):
    limit: Limit = 20
    offset: Offset = 0


class WorkspaceIn(Arguments):
    name: Name
    description: Description = ""
    metadata: Metadata = Field(default_factory=dict)


class WorkspaceUpdate(Arguments):
    name: Name | None = None
    description: Description | None = None
    metadata: Metadata | None = None


class ConversationIn(Arguments):
    workspace_id: Id
    topic: Topic
    participant_ids: Annotated[list[Id], Field(max_length=100)] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class ConversationUpdate(Arguments):
    topic: Topic | None = None
    participant_ids: Annotated[list[Id], Field(max_length=100)] | None = None
    metadata: Metadata | None = None


class ConversationQuery(Page):
    workspace_id: Id


class InvitationIn(Arguments):
    user_id: Id


class InvitationQuery(Page):
    conversation_id: Id | None = None


class MessageIn(Arguments):
    # Whitespace alone is not a message anyone can answer; it is refused rather than stored.
    content: Annotated[Content, Field(pattern=r"\S")]
    metadata: SmallMetadata = Field(default_factory=dict)


class HistoryQuery(Arguments):
    after_sequence: Annotated[int, Field(ge=0)] = 0
    limit: Limit = 100


class StreamQuery(Arguments):
    access_token: str | None = None
    last_event_id: str | None = None


class ContextIn(Arguments):
    query: SearchQuery | None = None
    conversation_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 10


class SearchIn(Arguments):
    query: SearchQuery
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    include_conversations: bool = True


class AnalyzeIn(Arguments):
    conversation_id: Id
    # Cognition knows which analyses it has and refuses any other (400 `invalid_arguments`).
    analysis_type: Annotated[str, StringConstraints(max_length=100)]
