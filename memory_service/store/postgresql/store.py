"""The PostgreSQL backend of the storage interface: each operation is a transaction on the pooled
`Database`, written in the per-domain modules next to this one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from common.models import DEFAULT_MAX_METADATA_BYTES
from memory_service.store.idempotency import DEFAULT_TTL_SECONDS
from memory_service.store.interface import Key, Result, Store
from memory_service.store.postgresql import conversations, messages, participants, search, users, workspaces
from memory_service.store.postgresql.database import Database
from memory_service.store.values import DEFAULT_LIMITS, DEFAULT_PAGE_BYTES, InvitationLimits


class PostgresStore(Store):
    """Memory's data in PostgreSQL (the schema the URL's search_path names), shared by any number of
    Memory processes; StoreUnavailable when the server cannot be reached at start."""

    def __init__(self, url: str, *, pool_size: int = 8, pool_timeout: float = 5.0,
                 idempotency_ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES, max_page_bytes: int = DEFAULT_PAGE_BYTES,
                 limits: InvitationLimits = DEFAULT_LIMITS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = Database(url, pool_size, pool_timeout=pool_timeout, idempotency_ttl_seconds=idempotency_ttl_seconds,
                           max_metadata_bytes=max_metadata_bytes, max_page_bytes=max_page_bytes, clock=clock)
        self.limits = limits

    def create_user(self, email: str, name: str, password_hash: str, *, idempotency: Key = None) -> Result:
        return users.create_user(self.db, email, name, password_hash, idempotency=idempotency)

    def find_login(self, email: str) -> tuple[Result, str] | None:
        return users.find_login(self.db, email)

    def get_user(self, user_id: str) -> Result:
        return users.get_user(self.db, user_id)

    def create_workspace(self, user_id: str, name: str, description: str = "",
                         metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        return workspaces.create_workspace(self.db, user_id, name, description, metadata, idempotency=idempotency)

    def list_workspaces(self, user_id: str, limit: int, offset: int) -> Result:
        return workspaces.list_workspaces(self.db, user_id, limit, offset)

    def get_workspace(self, user_id: str, workspace_id: str) -> Result:
        return workspaces.get_workspace(self.db, user_id, workspace_id)

    def update_workspace(self, user_id: str, workspace_id: str, name: str | None = None,
                         description: str | None = None, metadata: dict[str, Any] | None = None, *,
                         idempotency: Key = None) -> Result:
        return workspaces.update_workspace(self.db, user_id, workspace_id, name, description, metadata,
                                           idempotency=idempotency)

    def delete_workspace(self, user_id: str, workspace_id: str, *, idempotency: Key = None) -> Result:
        return workspaces.delete_workspace(self.db, user_id, workspace_id, idempotency=idempotency)

    def create_conversation(self, user_id: str, workspace_id: str, topic: str,
                            participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            *, idempotency: Key = None) -> Result:
        return conversations.create_conversation(self.db, user_id, workspace_id, topic, participant_ids, metadata,
                                                 idempotency=idempotency, limits=self.limits)

    def list_conversations(self, user_id: str, workspace_id: str, limit: int, offset: int) -> Result:
        return conversations.list_conversations(self.db, user_id, workspace_id, limit, offset)

    def get_conversation(self, user_id: str, conversation_id: str) -> Result:
        return conversations.get_conversation(self.db, user_id, conversation_id)

    def update_conversation(self, user_id: str, conversation_id: str, topic: str | None = None,
                            participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            *, idempotency: Key = None) -> Result:
        return conversations.update_conversation(self.db, user_id, conversation_id, topic, participant_ids,
                                                 metadata, idempotency=idempotency, limits=self.limits)

    def delete_conversation(self, user_id: str, conversation_id: str, *, idempotency: Key = None) -> Result:
        return conversations.delete_conversation(self.db, user_id, conversation_id, idempotency=idempotency)

    def invite_participant(self, user_id: str, conversation_id: str, participant_id: str, *,
                           idempotency: Key = None) -> Result:
        return participants.invite_participant(self.db, user_id, conversation_id, participant_id,
                                               idempotency=idempotency, limits=self.limits)

    def list_invitations(self, user_id: str, conversation_id: str | None = None, limit: int = 20,
                         offset: int = 0) -> Result:
        return participants.list_invitations(self.db, user_id, conversation_id, limit, offset)

    def respond_invitation(self, user_id: str, invitation_id: str, accept: bool, *,
                           idempotency: Key = None) -> Result:
        return participants.respond_invitation(self.db, user_id, invitation_id, accept, idempotency=idempotency)

    def leave_conversation(self, user_id: str, conversation_id: str, *, idempotency: Key = None) -> Result:
        return participants.leave_conversation(self.db, user_id, conversation_id, idempotency=idempotency)

    def remove_participant(self, user_id: str, conversation_id: str, participant_id: str, *,
                           idempotency: Key = None) -> Result:
        return participants.remove_participant(self.db, user_id, conversation_id, participant_id,
                                               idempotency=idempotency)

    def store_input(self, user_id: str, conversation_id: str, content: str, role: str = "user",
                    metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        return messages.store_input(self.db, user_id, conversation_id, content, role, metadata,
                                    idempotency=idempotency)

    def get_message(self, user_id: str, message_id: str) -> Result:
        return messages.get_message(self.db, user_id, message_id)

    def update_message(self, user_id: str, message_id: str, content: str | None = None,
                       metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        return messages.update_message(self.db, user_id, message_id, content, metadata, idempotency=idempotency)

    def delete_message(self, user_id: str, message_id: str, *, idempotency: Key = None) -> Result:
        return messages.delete_message(self.db, user_id, message_id, idempotency=idempotency)

    def claim_reply(self, user_id: str, message_id: str, *, idempotency: Key = None) -> Result:
        return messages.claim_reply(self.db, user_id, message_id, idempotency=idempotency)

    def list_messages(self, user_id: str, conversation_id: str, after_sequence: int = 0, limit: int = 100,
                      latest: bool = False) -> Result:
        return messages.list_messages(self.db, user_id, conversation_id, after_sequence, limit, latest)

    def search_messages(self, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10,
                        offset: int = 0) -> Result:
        return search.search_messages(self.db, user_id, query, conversation_id, limit, offset)

    def iter_conversation(self, user_id: str, conversation_id: str, page_size: int = 500) -> Iterator[Result]:
        return messages.iter_conversation(self.db, user_id, conversation_id, page_size)

    def iter_history(self, user_id: str, limit: int | None = None, page_size: int = 500) -> Iterator[Result]:
        return messages.iter_history(self.db, user_id, limit, page_size)

    def count_history(self, user_id: str) -> int:
        return messages.count_history(self.db, user_id)

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()
