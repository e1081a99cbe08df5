"""Who is in a conversation, inside a write transaction: members, pending invitations, and their bounds.

A member is in `conversation_participants` (and in the conversation's `participant_ids`, creator first);
an invited user is only in `conversation_invitations` until they accept. Access rules read the members
alone, so an invitation gives nothing until its invitee says yes.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from common.errors import Conflict, InvalidArguments
from memory_service.store.sqlite.users import require_user
from memory_service.store.values import InvitationLimits, new_id, utc_now

INVITATION_COLUMNS = (
    "SELECT i.*, c.workspace_id, c.topic, u.name AS inviter_name FROM conversation_invitations i"
    " JOIN conversations c ON c.id = i.conversation_id JOIN users u ON u.id = i.inviter_id"
)


def invitation_from_row(row: sqlite3.Row, status: str = "pending") -> dict[str, Any]:
    """The public shape of an invitation (a row of `INVITATION_COLUMNS`)."""
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "workspace_id": row["workspace_id"],
        "topic": row["topic"],
        "inviter_id": row["inviter_id"],
        "inviter_name": row["inviter_name"],
        "invitee_id": row["invitee_id"],
        "status": status,
        "created_at": row["created_at"],
    }


def members(conn: sqlite3.Connection, conversation_id: str) -> list[str]:
    """The conversation's members in the order they joined, its creator first."""
    row = conn.execute("SELECT participant_ids_json FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    return [] if row is None else list(json.loads(row["participant_ids_json"]))


def pending_invitees(conn: sqlite3.Connection, conversation_id: str) -> list[str]:
    """The users invited to the conversation who have not answered yet, oldest invitation first."""
    rows = conn.execute(
        "SELECT invitee_id FROM conversation_invitations WHERE conversation_id = ? ORDER BY created_at, rowid",
        (conversation_id,),
    ).fetchall()
    return [row["invitee_id"] for row in rows]


def _save_members(conn: sqlite3.Connection, conversation_id: str, ids: list[str]) -> None:
    conn.execute("UPDATE conversations SET participant_ids_json = ?, updated_at = ? WHERE id = ?",
                 (json.dumps(ids), utc_now(), conversation_id))


def add_member(conn: sqlite3.Connection, conversation_id: str, user_id: str) -> None:
    """Make the user a member (a no-op for a member)."""
    ids = members(conn, conversation_id)
    conn.execute("INSERT OR IGNORE INTO conversation_participants (conversation_id, user_id) VALUES (?, ?)",
                 (conversation_id, user_id))
    if user_id not in ids:
        _save_members(conn, conversation_id, [*ids, user_id])


def drop_member(conn: sqlite3.Connection, conversation_id: str, user_id: str) -> bool:
    """Take the user out of the members; False if they were not one."""
    gone = conn.execute("DELETE FROM conversation_participants WHERE conversation_id = ? AND user_id = ?",
                        (conversation_id, user_id)).rowcount
    ids = members(conn, conversation_id)
    if user_id in ids:
        _save_members(conn, conversation_id, [member for member in ids if member != user_id])
    return bool(gone) or user_id in ids


def withdraw(conn: sqlite3.Connection, conversation_id: str, invitee_id: str) -> bool:
    """Delete the user's pending invitation to the conversation; False if there was none."""
    return bool(conn.execute("DELETE FROM conversation_invitations WHERE conversation_id = ? AND invitee_id = ?",
                             (conversation_id, invitee_id)).rowcount)


def load_invitation(conn: sqlite3.Connection, invitation_id: str) -> sqlite3.Row | None:
    """The invitation's row with its conversation's topic and inviter's name, or None."""
    return conn.execute(f"{INVITATION_COLUMNS} WHERE i.id = ?", (invitation_id,)).fetchone()


def invite(conn: sqlite3.Connection, conversation: sqlite3.Row, inviter_id: str, invitee_id: str,
           limits: InvitationLimits) -> dict[str, Any]:
    """A pending invitation of `invitee_id` to the conversation (the existing one if they are invited).

    The caller has checked that `inviter_id` may invite. Inviting the workspace owner or a member is an
    error, as is an unknown invitee (NotFound, `details.object` = "participant") or a full conversation
    or inbox.
    """
    conversation_id = conversation["id"]
    if invitee_id == conversation["owner_id"]:
        raise InvalidArguments("the workspace owner is always in the conversation; invite someone else")
    require_user(conn, invitee_id, what="participant")
    current = members(conn, conversation_id)
    if invitee_id in current:
        raise Conflict("this user already takes part in the conversation")
    existing = conn.execute(f"{INVITATION_COLUMNS} WHERE i.conversation_id = ? AND i.invitee_id = ?",
                            (conversation_id, invitee_id)).fetchone()
    if existing is not None:
        return invitation_from_row(existing)
    taken = len([member for member in current if member != conversation["owner_id"]]) + len(
        pending_invitees(conn, conversation_id))
    if taken >= limits.max_participants:
        raise InvalidArguments(
            f"a conversation has at most {limits.max_participants} participants, pending invitations included",
            {"limit": "MAX_CONVERSATION_PARTICIPANTS", "max": limits.max_participants})
    waiting = conn.execute("SELECT COUNT(*) FROM conversation_invitations WHERE invitee_id = ?",
                           (invitee_id,)).fetchone()[0]
    if waiting >= limits.max_pending_per_invitee:
        # Not a 429: waiting does not help by itself; the invitee has to answer some invitations first.
        raise Conflict("this user has too many invitations waiting for an answer",
                       {"limit": "MAX_PENDING_INVITATIONS", "max": limits.max_pending_per_invitee})
    invitation_id = new_id()
    conn.execute(
        "INSERT INTO conversation_invitations (id, conversation_id, invitee_id, inviter_id, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (invitation_id, conversation_id, invitee_id, inviter_id, utc_now()),
    )
    row = load_invitation(conn, invitation_id)
    assert row is not None
    return invitation_from_row(row)
