"""The storage interface for a backend written as per-domain modules of functions that take the backend's
`Database` first (`users.create_user(db, ...)`, `messages.store_input(db, ...)`): both SQLite and PostgreSQL
are. Each operation calls the function of the same name in the module the backend names, so a backend
only opens its database and names its modules."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar, NamedTuple

from memory_service.store.interface import Key, Result, Store
from memory_service.store.values import InvitationLimits
from memory_service.store.vectors import VectorRow, WorkItem


class Modules(NamedTuple):
    """Where a backend writes each group of operations."""

    users: ModuleType
    workspaces: ModuleType
    conversations: ModuleType
    participants: ModuleType
    messages: ModuleType
    claims: ModuleType
    search: ModuleType
    vectors: ModuleType


class ModuleStore(Store):
    """Every `Store` operation, delegated to the backend's per-domain modules with `self.db` first."""

    modules: ClassVar[Modules]
    db: Any
    """The backend's pooled database: `ping()`, `size_bytes()`, `close()`, and what its modules run transactions
    on."""
    limits: InvitationLimits

    def create_user(self, email: str, name: str, password_hash: str, *, idempotency: Key = None) -> Result:
        return self.modules.users.create_user(self.db, email, name, password_hash, idempotency=idempotency)

    def find_login(self, email: str) -> tuple[Result, str] | None:
        return self.modules.users.find_login(self.db, email)

    def get_user(self, user_id: str) -> Result:
        return self.modules.users.get_user(self.db, user_id)

    def create_workspace(self, user_id: str, name: str, description: str = "",
                         metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        return self.modules.workspaces.create_workspace(self.db, user_id, name, description, metadata,
                                                        idempotency=idempotency)

    def list_workspaces(self, user_id: str, limit: int, offset: int) -> Result:
        return self.modules.workspaces.list_workspaces(self.db, user_id, limit, offset)

    def get_workspace(self, user_id: str, workspace_id: str) -> Result:
        return self.modules.workspaces.get_workspace(self.db, user_id, workspace_id)

    def update_workspace(self, user_id: str, workspace_id: str, name: str | None = None,
                         description: str | None = None, metadata: dict[str, Any] | None = None, *,
                         idempotency: Key = None) -> Result:
        return self.modules.workspaces.update_workspace(self.db, user_id, workspace_id, name, description, metadata,
                                                        idempotency=idempotency)

    def delete_workspace(self, user_id: str, workspace_id: str, *, idempotency: Key = None) -> Result:
        return self.modules.workspaces.delete_workspace(self.db, user_id, workspace_id, idempotency=idempotency)

    def create_conversation(self, user_id: str, workspace_id: str, topic: str,
                            participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            *, idempotency: Key = None) -> Result:
        return self.modules.conversations.create_conversation(self.db, user_id, workspace_id, topic, participant_ids,
                                                              metadata, idempotency=idempotency, limits=self.limits)

    def list_conversations(self, user_id: str, workspace_id: str, limit: int, offset: int) -> Result:
        return self.modules.conversations.list_conversations(self.db, user_id, workspace_id, limit, offset)

    def get_conversation(self, user_id: str, conversation_id: str) -> Result:
        return self.modules.conversations.get_conversation(self.db, user_id, conversation_id)

    def update_conversation(self, user_id: str, conversation_id: str, topic: str | None = None,
                            participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            *, idempotency: Key = None) -> Result:
        return self.modules.conversations.update_conversation(self.db, user_id, conversation_id, topic, participant_ids,
                                                              metadata, idempotency=idempotency, limits=self.limits)

    def delete_conversation(self, user_id: str, conversation_id: str, *, idempotency: Key = None) -> Result:
        return self.modules.conversations.delete_conversation(self.db, user_id, conversation_id,
                                                              idempotency=idempotency)

    def invite_participant(self, user_id: str, conversation_id: str, participant_id: str, *,
                           idempotency: Key = None) -> Result:
        return self.modules.participants.invite_participant(self.db, user_id, conversation_id, participant_id,
                                                            idempotency=idempotency, limits=self.limits)

    def list_invitations(self, user_id: str, conversation_id: str | None = None, limit: int = 20,
                         offset: int = 0) -> Result:
        return self.modules.participants.list_invitations(self.db, user_id, conversation_id, limit, offset)

    def respond_invitation(self, user_id: str, invitation_id: str, accept: bool, *,
                           idempotency: Key = None) -> Result:
        return self.modules.participants.respond_invitation(self.db, user_id, invitation_id, accept,
                                                            idempotency=idempotency)

    def leave_conversation(self, user_id: str, conversation_id: str, *, idempotency: Key = None) -> Result:
        return self.modules.participants.leave_conversation(self.db, user_id, conversation_id, idempotency=idempotency)

    def remove_participant(self, user_id: str, conversation_id: str, participant_id: str, *,
                           idempotency: Key = None) -> Result:
        return self.modules.participants.remove_participant(self.db, user_id, conversation_id, participant_id,
                                                            idempotency=idempotency)

    def store_input(self, user_id: str, conversation_id: str, content: str, role: str = "user",
                    metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        return self.modules.messages.store_input(self.db, user_id, conversation_id, content, role, metadata,
                                                 idempotency=idempotency)

    def get_message(self, user_id: str, message_id: str) -> Result:
        return self.modules.messages.get_message(self.db, user_id, message_id)

    def update_message(self, user_id: str, message_id: str, content: str | None = None,
                       metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        return self.modules.messages.update_message(self.db, user_id, message_id, content, metadata,
                                                    idempotency=idempotency)

    def delete_message(self, user_id: str, message_id: str, *, idempotency: Key = None) -> Result:
        return self.modules.messages.delete_message(self.db, user_id, message_id, idempotency=idempotency)

    def claim_reply(self, user_id: str, message_id: str, *, idempotency: Key = None) -> Result:
        return self.modules.claims.claim_reply(self.db, user_id, message_id, idempotency=idempotency)

    def list_messages(self, user_id: str, conversation_id: str, after_sequence: int = 0, limit: int = 100,
                      latest: bool = False) -> Result:
        return self.modules.messages.list_messages(self.db, user_id, conversation_id, after_sequence, limit, latest)

    def messages_around(self, user_id: str, message_ids: list[str], distance: int) -> list[Result]:
        return self.modules.messages.messages_around(self.db, user_id, message_ids, distance)

    def search_messages(self, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10,
                        offset: int = 0, match: str = "words") -> Result:
        return self.modules.search.search_messages(self.db, user_id, query, conversation_id, limit, offset, match)

    def iter_conversation(self, user_id: str, conversation_id: str, page_size: int = 500) -> Iterator[Result]:
        return self.modules.messages.iter_conversation(self.db, user_id, conversation_id, page_size)

    def iter_history(self, user_id: str, limit: int | None = None, page_size: int = 500) -> Iterator[Result]:
        return self.modules.messages.iter_history(self.db, user_id, limit, page_size)

    def count_history(self, user_id: str) -> int:
        return self.modules.messages.count_history(self.db, user_id)

    def claim_embedding_work(self, limit: int, lease_seconds: float) -> list[WorkItem]:
        return self.modules.vectors.claim_embedding_work(self.db, limit, lease_seconds)

    def store_embeddings(self, model: str, items: list[tuple[int, str, bytes]]) -> Result:
        return self.modules.vectors.store_embeddings(self.db, model, items)

    def queue_missing_embeddings(self, model: str) -> int:
        return self.modules.vectors.queue_missing_embeddings(self.db, model)

    def embedding_backlog(self) -> int:
        return self.modules.vectors.embedding_backlog(self.db)

    def vector_versions(self, user_id: str, model: str,
                        conversation_id: str | None = None) -> dict[str, tuple[int, int]]:
        return self.modules.vectors.vector_versions(self.db, user_id, model, conversation_id)

    def vectors_after(self, conversation_id: str, model: str, after: int) -> list[VectorRow]:
        return self.modules.vectors.vectors_after(self.db, conversation_id, model, after)

    def readable_messages(self, user_id: str, message_ids: list[str]) -> list[Result]:
        return self.modules.vectors.readable_messages(self.db, user_id, message_ids)

    def ping(self) -> bool:
        return self.db.ping()

    def size_bytes(self) -> int:
        return int(self.db.size_bytes())

    def close(self) -> None:
        self.db.close()
