"""Joining and leaving a conversation: the owner invites, the invitee accepts or declines, a participant
leaves, the owner removes. Nobody becomes a participant without saying yes, and anyone can stop being one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from common.errors import Conflict, NotFound
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.sqlite.conversations import conversation_from_row, load_conversation
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite.membership import (
    INVITATION_COLUMNS,
    add_member,
    drop_member,
    invitation_from_row,
    invite,
    load_invitation,
    withdraw,
)
from memory_service.store.sqlite.users import require_user
from memory_service.store.values import DEFAULT_LIMITS, InvitationLimits, page_bounds


def invite_participant(
    db: Database, user_id: str, conversation_id: str, participant_id: str, *,
    idempotency: IdempotencyKey | None = None, limits: InvitationLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Invite a user into a conversation of a workspace the caller owns; they join only if they accept.

    Inviting someone already invited returns their pending invitation.
    """

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        row = load_conversation(conn, user_id, conversation_id, owner_only=True)
        return {"invitation": invite(conn, row, user_id, participant_id, limits)}

    return db.write(tx, idempotency=idempotency)


def list_invitations(
    db: Database, user_id: str, conversation_id: str | None = None, limit: int = 20, offset: int = 0
) -> dict[str, Any]:
    """One page of the invitations waiting for the user's answer, newest first; with `conversation_id`,
    the pending invitations of that conversation instead (for its workspace owner)."""
    limit, offset = page_bounds(limit, offset)

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        if conversation_id is None:
            require_user(conn, user_id)
            where, args = "i.invitee_id = ?", [user_id]
        else:
            load_conversation(conn, user_id, conversation_id, owner_only=True)
            where, args = "i.conversation_id = ?", [conversation_id]
        total = conn.execute(f"SELECT COUNT(*) FROM conversation_invitations i WHERE {where}", args).fetchone()[0]
        rows = conn.execute(f"{INVITATION_COLUMNS} WHERE {where} ORDER BY i.created_at DESC, i.rowid DESC"
                            " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return {"invitations": [invitation_from_row(row) for row in rows], "total": total, "limit": limit,
                "offset": offset}

    return db.read(tx)


def respond_invitation(
    db: Database, user_id: str, invitation_id: str, accept: bool, *, idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Accept (join the conversation) or decline an invitation addressed to the user; either way it is used
    up. Someone else's invitation is reported exactly like a missing one."""

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        require_user(conn, user_id)
        row = load_invitation(conn, invitation_id)
        if row is None or row["invitee_id"] != user_id:
            raise NotFound("invitation not found", {"object": "invitation"})
        conn.execute("DELETE FROM conversation_invitations WHERE id = ?", (invitation_id,))
        if not accept:
            return {"invitation": invitation_from_row(row, "declined")}
        add_member(conn, row["conversation_id"], user_id)
        conversation = conn.execute("SELECT * FROM conversations WHERE id = ?", (row["conversation_id"],)).fetchone()
        return {"invitation": invitation_from_row(row, "accepted"), "conversation": conversation_from_row(conversation)}

    return db.write(tx, idempotency=idempotency)


def remove_participant(
    db: Database, user_id: str, conversation_id: str, participant_id: str, *,
    idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Take a participant out of the conversation, or withdraw their pending invitation.

    A participant may remove themselves (leave); anyone else only the workspace owner may remove. The owner
    cannot leave: their workspace holds the conversation, so they delete it instead.
    """

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        leaving = participant_id == user_id
        row = load_conversation(conn, user_id, conversation_id, owner_only=not leaving)
        if participant_id == row["owner_id"]:
            raise Conflict("the workspace owner cannot leave the conversation; delete it instead")
        was_member = drop_member(conn, conversation_id, participant_id)
        if not withdraw(conn, conversation_id, participant_id) and not was_member:
            raise NotFound("participant not found", {"object": "participant"})
        return {"removed": True, "conversation_id": conversation_id, "user_id": participant_id,
                "was": "participant" if was_member else "invited"}

    return db.write(tx, idempotency=idempotency)


def leave_conversation(
    db: Database, user_id: str, conversation_id: str, *, idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Stop taking part in the conversation: from now on the user can neither read nor post in it."""
    return remove_participant(db, user_id, conversation_id, user_id, idempotency=idempotency)
