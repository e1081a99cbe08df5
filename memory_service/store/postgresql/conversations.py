"""Conversations: created and managed by the workspace owner, readable by the owner and participants.
A write that changes who takes part locks the conversation's row first (`lock=True`)."""

from __future__ import annotations

import json
from typing import Any

from common.errors import InvalidArguments, NotFound
from memory_service.store import access
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.postgresql.membership import drop_member, invite, members, pending_invitees, withdraw
from memory_service.store.postgresql.users import require_user, unknown
from memory_service.store.postgresql.workspaces import load_workspace, require_owner, takes_part_in
from memory_service.store.values import (
    DEFAULT_LIMITS,
    InvitationLimits,
    encode_metadata,
    new_id,
    page_bounds,
    utc_now,
)

# Ids of every conversation `%(user_id)s` may read; one definition shared by history and search.
READABLE_CONVERSATION_IDS = access.readable_conversation_ids("%(user_id)s")


def conversation_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a conversation."""
    return {"id": row["id"], "workspace_id": row["workspace_id"], "topic": row["topic"],
            "participant_ids": json.loads(row["participant_ids_json"]), "metadata": json.loads(row["metadata_json"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


# What an access check needs beside the conversation's row, fetched in the same statement (one round trip):
# the workspace's owner, whether the acting user exists, and whether they are a member (a join on the
# participants' primary key). Parameters %(user_id)s; the rule itself stays in access.check_conversation.
ACCESS_COLUMNS = ("w.owner_id AS owner_id, EXISTS(SELECT 1 FROM users WHERE id = %(user_id)s) AS user_exists,"
                  " p.user_id IS NOT NULL AS is_member")
ACCESS_JOINS = ("JOIN workspaces w ON w.id = c.workspace_id LEFT JOIN conversation_participants p"
                " ON p.conversation_id = c.id AND p.user_id = %(user_id)s")


def check_access(conn: Connection, user_id: str, row: dict[str, Any] | None, *, owner_only: bool = False,
                 after_lock: bool = False) -> dict[str, Any]:
    """`row` (with ACCESS_COLUMNS) if the user may read its conversation (or own it); NotFound or Forbidden
    otherwise. `after_lock`: the row was locked, and membership is asked again in a statement of its own,
    as the joined answer comes from the snapshot taken before waiting for the lock."""
    if row is None:
        require_user(conn, user_id)
        raise NotFound("conversation not found")
    if not row["user_exists"]:
        raise unknown()
    found = row

    def is_member() -> bool:
        if not after_lock:
            return bool(found["is_member"])
        return conn.execute("SELECT 1 FROM conversation_participants WHERE conversation_id = %s AND user_id = %s",
                            (found["id"], user_id)).fetchone() is not None

    access.check_conversation(user_id, row["owner_id"], is_member, owner_only=owner_only)
    return row


def load_conversation(conn: Connection, user_id: str, conversation_id: str, *, owner_only: bool = False,
                      lock: bool = False) -> dict[str, Any]:
    """The conversation's row plus its workspace's `owner_id`, if the user may read it (or own it); with
    `lock`, the row stays locked until the transaction ends. NotFound or Forbidden otherwise."""
    row = conn.execute(
        f"SELECT c.*, {ACCESS_COLUMNS} FROM conversations c {ACCESS_JOINS} WHERE c.id = %(conversation_id)s"
        + (" FOR UPDATE OF c" if lock else ""), {"user_id": user_id, "conversation_id": conversation_id}).fetchone()
    return check_access(conn, user_id, row, owner_only=owner_only, after_lock=lock)


def _wanted(conn: Connection, owner_id: str, given: list[str] | None) -> list[str]:
    """The given participant ids without repeats or the owner (always in), each an existing user."""
    if given is not None and (not isinstance(given, list) or not all(isinstance(p, str) for p in given)):
        raise InvalidArguments("participant_ids must be a list of user ids")
    ids = [participant for participant in dict.fromkeys(given or []) if participant != owner_id]
    for participant in ids:
        require_user(conn, participant, what="participant")
    return ids


def _load(conn: Connection, conversation_id: str) -> dict[str, Any]:
    return conversation_from_row(one(conn.execute("SELECT * FROM conversations WHERE id = %s",
                                                  (conversation_id,))))


def create_conversation(db: Database, user_id: str, workspace_id: str, topic: str,
                        participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None, *,
                        idempotency: IdempotencyKey | None = None,
                        limits: InvitationLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Create a conversation in a workspace the user owns, the creator its only member and an invitation
    for each of the given ids (returned as `invitations`)."""
    metadata_json = encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: Connection) -> dict[str, Any]:
        require_owner(conn, user_id, workspace_id)
        wanted = _wanted(conn, user_id, participant_ids)
        conversation_id, now = new_id(), utc_now()
        conn.execute(
            "INSERT INTO conversations (id, workspace_id, topic, participant_ids_json, metadata_json,"
            " next_sequence, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 1, %s, %s)",
            (conversation_id, workspace_id, topic, json.dumps([user_id]), metadata_json, now, now))
        conn.execute("INSERT INTO conversation_participants (conversation_id, user_id) VALUES (%s, %s)",
                     (conversation_id, user_id))
        row = load_conversation(conn, user_id, conversation_id)
        invitations = [invite(conn, row, user_id, participant, limits) for participant in wanted]
        return {"conversation": _load(conn, conversation_id), "invitations": invitations}

    return db.write(tx, idempotency=idempotency)


def list_conversations(db: Database, user_id: str, workspace_id: str, limit: int, offset: int) -> dict[str, Any]:
    """One page of the workspace's conversations the user may read, most recently updated first."""
    limit, offset = page_bounds(limit, offset)

    def tx(conn: Connection) -> dict[str, Any]:
        require_user(conn, user_id)
        workspace = load_workspace(conn, workspace_id)
        where, args = "workspace_id = %s", [workspace_id]
        if workspace["owner_id"] != user_id:
            access.check_workspace_read(user_id, workspace["owner_id"],
                                        lambda: takes_part_in(conn, user_id, workspace_id))
            where += f" AND id IN ({access.member_conversation_ids('%s')})"
            args.append(user_id)
        total = one(conn.execute(f"SELECT COUNT(*) AS n FROM conversations WHERE {where}", args))["n"]
        rows = conn.execute(f"SELECT * FROM conversations WHERE {where} ORDER BY updated_at DESC, pos DESC"
                            " LIMIT %s OFFSET %s", [*args, limit, offset]).fetchall()
        return {"conversations": [conversation_from_row(row) for row in rows], "total": total, "limit": limit,
                "offset": offset}

    return db.read(tx)


def get_conversation(db: Database, user_id: str, conversation_id: str) -> dict[str, Any]:
    """The conversation, for the workspace owner or a participant."""
    return {"conversation": conversation_from_row(
        db.lookup(lambda conn: load_conversation(conn, user_id, conversation_id)))}


def update_conversation(db: Database, user_id: str, conversation_id: str, topic: str | None = None,
                        participant_ids: list[str] | None = None, metadata: dict[str, Any] | None = None, *,
                        idempotency: IdempotencyKey | None = None,
                        limits: InvitationLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Change the given fields, owner only; `participant_ids` is who should take part (as on SQLite)."""
    metadata_json = None if metadata is None else encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: Connection) -> dict[str, Any]:
        row = load_conversation(conn, user_id, conversation_id, owner_only=True, lock=True)
        result: dict[str, Any] = {}
        if participant_ids is not None:
            wanted = _wanted(conn, row["owner_id"], participant_ids)
            for gone in [*members(conn, conversation_id), *pending_invitees(conn, conversation_id)]:
                if gone != row["owner_id"] and gone not in wanted:
                    drop_member(conn, conversation_id, gone)
                    withdraw(conn, conversation_id, gone)
            current = members(conn, conversation_id)
            result["invitations"] = [invite(conn, row, user_id, participant, limits)
                                     for participant in wanted if participant not in current]
        conn.execute("UPDATE conversations SET topic = COALESCE(%s, topic),"
                     " metadata_json = COALESCE(%s, metadata_json), updated_at = %s WHERE id = %s",
                     (topic, metadata_json, utc_now(), conversation_id))
        return {"conversation": _load(conn, conversation_id), **result}

    return db.write(tx, idempotency=idempotency)


def delete_conversation(db: Database, user_id: str, conversation_id: str, *,
                        idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Delete the conversation with its messages; only the workspace owner may."""

    def tx(conn: Connection) -> dict[str, Any]:
        load_conversation(conn, user_id, conversation_id, owner_only=True)
        conn.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))
        return {"deleted": True, "id": conversation_id}

    return db.write(tx, idempotency=idempotency)
