"""Joining and leaving a conversation (the same rules as the SQLite backend's participants.py): the owner
invites, the invitee accepts or declines, a participant leaves, the owner removes."""

from __future__ import annotations

from typing import Any

from common.errors import Conflict, NotFound
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.postgresql.conversations import conversation_from_row, load_conversation
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.postgresql.membership import (
    INVITATION_COLUMNS,
    add_member,
    drop_member,
    invitation_from_row,
    invite,
    load_invitation,
    withdraw,
)
from memory_service.store.postgresql.users import require_user
from memory_service.store.values import DEFAULT_LIMITS, InvitationLimits, page_bounds


def invite_participant(db: Database, user_id: str, conversation_id: str, participant_id: str, *,
                       idempotency: IdempotencyKey | None = None,
                       limits: InvitationLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Invite a user into a conversation of a workspace the caller owns; they join only if they accept."""

    def tx(conn: Connection) -> dict[str, Any]:
        row = load_conversation(conn, user_id, conversation_id, owner_only=True, lock=True)
        return {"invitation": invite(conn, row, user_id, participant_id, limits)}

    return db.write(tx, idempotency=idempotency)


def list_invitations(db: Database, user_id: str, conversation_id: str | None = None, limit: int = 20,
                     offset: int = 0) -> dict[str, Any]:
    """One page of the invitations waiting for the user's answer, newest first; with `conversation_id`,
    the pending invitations of that conversation instead (for its workspace owner)."""
    limit, offset = page_bounds(limit, offset)

    def tx(conn: Connection) -> dict[str, Any]:
        if conversation_id is None:
            require_user(conn, user_id)
            where, args = "i.invitee_id = %s", [user_id]
        else:
            load_conversation(conn, user_id, conversation_id, owner_only=True)
            where, args = "i.conversation_id = %s", [conversation_id]
        total = one(conn.execute(f"SELECT COUNT(*) AS n FROM conversation_invitations i WHERE {where}",
                                 args))["n"]
        rows = conn.execute(f"{INVITATION_COLUMNS} WHERE {where} ORDER BY i.created_at DESC, i.pos DESC"
                            " LIMIT %s OFFSET %s", [*args, limit, offset]).fetchall()
        return {"invitations": [invitation_from_row(row) for row in rows], "total": total, "limit": limit,
                "offset": offset}

    return db.read(tx)


def respond_invitation(db: Database, user_id: str, invitation_id: str, accept: bool, *,
                       idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Accept (join) or decline an invitation addressed to the user, using it up; someone else's is
    reported exactly like a missing one."""

    def tx(conn: Connection) -> dict[str, Any]:
        require_user(conn, user_id)
        row = load_invitation(conn, invitation_id)
        if row is None or row["invitee_id"] != user_id:
            raise NotFound("invitation not found", {"object": "invitation"})
        conn.execute("SELECT 1 FROM conversations WHERE id = %s FOR UPDATE", (row["conversation_id"],))
        if not conn.execute("DELETE FROM conversation_invitations WHERE id = %s", (invitation_id,)).rowcount:
            raise NotFound("invitation not found", {"object": "invitation"})  # answered meanwhile
        if not accept:
            return {"invitation": invitation_from_row(row, "declined")}
        add_member(conn, row["conversation_id"], user_id)
        conversation = one(conn.execute("SELECT * FROM conversations WHERE id = %s", (row["conversation_id"],)))
        return {"invitation": invitation_from_row(row, "accepted"), "conversation": conversation_from_row(conversation)}

    return db.write(tx, idempotency=idempotency)


def remove_participant(db: Database, user_id: str, conversation_id: str, participant_id: str, *,
                       idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Take a participant out of the conversation, or withdraw their pending invitation (a participant may
    remove themselves; anyone else only the workspace owner may; the owner cannot leave)."""

    def tx(conn: Connection) -> dict[str, Any]:
        leaving = participant_id == user_id
        row = load_conversation(conn, user_id, conversation_id, owner_only=not leaving, lock=True)
        if participant_id == row["owner_id"]:
            raise Conflict("the workspace owner cannot leave the conversation; delete it instead")
        was_member = drop_member(conn, conversation_id, participant_id)
        if not withdraw(conn, conversation_id, participant_id) and not was_member:
            raise NotFound("participant not found", {"object": "participant"})
        return {"removed": True, "conversation_id": conversation_id, "user_id": participant_id,
                "was": "participant" if was_member else "invited"}

    return db.write(tx, idempotency=idempotency)


def leave_conversation(db: Database, user_id: str, conversation_id: str, *,
                       idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Stop taking part in the conversation: from now on the user can neither read nor post in it."""
    return remove_participant(db, user_id, conversation_id, user_id, idempotency=idempotency)
