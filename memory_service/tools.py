"""The Memory Service's tool table: argument models (the schema callers see) bound to the store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from common.errors import InvalidArguments
from common.models import Arguments, Content, Description, Email, Id, Limit, Metadata, Name, Offset, SearchQuery, Topic
from common.server import CallContext, Tool
from memory_service import accounts
from memory_service.hashing import PasswordHashing
from memory_service.store import IdempotencyKey, Store
from memory_service.store.pages import take_within
from memory_service.store.values import DEFAULT_PAGE_BYTES
from memory_service.store.vectors import VectorIndex, to_bytes

NewPassword = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Participants = Annotated[list[Id], Field(max_length=100)]


class CreateUser(Arguments):
    email: Email
    name: Name
    password: NewPassword


class AuthenticateUser(Arguments):
    email: Email
    password: Password


class UserArgs(Arguments):
    user_id: Id


class CreateWorkspace(UserArgs):
    name: Name
    description: Description = ""
    metadata: Metadata = Field(default_factory=dict)


class ListPage(UserArgs):
    limit: Limit = 20
    offset: Offset = 0


class WorkspaceArgs(UserArgs):
    workspace_id: Id


class UpdateWorkspace(WorkspaceArgs):
    name: Name | None = None
    description: Description | None = None
    metadata: Metadata | None = None


class CreateConversation(WorkspaceArgs):
    topic: Topic
    participant_ids: Participants = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class ListConversations(ListPage):
    workspace_id: Id


class ConversationArgs(UserArgs):
    conversation_id: Id


class UpdateConversation(ConversationArgs):
    topic: Topic | None = None
    participant_ids: Participants | None = None
    metadata: Metadata | None = None


class ParticipantArgs(ConversationArgs):
    participant_id: Id


class ListInvitations(ListPage):
    conversation_id: Id | None = Field(None, description="the pending invitations of this conversation "
                                                         "(its owner only) instead of the user's own")


class RespondInvitation(UserArgs):
    invitation_id: Id
    accept: bool


class InputData(Arguments):
    conversation_id: Id
    content: Content
    role: Literal["user", "assistant", "system"] = "user"
    metadata: Metadata = Field(default_factory=dict)


class StoreInput(UserArgs):
    input_data: InputData


class MessageArgs(UserArgs):
    message_id: Id


class ClaimReply(MessageArgs):
    recent: Annotated[int, Field(ge=0, le=100)] = Field(
        0, description="with a won claim, also the conversation's last `recent` messages before this one")


class UpdateMessage(MessageArgs):
    content: Content | None = None
    metadata: Metadata | None = None


class ListMessages(ConversationArgs):
    after_sequence: Annotated[int, Field(ge=0)] = 0
    limit: Limit = 100
    latest: bool = Field(False, description="the last `limit` messages instead of the first (still in order)")


class SearchMessages(UserArgs):
    query: SearchQuery
    conversation_id: Id | None = None
    limit: Limit = 10
    offset: Offset = Field(0, description="skip this many of the best matches (a page's next_offset)")
    match: Literal["words", "stems"] = Field("words", description="exact words, or stems (\"paints\" finds "
                                                                   "\"painted\")")


# A model's name as the Cognition Service reports it ("hash-256", "text-embedding-3-small").
Model = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
# Finite and within float32's range, so a stored vector never turns a cosine into NaN.
Component = Annotated[float, Field(allow_inf_nan=False, ge=-1e30, le=1e30)]
Vector = Annotated[list[Component], Field(min_length=1, max_length=4096)]


class MessagesAround(UserArgs):
    message_ids: Annotated[list[Id], Field(min_length=1, max_length=1000)]
    distance: Annotated[int, Field(ge=0, le=10)] = 2


class SearchSimilar(UserArgs):
    model: Model
    vector: Vector = Field(description="the query's embedding, by the same model")
    conversation_id: Id | None = None
    limit: Limit = 10


class ClaimEmbeddingWork(Arguments):
    limit: Annotated[int, Field(ge=1, le=256)] = 64
    lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 60


class Embedding(Arguments):
    ticket: Annotated[int, Field(ge=1)]
    message_id: Id
    vector: Vector


class StoreEmbeddings(Arguments):
    model: Model
    items: Annotated[list[Embedding], Field(min_length=1, max_length=256)]


class ModelArgs(Arguments):
    model: Model


def store_embeddings(store: Store, args: StoreEmbeddings) -> dict:
    """Vectors of one size only, as float32 bytes."""
    sizes = {len(item.vector) for item in args.items}
    if len(sizes) > 1:
        raise InvalidArguments("every vector of one call must have the same number of dimensions")
    return store.store_embeddings(args.model, [(item.ticket, item.message_id, to_bytes(item.vector))
                                               for item in args.items])


def similar(store: Store, index: VectorIndex, args: SearchSimilar, page_bytes: int) -> dict:
    """The nearest messages, within the page's bytes; `has_more` says some were left out."""
    found = index.search(store, args.user_id, args.model, args.vector, args.limit, args.conversation_id)
    results, more = take_within(found["results"], args.limit, page_bytes)
    return {**found, "results": results, "count": len(results), "has_more": more}


def around(store: Store, args: MessagesAround, page_bytes: int) -> dict:
    """The neighbouring messages, within the page's bytes (the given messages' own first)."""
    found = store.messages_around(args.user_id, args.message_ids, args.distance)
    order = {message_id: index for index, message_id in enumerate(args.message_ids)}
    found.sort(key=lambda message: order.get(message["id"], len(order)))
    messages, more = take_within(found, len(found), page_bytes)
    return {"messages": messages, "has_more": more}


def idempotency(tool: str, args: BaseModel, ctx: CallContext) -> IdempotencyKey | None:
    """The key under which a mutating call's result is stored, tied to the exact arguments."""
    if not ctx.idempotency_key:
        return None
    fingerprint = hashlib.sha256(args.model_dump_json().encode()).hexdigest()
    return IdempotencyKey(ctx.idempotency_key, tool, fingerprint)


def claim_reply(store: Store, args: ClaimReply, key: IdempotencyKey | None) -> dict:
    """The claim, and for a won one the turns the reply is written after: one call where the reply needed
    two. Only the claim is remembered under the idempotency key; the turns are read afresh each time."""
    claim = store.claim_reply(args.user_id, args.message_id, idempotency=key)
    if not (claim["claimed"] and args.recent):
        return claim
    message = store.get_message(args.user_id, args.message_id)["message"]
    page = store.list_messages(args.user_id, message["conversation_id"],
                               max(0, message["sequence"] - args.recent - 1), args.recent)
    return {**claim, "recent": [m for m in page["messages"] if m["sequence"] < message["sequence"]]}


def build_tools(store: Store, hashing: PasswordHashing | None = None,
                index: VectorIndex | None = None, page_bytes: int = DEFAULT_PAGE_BYTES) -> list[Tool]:
    """Bind every tool of SPEC §4 (and the participant, reply-claim and vector tools) to `store`, hashing
    passwords on `hashing`'s threads and searching vectors through `index`."""
    index = index or VectorIndex()

    def mutating(name: str, description: str, model: type[BaseModel],
                 run: Callable[[Any, IdempotencyKey | None], dict]) -> Tool:
        return Tool(name, description, model, lambda a, ctx: run(a, idempotency(name, a, ctx)))

    def reading(name: str, description: str, model: type[BaseModel], run: Callable[[Any], dict]) -> Tool:
        return Tool(name, description, model, lambda a, ctx: run(a))

    return [
        mutating("create_user", "Register a user; the email must be unused.", CreateUser,
                 lambda a, k: accounts.create_user(store, a.email, a.name, a.password, idempotency=k,
                                                     hashing=hashing)),
        reading("authenticate_user", "Check an email and password; returns the user.", AuthenticateUser,
                lambda a: accounts.authenticate_user(store, a.email, a.password, hashing=hashing)),
        reading("get_user", "Get a user by id.", UserArgs, lambda a: store.get_user(a.user_id)),
        mutating("create_workspace", "Create a workspace owned by the user.", CreateWorkspace,
                 lambda a, k: store.create_workspace(
                     a.user_id, a.name, a.description, a.metadata, idempotency=k)),
        reading("list_workspaces", "The user's workspaces, newest first.", ListPage,
                lambda a: store.list_workspaces(a.user_id, a.limit, a.offset)),
        reading("get_workspace", "Get one workspace the user may read.", WorkspaceArgs,
                lambda a: store.get_workspace(a.user_id, a.workspace_id)),
        mutating("update_workspace", "Change a workspace's name, description or metadata.", UpdateWorkspace,
                 lambda a, k: store.update_workspace(
                     a.user_id, a.workspace_id, a.name, a.description, a.metadata, idempotency=k)),
        mutating("delete_workspace", "Delete a workspace with its conversations and messages.", WorkspaceArgs,
                 lambda a, k: store.delete_workspace(a.user_id, a.workspace_id, idempotency=k)),
        mutating("create_conversation", "Start a conversation in a workspace.", CreateConversation,
                 lambda a, k: store.create_conversation(
                     a.user_id, a.workspace_id, a.topic, a.participant_ids, a.metadata, idempotency=k)),
        reading("list_conversations", "Conversations in a workspace that the user may read.",
                ListConversations,
                lambda a: store.list_conversations(a.user_id, a.workspace_id, a.limit, a.offset)),
        reading("get_conversation", "Get one conversation the user may read.", ConversationArgs,
                lambda a: store.get_conversation(a.user_id, a.conversation_id)),
        mutating("update_conversation", "Change a conversation's topic, participants or metadata.",
                 UpdateConversation,
                 lambda a, k: store.update_conversation(
                     a.user_id, a.conversation_id, a.topic, a.participant_ids, a.metadata, idempotency=k)),
        mutating("delete_conversation", "Delete a conversation and its messages.", ConversationArgs,
                 lambda a, k: store.delete_conversation(a.user_id, a.conversation_id, idempotency=k)),
        mutating("invite_participant", "Invite a user into a conversation; they join only if they accept.",
                 ParticipantArgs,
                 lambda a, k: store.invite_participant(
                     a.user_id, a.conversation_id, a.participant_id, idempotency=k)),
        reading("list_invitations", "Invitations waiting for the user's answer, or a conversation's pending ones.",
                ListInvitations,
                lambda a: store.list_invitations(a.user_id, a.conversation_id, a.limit, a.offset)),
        mutating("respond_invitation", "Accept (join the conversation) or decline an invitation to the user.",
                 RespondInvitation,
                 lambda a, k: store.respond_invitation(a.user_id, a.invitation_id, a.accept, idempotency=k)),
        mutating("leave_conversation", "Stop taking part in a conversation.", ConversationArgs,
                 lambda a, k: store.leave_conversation(a.user_id, a.conversation_id, idempotency=k)),
        mutating("remove_participant", "Remove a participant or withdraw their invitation (the owner; or oneself).",
                 ParticipantArgs,
                 lambda a, k: store.remove_participant(
                     a.user_id, a.conversation_id, a.participant_id, idempotency=k)),
        mutating("store_input", "Store a message; returns its id and per-conversation sequence.", StoreInput,
                 lambda a, k: store.store_input(
                     a.user_id, a.input_data.conversation_id, a.input_data.content, a.input_data.role,
                     a.input_data.metadata, idempotency=k)),
        reading("get_message", "Get one message.", MessageArgs,
                lambda a: store.get_message(a.user_id, a.message_id)),
        mutating("update_message", "Change a message's content or metadata.", UpdateMessage,
                 lambda a, k: store.update_message(
                     a.user_id, a.message_id, a.content, a.metadata, idempotency=k)),
        mutating("delete_message", "Delete a message.", MessageArgs,
                 lambda a, k: store.delete_message(a.user_id, a.message_id, idempotency=k)),
        mutating("claim_reply", "Record that a reply to this message has started; claimed is true for the "
                 "first claim only, once ever.", ClaimReply, lambda a, k: claim_reply(store, a, k)),
        reading("list_messages", "A conversation's messages in order, after a sequence number.",
                ListMessages,
                lambda a: store.list_messages(a.user_id, a.conversation_id, a.after_sequence, a.limit, a.latest)),
        reading("search_messages", "Ranked full-text search over the messages the user may read.",
                SearchMessages,
                lambda a: store.search_messages(a.user_id, a.query, a.conversation_id, a.limit, a.offset, a.match)),
        reading("messages_around", "The messages next to each given one in its conversation (up to `distance` "
                "places before and after), for context around search hits.", MessagesAround,
                lambda a: around(store, a, page_bytes)),
        reading("search_similar", "The messages the user may read whose vectors are nearest a query vector "
                "(cosine), best first.", SearchSimilar,
                lambda a: similar(store, index, a, page_bytes)),
        reading("claim_embedding_work", "Lease queued messages that need a vector: their ticket, id and content.",
                ClaimEmbeddingWork,
                lambda a: {"items": [item._asdict() for item in store.claim_embedding_work(a.limit, a.lease_seconds)]}),
        reading("store_embeddings", "Store vectors for claimed messages whose tickets are still queued.",
                StoreEmbeddings, lambda a: store_embeddings(store, a)),
        reading("queue_missing_embeddings", "Queue every message without a vector of this model (a backfill).",
                ModelArgs, lambda a: {"queued": store.queue_missing_embeddings(a.model),
                                      "backlog": store.embedding_backlog()}),
        reading("embedding_backlog", "How many messages wait for a vector.", Arguments,
                lambda a: {"backlog": store.embedding_backlog()}),
    ]
