"""The storage interface of the Memory Service: what a backend (SQLite today) must do.

One operation per tool, plus the iterators the streamed resources read. Every operation speaks the
domain: ids, strings, plain dicts in the public shapes of docs/API.md, and an `IdempotencyKey`. A mutating
operation given a key stores it in the same transaction as its write, and a later call with that key
replays the stored result (`as_replay`) instead of writing again; the same key for another request is a
Conflict. Access rules come from `memory_service.store.access`; errors are `common.errors` (NotFound with
`details.object` "user" for an unknown acting user, Forbidden, Conflict, InvalidArguments, PayloadTooLarge).
Passwords arrive hashed: the store keeps and returns hashes and never checks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.vectors import VectorRow, WorkItem

Result = dict[str, Any]
Key = IdempotencyKey | None


class StoreUnavailable(Exception):
    """The backend cannot open its database (a path that is a directory, a refused connection); the
    message says why in one line."""


class Store(ABC):
    """A Memory backend. Implement every member; `open_store` picks the backend from DATABASE_URL."""

    # --- users ---------------------------------------------------------------------------------------------
    @abstractmethod
    def create_user(self, email: str, name: str, password_hash: str, *, idempotency: Key = None) -> Result:
        """Store a user under an already normalised email; `{"user"}`, Conflict if the email is taken."""

    @abstractmethod
    def find_login(self, email: str) -> tuple[Result, str] | None:
        """The public user and stored password hash for a normalised email, or None."""

    @abstractmethod
    def get_user(self, user_id: str) -> Result:
        """`{"user"}` for this id, or NotFound."""

    # --- workspaces ----------------------------------------------------------------------------------------
    @abstractmethod
    def create_workspace(self, user_id: str, name: str, description: str = "",
                         metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        """Store a workspace owned by the user; `{"workspace"}`."""

    @abstractmethod
    def list_workspaces(self, user_id: str, limit: int, offset: int) -> Result:
        """A page of the user's own workspaces, newest first: `{"workspaces", "total", "limit", "offset"}`."""

    @abstractmethod
    def get_workspace(self, user_id: str, workspace_id: str) -> Result:
        """`{"workspace"}` for its owner or a member of a conversation in it."""

    @abstractmethod
    def update_workspace(self, user_id: str, workspace_id: str, name: str | None = None,
                         description: str | None = None, metadata: dict[str, Any] | None = None, *,
                         idempotency: Key = None) -> Result:
        """Change the given fields (None keeps one), owner only; `{"workspace"}`."""

    @abstractmethod
    def delete_workspace(self, user_id: str, workspace_id: str, *, idempotency: Key = None) -> Result:
        """Delete the workspace with everything in it, owner only; `{"deleted": true, "id"}`."""

    # --- conversations -------------------------------------------------------------------------------------
    @abstractmethod
    def create_conversation(self, user_id: str, workspace_id: str, topic: str,
                            participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            *, idempotency: Key = None) -> Result:
        """Start a conversation in a workspace the user owns, inviting the named users;
        `{"conversation", "invitations"}`."""

    @abstractmethod
    def list_conversations(self, user_id: str, workspace_id: str, limit: int, offset: int) -> Result:
        """A page of the workspace's conversations the user may read, most recently updated first."""

    @abstractmethod
    def get_conversation(self, user_id: str, conversation_id: str) -> Result:
        """`{"conversation"}` for the workspace owner or a member."""

    @abstractmethod
    def update_conversation(self, user_id: str, conversation_id: str, topic: str | None = None,
                            participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            *, idempotency: Key = None) -> Result:
        """Change the given fields, owner only; `participant_ids` is who should take part (members left out
        are removed, invitations left out withdrawn, the rest invited)."""

    @abstractmethod
    def delete_conversation(self, user_id: str, conversation_id: str, *, idempotency: Key = None) -> Result:
        """Delete the conversation with its messages, owner only; `{"deleted": true, "id"}`."""

    # --- participants --------------------------------------------------------------------------------------
    @abstractmethod
    def invite_participant(self, user_id: str, conversation_id: str, participant_id: str, *,
                           idempotency: Key = None) -> Result:
        """Invite a user into a conversation, owner only; `{"invitation"}` (the pending one if invited)."""

    @abstractmethod
    def list_invitations(self, user_id: str, conversation_id: str | None = None, limit: int = 20,
                         offset: int = 0) -> Result:
        """A page of the invitations awaiting the user, or of one conversation's (its owner only)."""

    @abstractmethod
    def respond_invitation(self, user_id: str, invitation_id: str, accept: bool, *,
                           idempotency: Key = None) -> Result:
        """Accept (join) or decline the user's own invitation, using it up; someone else's is NotFound."""

    @abstractmethod
    def leave_conversation(self, user_id: str, conversation_id: str, *, idempotency: Key = None) -> Result:
        """Stop the user being a member of the conversation."""

    @abstractmethod
    def remove_participant(self, user_id: str, conversation_id: str, participant_id: str, *,
                           idempotency: Key = None) -> Result:
        """Remove a member or withdraw an invitation (the owner; or a member removing themselves)."""

    # --- messages ------------------------------------------------------------------------------------------
    @abstractmethod
    def store_input(self, user_id: str, conversation_id: str, content: str, role: str = "user",
                    metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        """Append a message with the conversation's next gap-free sequence; the result has
        `"replayed": false`, and its replay `true`."""

    @abstractmethod
    def get_message(self, user_id: str, message_id: str) -> Result:
        """`{"message"}` for anyone who may read its conversation."""

    @abstractmethod
    def update_message(self, user_id: str, message_id: str, content: str | None = None,
                       metadata: dict[str, Any] | None = None, *, idempotency: Key = None) -> Result:
        """Change content and/or metadata, sender or workspace owner only; the search index follows."""

    @abstractmethod
    def delete_message(self, user_id: str, message_id: str, *, idempotency: Key = None) -> Result:
        """Delete the message (its sequence is never reused) with its reply claim and replay copies."""

    @abstractmethod
    def claim_reply(self, user_id: str, message_id: str, *, idempotency: Key = None) -> Result:
        """Record that a reply to the message has started: `{"claimed", "message_id"}`, claimed true for
        exactly one claim per message ever, across processes; read access as for `get_message`."""

    @abstractmethod
    def list_messages(self, user_id: str, conversation_id: str, after_sequence: int = 0, limit: int = 100,
                      latest: bool = False) -> Result:
        """A chronological page after a sequence (the last `limit` with `latest`), bounded in bytes too."""

    @abstractmethod
    def messages_around(self, user_id: str, message_ids: list[str], distance: int) -> list[Result]:
        """The messages at most `distance` places before or after each of `message_ids` in its conversation
        (those messages included), in any order; only conversations the user may read."""

    @abstractmethod
    def search_messages(self, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10,
                        offset: int = 0, match: str = "words") -> Result:
        """Ranked full-text search over what the user may read, the user's text never parsed as query
        syntax; results carry a positive `score`, statistics from the user's own messages only. `match`
        is "words" (exact words) or "stems" (each word's stem matches the others of that stem)."""

    @abstractmethod
    def iter_conversation(self, user_id: str, conversation_id: str, page_size: int = 500) -> Iterator[Result]:
        """Every message of the conversation in order, read `page_size` at a time; access checked before returning."""

    @abstractmethod
    def iter_history(self, user_id: str, limit: int | None = None, page_size: int = 500) -> Iterator[Result]:
        """At most `limit` messages the user may read, newest stored first, read `page_size` at a time; the user
        is checked before returning."""

    @abstractmethod
    def count_history(self, user_id: str) -> int:
        """How many messages the user may read across all their conversations."""

    # --- vectors (store/vectors.py) -------------------------------------------------------------------------
    @abstractmethod
    def claim_embedding_work(self, limit: int, lease_seconds: float) -> list[WorkItem]:
        """Lease up to `limit` queued messages that no one holds a lease on, oldest first."""

    @abstractmethod
    def store_embeddings(self, model: str, items: list[tuple[int, str, bytes]]) -> Result:
        """Store `(ticket, message_id, vector bytes)` for tickets still queued, replacing each message's
        vector, and dequeue them: `{"stored", "skipped"}`."""

    @abstractmethod
    def queue_missing_embeddings(self, model: str) -> int:
        """Queue every message without a vector of `model` (a backfill); how many were queued."""

    @abstractmethod
    def embedding_backlog(self) -> int:
        """How many messages wait for a vector."""

    @abstractmethod
    def vector_versions(self, user_id: str, model: str,
                        conversation_id: str | None = None) -> dict[str, tuple[int, int]]:
        """For each conversation the user may read (or the one named) that has vectors of `model`: the seq
        of the newest and how many there are. NotFound/Forbidden as for `search_messages`."""

    @abstractmethod
    def vectors_after(self, conversation_id: str, model: str, after: int) -> list[VectorRow]:
        """A conversation's `model` vectors written after seq `after`, in seq order. No access check: only
        for conversations `vector_versions` returned to the same caller."""

    @abstractmethod
    def readable_messages(self, user_id: str, message_ids: list[str]) -> list[Result]:
        """Those of the messages that exist and the user may read, in any order."""

    # --- lifecycle -----------------------------------------------------------------------------------------
    @abstractmethod
    def ping(self) -> bool:
        """True when the database answers now; never raises."""

    @abstractmethod
    def size_bytes(self) -> int:
        """How many bytes the database takes on disk now, cheaply enough to ask at every metrics scrape;
        raises (any exception) when that cannot be read."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; calls after close fail."""
