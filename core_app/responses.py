"""The bodies of the client API's answers, as pydantic models.

Memory and Cognition own the shapes of their objects: each model names the fields `docs/API.md`
documents, and keeps any other field it is given (`extra="allow"`), so Core never drops what a service
adds. `body()` is the exact JSON the API answers: the fields that were given, in the order given.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    def body(self) -> dict[str, Any]:
        """The JSON object the API answers with."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- accounts -----------------------------------------------------------------------------------------

class User(Body):
    id: str
    email: str
    name: str
    created_at: str


class UserBody(Body):
    user: User


class SignedIn(Body):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    user: User


class Verified(Body):
    user_id: str
    email: str
    name: str


# --- workspaces and conversations ---------------------------------------------------------------------

class Workspace(Body):
    id: str
    owner_id: str
    name: str
    description: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class WorkspaceBody(Body):
    workspace: Workspace


class Page(Body):
    total: int
    limit: int
    offset: int


class WorkspacePage(Page):
    workspaces: list[Workspace]


class Deleted(Body):
    deleted: bool
    id: str


class Conversation(Body):
    id: str
    workspace_id: str
    topic: str
    participant_ids: list[str]
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class Invitation(Body):
    id: str
    conversation_id: str
    workspace_id: str
    topic: str
    inviter_id: str
    inviter_name: str
    invitee_id: str
    status: Literal["pending", "accepted", "declined"]
    created_at: str


class ConversationBody(Body):
    conversation: Conversation
    invitations: list[Invitation] | None = None  # on creating, and on updating `participant_ids`


class ConversationPage(Page):
    conversations: list[Conversation]


class InvitationBody(Body):
    invitation: Invitation
    conversation: Conversation | None = None  # on accepting


class InvitationPage(Page):
    invitations: list[Invitation]


class Removal(Body):
    removed: bool
    conversation_id: str
    user_id: str
    was: Literal["participant", "invited"]


# --- messages -----------------------------------------------------------------------------------------

class Message(Body):
    id: str
    conversation_id: str
    sender_id: str | None
    role: str
    content: str
    metadata: dict[str, Any]
    sequence: int
    created_at: str


class Received(Body):
    status: Literal["received"]
    message: Message


class MessagePage(Body):
    messages: list[Message]
    count: int
    conversation_id: str
    has_more: bool
    next_after_sequence: int


class StoredInput(Body):
    """Memory's answer to `store_input` (not a public body): `replayed` is true when the idempotency key
    answered with an earlier write."""

    status: str
    message: Message
    replayed: bool | None = None  # None: a Memory that does not say (before it learnt to)


# --- context, search, analysis ------------------------------------------------------------------------

class Scored(Message):
    score: float


class Context(Body):
    context: list[Scored]
    user_id: str
    query: str | None
    count: int


class SearchResults(Body):
    results: list[Scored]
    count: int
    query: str


class Analysis(Body):
    type: str
    conversation_id: str
    results: dict[str, Any]
    truncated: bool
    analyzed_messages: int
