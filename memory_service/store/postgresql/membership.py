"""Who is in a conversation, inside a write transaction: members, pending invitations, and their bounds
(the same rules as memory_service/store/sqlite/membership.py; the writes that change them hold the
conversation's row lock, so counts cannot race between processes)."""

from __future__ import annotations

import json
from typing import Any

from common.errors import Conflict, InvalidArguments
from memory_service.store.postgresql.database import Connection, one
from memory_service.store.postgresql.users import require_user
from memory_service.store.values import InvitationLimits, new_id, utc_now

INVITATION_COLUMNS = (
    "SELECT i.*, c.workspace_id, c.topic, u.name AS inviter_name FROM conversation_invitations i"
    " JOIN conversations c ON c.id = i.conversation_id JOIN users u ON u.id = i.inviter_id"
)


def invitation_from_row(row: dict[str, Any], status: str = "pending") -> dict[str, Any]:
    """The public shape of an invitation (a row of `INVITATION_COLUMNS`)."""
    return {key: row[key] for key in ("id", "conversation_id", "workspace_id", "topic", "inviter_id",
                                      "inviter_name", "invitee_id")} | {"status": status,
                                                                        "created_at": row["created_at"]}


def members(conn: Connection, conversation_id: str) -> list[str]:
    """The conversation's members in the order they joined, its creator first."""
    row = conn.execute("SELECT participant_ids_json FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    return [] if row is None else list(json.loads(row["participant_ids_json"]))


def pending_invitees(conn: Connection, conversation_id: str) -> list[str]:
    """The users invited to the conversation who have not answered yet, oldest invitation first."""
    rows = conn.execute("SELECT invitee_id FROM conversation_invitations WHERE conversation_id = %s"
                        " ORDER BY created_at, pos", (conversation_id,)).fetchall()
    return [row["invitee_id"] for row in rows]


def _save_members(conn: Connection, conversation_id: str, ids: list[str]) -> None:
    conn.execute("UPDATE conversations SET participant_ids_json = %s, updated_at = %s WHERE id = %s",
                 (json.dumps(ids), utc_now(), conversation_id))


def add_member(conn: Connection, conversation_id: str, user_id: str) -> None:
    """Make the user a member (a no-op for a member)."""
    ids = members(conn, conversation_id)
    conn.execute("INSERT INTO conversation_participants (conversation_id, user_id) VALUES (%s, %s)"
                 " ON CONFLICT DO NOTHING", (conversation_id, user_id))
    if user_id not in ids:
        _save_members(conn, conversation_id, [*ids, user_id])


def drop_member(conn: Connection, conversation_id: str, user_id: str) -> bool:
    """Take the user out of the members; False if they were not one."""
    gone = conn.execute("DELETE FROM conversation_participants WHERE conversation_id = %s AND user_id = %s",
                        (conversation_id, user_id)).rowcount
    ids = members(conn, conversation_id)
    if user_id in ids:
        _save_members(conn, conversation_id, [member for member in ids if member != user_id])
    return bool(gone) or user_id in ids


def withdraw(conn: Connection, conversation_id: str, invitee_id: str) -> bool:
    """Delete the user's pending invitation to the conversation; False if there was none."""
    return bool(conn.execute("DELETE FROM conversation_invitations WHERE conversation_id = %s AND invitee_id = %s",
                             (conversation_id, invitee_id)).rowcount)


def load_invitation(conn: Connection, invitation_id: str) -> dict[str, Any] | None:
    """The invitation's row with its conversation's topic and inviter's name, or None."""
    return conn.execute(f"{INVITATION_COLUMNS} WHERE i.id = %s", (invitation_id,)).fetchone()


def invite(conn: Connection, conversation: dict[str, Any], inviter_id: str, invitee_id: str,
           limits: InvitationLimits) -> dict[str, Any]:
    """A pending invitation of `invitee_id` to the conversation (the existing one if they are invited);
    the same errors as the SQLite backend's `invite`."""
    conversation_id = conversation["id"]
    if invitee_id == conversation["owner_id"]:
        raise InvalidArguments("the workspace owner is always in the conversation; invite someone else")
    require_user(conn, invitee_id, what="participant")
    current = members(conn, conversation_id)
    if invitee_id in current:
        raise Conflict("this user already takes part in the conversation")
    existing = conn.execute(f"{INVITATION_COLUMNS} WHERE i.conversation_id = %s AND i.invitee_id = %s",
                            (conversation_id, invitee_id)).fetchone()
    if existing is not None:
        return invitation_from_row(existing)
    taken = len([member for member in current if member != conversation["owner_id"]]) + len(
        pending_invitees(conn, conversation_id))
    if taken >= limits.max_participants:
        raise InvalidArguments(
            f"a conversation has at most {limits.max_participants} participants, pending invitations included",
            {"limit": "MAX_CONVERSATION_PARTICIPANTS", "max": limits.max_participants})
    waiting = one(conn.execute("SELECT COUNT(*) AS n FROM conversation_invitations WHERE invitee_id = %s",
                               (invitee_id,)))["n"]
    if waiting >= limits.max_pending_per_invitee:
        raise Conflict("this user has too many invitations waiting for an answer",
                       {"limit": "MAX_PENDING_INVITATIONS", "max": limits.max_pending_per_invitee})
    invitation_id = new_id()
    conn.execute("INSERT INTO conversation_invitations (id, conversation_id, invitee_id, inviter_id, created_at)"
                 " VALUES (%s, %s, %s, %s, %s)", (invitation_id, conversation_id, invitee_id, inviter_id, utc_now()))
    row = load_invitation(conn, invitation_id)
    assert row is not None
    return invitation_from_row(row)
