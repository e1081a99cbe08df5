"""Workspaces: created and managed by their owner, readable by participants of their conversations."""

from __future__ import annotations

import json
from typing import Any

from common.errors import NotFound
from memory_service.store import access
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.postgresql.users import require_user
from memory_service.store.values import encode_metadata, new_id, page_bounds, utc_now


def workspace_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a workspace."""
    return {"id": row["id"], "owner_id": row["owner_id"], "name": row["name"], "description": row["description"],
            "metadata": json.loads(row["metadata_json"]), "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def load_workspace(conn: Connection, workspace_id: str) -> dict[str, Any]:
    """The workspace's row, or NotFound."""
    row = conn.execute("SELECT * FROM workspaces WHERE id = %s", (workspace_id,)).fetchone()
    if row is None:
        raise NotFound("workspace not found")
    return row


def require_owner(conn: Connection, user_id: str, workspace_id: str) -> dict[str, Any]:
    """The workspace's row when `user_id` exists and owns it; NotFound or Forbidden otherwise."""
    require_user(conn, user_id)
    row = load_workspace(conn, workspace_id)
    access.check_workspace_owner(user_id, row["owner_id"])
    return row


def takes_part_in(conn: Connection, user_id: str, workspace_id: str) -> bool:
    """True when the user is a participant of at least one conversation in the workspace."""
    return conn.execute(
        "SELECT 1 FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id"
        " WHERE c.workspace_id = %s AND p.user_id = %s LIMIT 1", (workspace_id, user_id)).fetchone() is not None


def create_workspace(db: Database, user_id: str, name: str, description: str = "",
                     metadata: dict[str, Any] | None = None, *,
                     idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Create a workspace owned by the user."""
    metadata_json = encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: Connection) -> dict[str, Any]:
        require_user(conn, user_id)
        now = utc_now()
        row = one(conn.execute(
            "INSERT INTO workspaces (id, owner_id, name, description, metadata_json, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (new_id(), user_id, name, description or "", metadata_json, now, now)))
        return {"workspace": workspace_from_row(row)}

    return db.write(tx, idempotency=idempotency)


def list_workspaces(db: Database, user_id: str, limit: int, offset: int) -> dict[str, Any]:
    """One page of the workspaces the user owns, newest first, with the total count."""
    limit, offset = page_bounds(limit, offset)

    def tx(conn: Connection) -> dict[str, Any]:
        require_user(conn, user_id)
        total = one(conn.execute("SELECT COUNT(*) AS n FROM workspaces WHERE owner_id = %s", (user_id,)))["n"]
        rows = conn.execute("SELECT * FROM workspaces WHERE owner_id = %s ORDER BY created_at DESC, pos DESC"
                            " LIMIT %s OFFSET %s", (user_id, limit, offset)).fetchall()
        return {"workspaces": [workspace_from_row(row) for row in rows], "total": total, "limit": limit,
                "offset": offset}

    return db.read(tx)


def get_workspace(db: Database, user_id: str, workspace_id: str) -> dict[str, Any]:
    """The workspace, for its owner or a participant of any conversation in it."""

    def tx(conn: Connection) -> dict[str, Any]:
        require_user(conn, user_id)
        row = load_workspace(conn, workspace_id)
        access.check_workspace_read(user_id, row["owner_id"], lambda: takes_part_in(conn, user_id, workspace_id))
        return {"workspace": workspace_from_row(row)}

    return db.read(tx)


def update_workspace(db: Database, user_id: str, workspace_id: str, name: str | None = None,
                     description: str | None = None, metadata: dict[str, Any] | None = None, *,
                     idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Change the given fields (None leaves a field unchanged); only the owner may."""
    metadata_json = None if metadata is None else encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: Connection) -> dict[str, Any]:
        require_owner(conn, user_id, workspace_id)
        row = conn.execute(
            "UPDATE workspaces SET name = COALESCE(%s, name), description = COALESCE(%s, description),"
            " metadata_json = COALESCE(%s, metadata_json), updated_at = %s WHERE id = %s RETURNING *",
            (name, description, metadata_json, utc_now(), workspace_id)).fetchone()
        if row is None:
            raise NotFound("workspace not found")
        return {"workspace": workspace_from_row(row)}

    return db.write(tx, idempotency=idempotency)


def delete_workspace(db: Database, user_id: str, workspace_id: str, *,
                     idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Delete the workspace with its conversations and messages; only the owner may."""

    def tx(conn: Connection) -> dict[str, Any]:
        require_owner(conn, user_id, workspace_id)
        conn.execute("DELETE FROM workspaces WHERE id = %s", (workspace_id,))
        return {"deleted": True, "id": workspace_id}

    return db.write(tx, idempotency=idempotency)
