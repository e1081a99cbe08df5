"""Who may read and change what, written once for every backend.

Two forms, because backends check access in two ways:

- single objects: a backend loads the object's owner, sender and the caller's membership and asks the
  predicates below (`check_*`), which raise the errors callers see. Membership is passed as a function so
  the owner, the common case, costs no membership lookup.
- lists, history and search: the set of conversations a user may read is a sub-select a backend puts in
  its own query. It is portable SQL over the tables every backend has (`conversations`, `workspaces`,
  `conversation_participants`), parameterised by the placeholder the driver uses for the user id
  (`:user_id` for sqlite3, `%(user_id)s` for psycopg), so a second backend reuses the rule instead of
  copying it.

The rules: the workspace owner reads and manages every conversation in it; a member (someone who accepted
an invitation) reads and posts; a workspace is readable by its owner and by members of any of its
conversations; a message is changed by its sender or the workspace owner.
"""

from __future__ import annotations

from collections.abc import Callable

from common.errors import Forbidden

OWNER_ONLY = "only the workspace owner may do this"


def check_conversation(user_id: str, owner_id: str, is_member: Callable[[], bool], *,
                       owner_only: bool = False) -> None:
    """Raise Forbidden unless the user owns the conversation's workspace or (unless `owner_only`) is a
    member of the conversation."""
    if owner_id == user_id:
        return
    if owner_only:
        raise Forbidden(OWNER_ONLY)
    if not is_member():
        raise Forbidden("no access to this conversation")


def check_workspace_owner(user_id: str, owner_id: str) -> None:
    """Raise Forbidden unless the user owns the workspace."""
    if owner_id != user_id:
        raise Forbidden(OWNER_ONLY)


def check_workspace_read(user_id: str, owner_id: str, takes_part: Callable[[], bool]) -> None:
    """Raise Forbidden unless the user owns the workspace or is a member of a conversation in it."""
    if owner_id != user_id and not takes_part():
        raise Forbidden("no access to this workspace")


def check_message_change(user_id: str, sender_id: str, owner_id: str) -> None:
    """Raise Forbidden unless the user sent the message or owns its conversation's workspace (reading the
    conversation is checked first, with `check_conversation`)."""
    if user_id not in (sender_id, owner_id):
        raise Forbidden("only the sender or the workspace owner may change this message")


def readable_conversation_ids(user: str) -> str:
    """A sub-select of the ids of every conversation the user whose id is the placeholder `user` may read."""
    return (f"SELECT c.id FROM conversations c JOIN workspaces w ON w.id = c.workspace_id WHERE w.owner_id = {user}"
            f" UNION SELECT conversation_id FROM conversation_participants WHERE user_id = {user}")


def member_conversation_ids(user: str) -> str:
    """A sub-select of the ids of the conversations the user (placeholder `user`) is a member of."""
    return f"SELECT conversation_id FROM conversation_participants WHERE user_id = {user}"
