"""Core's view of the Memory Service: the only module in Core that knows Memory's tool names.

Calls made for a client's request hide another user's objects as 404 (`hide_foreign`); the reply's own
calls (`store_reply`, `recent_turns`, `claim_reply`, `check_access`) leave Memory's errors as they are,
since their codes go to the reply's `error` event or to the stream's access check.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from common.client import ServiceClient
from core_app.facade import Facade
from core_app.responses import (
    ConversationBody,
    ConversationPage,
    Deleted,
    InvitationBody,
    InvitationPage,
    Message,
    MessagePage,
    Removal,
    StoredInput,
    User,
    WorkspaceBody,
    WorkspacePage,
)


class Claim(NamedTuple):
    """Memory's answer to a claim: won or not, and (when won and asked for) the turns before the message."""

    claimed: bool
    recent: list[dict[str, Any]]


class Memory(Facade):
    """Typed calls to the Memory Service on behalf of Core's users."""

    def __init__(self, client: ServiceClient) -> None:
        super().__init__(client)

    # --- users --------------------------------------------------------------------------------------

    def create_user(self, email: str, name: str, password: str) -> User:
        """Register a user; 409 when the email is taken."""
        created = self.client.call_tool("create_user", {"email": email, "name": name, "password": password})
        return User.model_validate(created["user"])

    def authenticate(self, email: str, password: str) -> User:
        """The user with this email and password; 401 `invalid_credentials` otherwise."""
        found = self.client.call_tool("authenticate_user", {"email": email, "password": password})
        return User.model_validate(found["user"])

    def get_user(self, user_id: str) -> User:
        """The user as stored; `NotFound` when they were deleted."""
        return User.model_validate(self.client.call_tool("get_user", {"user_id": user_id})["user"])

    # --- workspaces ---------------------------------------------------------------------------------

    def create_workspace(self, user_id: str, name: str, description: str,
                         metadata: dict[str, Any]) -> WorkspaceBody:
        """A new workspace owned by the user."""
        return WorkspaceBody.model_validate(self._for_user(
            "create_workspace", user_id, "workspace", name=name, description=description, metadata=metadata))

    def list_workspaces(self, user_id: str, limit: int, offset: int) -> WorkspacePage:
        """A page of the user's own workspaces, newest first."""
        return WorkspacePage.model_validate(self._for_user(
            "list_workspaces", user_id, "workspace", limit=limit, offset=offset))

    def get_workspace(self, user_id: str, workspace_id: str) -> WorkspaceBody:
        """A workspace the user may read."""
        return WorkspaceBody.model_validate(self._for_user(
            "get_workspace", user_id, "workspace", workspace_id=workspace_id))

    def update_workspace(self, user_id: str, workspace_id: str, **changes: Any) -> WorkspaceBody:
        """Change any of `name`, `description`, `metadata` of a workspace the user owns."""
        return WorkspaceBody.model_validate(self._for_user(
            "update_workspace", user_id, "workspace", workspace_id=workspace_id, **changes))

    def delete_workspace(self, user_id: str, workspace_id: str) -> Deleted:
        """Delete a workspace the user owns, with its conversations and messages."""
        return Deleted.model_validate(self._for_user(
            "delete_workspace", user_id, "workspace", workspace_id=workspace_id))

    # --- conversations ------------------------------------------------------------------------------

    def create_conversation(self, user_id: str, workspace_id: str, topic: str, participant_ids: list[str],
                            metadata: dict[str, Any]) -> ConversationBody:
        """A new conversation in a workspace the user owns; each of `participant_ids` is invited."""
        return ConversationBody.model_validate(self._for_user(
            "create_conversation", user_id, "workspace", workspace_id=workspace_id, topic=topic,
            participant_ids=participant_ids, metadata=metadata))

    def list_conversations(self, user_id: str, workspace_id: str, limit: int, offset: int) -> ConversationPage:
        """A page of the workspace's conversations the user may read."""
        return ConversationPage.model_validate(self._for_user(
            "list_conversations", user_id, "workspace", workspace_id=workspace_id, limit=limit, offset=offset))

    def get_conversation(self, user_id: str, conversation_id: str) -> ConversationBody:
        """A conversation the user may read; 404 for one that is missing or not theirs."""
        return ConversationBody.model_validate(self._for_user(
            "get_conversation", user_id, "conversation", conversation_id=conversation_id))

    def check_access(self, user_id: str, conversation_id: str) -> None:
        """Return when the user may read the conversation; Memory's refusal (403, 404) unchanged otherwise."""
        self.client.call_tool("get_conversation", {"user_id": user_id, "conversation_id": conversation_id})

    def update_conversation(self, user_id: str, conversation_id: str, **changes: Any) -> ConversationBody:
        """Change any of `topic`, `participant_ids`, `metadata` of a conversation the user owns."""
        return ConversationBody.model_validate(self._for_user(
            "update_conversation", user_id, "conversation", conversation_id=conversation_id, **changes))

    def delete_conversation(self, user_id: str, conversation_id: str) -> Deleted:
        """Delete a conversation the user owns, with its messages."""
        return Deleted.model_validate(self._for_user(
            "delete_conversation", user_id, "conversation", conversation_id=conversation_id))

    # --- participants and invitations ---------------------------------------------------------------

    def invite(self, user_id: str, conversation_id: str, participant_id: str) -> InvitationBody:
        """Invite a user to a conversation the caller owns (the pending invitation if already invited)."""
        return InvitationBody.model_validate(self._for_user(
            "invite_participant", user_id, "conversation", conversation_id=conversation_id,
            participant_id=participant_id))

    def leave(self, user_id: str, conversation_id: str) -> Removal:
        """The user stops taking part in the conversation."""
        return Removal.model_validate(self._for_user(
            "leave_conversation", user_id, "conversation", conversation_id=conversation_id))

    def remove_participant(self, user_id: str, conversation_id: str, participant_id: str) -> Removal:
        """Remove a participant, or withdraw an invitation, from a conversation the user owns."""
        return Removal.model_validate(self._for_user(
            "remove_participant", user_id, "conversation", conversation_id=conversation_id,
            participant_id=participant_id))

    def list_invitations(self, user_id: str, limit: int, offset: int,
                         conversation_id: str | None = None) -> InvitationPage:
        """The invitations waiting for the user's answer, or (owner only) one conversation's pending ones."""
        scope = {} if conversation_id is None else {"conversation_id": conversation_id}
        return InvitationPage.model_validate(self._for_user(
            "list_invitations", user_id, "conversation", limit=limit, offset=offset, **scope))

    def respond_invitation(self, user_id: str, invitation_id: str, accept: bool) -> InvitationBody:
        """Accept or decline an invitation addressed to the user."""
        return InvitationBody.model_validate(self._for_user(
            "respond_invitation", user_id, "invitation", invitation_id=invitation_id, accept=accept))

    # --- messages -----------------------------------------------------------------------------------

    def store_input(self, user_id: str, conversation_id: str, content: str, metadata: dict[str, Any],
                    idempotency_key: str | None = None) -> StoredInput:
        """Store the user's message durably; with a key, a repeat replays the first write (`replayed`)."""
        return StoredInput.model_validate(self._for_user(
            "store_input", user_id, "conversation", idempotency_key=idempotency_key,
            input_data={"conversation_id": conversation_id, "content": content, "role": "user",
                        "metadata": metadata}))

    def list_messages(self, user_id: str, conversation_id: str, after_sequence: int, limit: int) -> MessagePage:
        """A page of the conversation's messages in order, after `after_sequence`."""
        return MessagePage.model_validate(self._for_user(
            "list_messages", user_id, "conversation", conversation_id=conversation_id,
            after_sequence=after_sequence, limit=limit))

    def recent_turns(self, user_id: str, conversation_id: str, limit: int) -> list[dict[str, Any]]:
        """The conversation's `limit` latest messages, in order."""
        return list(self.client.call_tool("list_messages", {
            "user_id": user_id, "conversation_id": conversation_id, "limit": limit, "latest": True})["messages"])

    def store_reply(self, user_id: str, conversation_id: str, content: str, metadata: dict[str, Any],
                    idempotency_key: str) -> Message:
        """Store the assistant's reply to a message of the user's."""
        stored = self.client.call_tool("store_input", {"user_id": user_id, "input_data": {
            "conversation_id": conversation_id, "content": content, "role": "assistant", "metadata": metadata}},
            idempotency_key=idempotency_key)
        return Message.model_validate(stored["message"])

    def claim_reply(self, user_id: str, message_id: str, recent: int = 0) -> Claim:
        """Whether this call is the one, of every Core process, that replies to the message (true once per
        message ever; Memory replays the answer to a retried call, so a transport retry keeps a claim it
        won), and for a won claim the `recent` messages before it."""
        arguments: dict[str, Any] = {"user_id": user_id, "message_id": message_id}
        if recent:
            arguments["recent"] = recent
        answer = self.client.call_tool("claim_reply", arguments)
        return Claim(bool(answer["claimed"]), list(answer.get("recent", [])))
