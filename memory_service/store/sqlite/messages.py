"""Messages: stored in order by a per-conversation sequence, read chronologically or as a user's history."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from typing import Any

from common.errors import InvalidArguments, NotFound
from memory_service.store import access
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.pages import take_within
from memory_service.store.sqlite.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite.users import require_user
from memory_service.store.values import MAX_LIMIT, clamp, encode_metadata, new_id, utc_now

ROLES = ("user", "assistant", "system")
_COMPOUND = 400  # SELECTs in one UNION ALL, under SQLite's limit of 500
_MANY_CONVERSATIONS = 100  # above this, a history page walks the global order instead
_AFTER_LAST_ROWID = 2**63 - 1  # above any SQLite rowid, so the first history page starts at the newest


def message_from_row(row: sqlite3.Row) -> dict[str, Any]:
    """The public shape of a message."""
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "sender_id": row["sender_id"],
        "role": row["role"],
        "content": row["content"],
        "metadata": json.loads(row["metadata_json"]),
        "sequence": row["sequence"],
        "created_at": row["created_at"],
    }


def _load(conn: sqlite3.Connection, message_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound("message not found")
    return row


def load_for(
    conn: sqlite3.Connection, user_id: str, message_id: str, *, modify: bool = False
) -> sqlite3.Row:
    """The message's row if the user may read its conversation (and, with `modify`, change it)."""
    try:
        row = _load(conn, message_id)
    except NotFound:
        require_user(conn, user_id)  # an unknown acting user is reported before an unknown message
        raise
    conversation = load_conversation(conn, user_id, row["conversation_id"])
    if modify:
        access.check_message_change(user_id, row["sender_id"], conversation["owner_id"])
    return row


def store_input(
    db: Database, user_id: str, conversation_id: str, content: str, role: str = "user",
    metadata: dict[str, Any] | None = None, *, idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Append a message from the user to a conversation they may read; it gets the next sequence number."""
    if role not in ROLES:
        raise InvalidArguments(f"role must be one of {', '.join(ROLES)}")
    metadata_json = encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        conversation = load_conversation(conn, user_id, conversation_id)
        # BEGIN IMMEDIATE holds the write lock, so no other writer can take the same sequence number.
        sequence, message_id, now = conversation["next_sequence"], new_id(), utc_now()
        conn.execute(
            "UPDATE conversations SET next_sequence = ?, updated_at = ? WHERE id = ?",
            (sequence + 1, now, conversation_id),
        )
        conn.execute(
            "INSERT INTO messages (id, conversation_id, sender_id, role, content, metadata_json, sequence,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, conversation_id, user_id, role, content, metadata_json, sequence, now),
        )
        message = {"id": message_id, "conversation_id": conversation_id, "sender_id": user_id, "role": role,
                   "content": content, "metadata": json.loads(metadata_json), "sequence": sequence,
                   "created_at": now}
        # Stored with the key as false; a replay of the stored result says true (store/idempotency.py).
        return {"status": "stored", "user_id": user_id, "item_id": message_id, "sequence": sequence,
                "message": message, "replayed": False}

    return db.write(tx, idempotency=idempotency)


def get_message(db: Database, user_id: str, message_id: str) -> dict[str, Any]:
    """The message, for anyone who may read its conversation."""
    return db.lookup(lambda conn: {"message": message_from_row(load_for(conn, user_id, message_id))})


def update_message(
    db: Database, user_id: str, message_id: str, content: str | None = None,
    metadata: dict[str, Any] | None = None, *, idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Change the content and/or metadata (None leaves it unchanged).

    Only the sender or the workspace owner may.
    """
    metadata_json = None if metadata is None else encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        row = load_for(conn, user_id, message_id, modify=True)
        conn.execute(
            "UPDATE messages SET content = ?, metadata_json = ? WHERE id = ?",
            (
                row["content"] if content is None else content,
                row["metadata_json"] if metadata_json is None else metadata_json,
                message_id,
            ),
        )
        return {"message": message_from_row(_load(conn, message_id))}

    return db.write(tx, idempotency=idempotency)


def delete_message(
    db: Database, user_id: str, message_id: str, *, idempotency: IdempotencyKey | None = None
) -> dict[str, Any]:
    """Delete the message; its sequence number is never reused. Only the sender or workspace owner may."""

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        load_for(conn, user_id, message_id, modify=True)
        conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        return {"deleted": True, "id": message_id}

    return db.write(tx, idempotency=idempotency)


def _page(
    conn: sqlite3.Connection, conversation_id: str, after_sequence: int, limit: int, budget: int,
    latest: bool = False,
) -> tuple[list[dict], bool]:
    order = "DESC" if latest else "ASC"
    cursor = conn.execute(
        f"SELECT * FROM messages WHERE conversation_id = ? AND sequence > ? ORDER BY sequence {order} LIMIT ?",
        (conversation_id, after_sequence, limit + 1),
    )
    with closing(cursor):
        messages, more = take_within(map(message_from_row, cursor), limit, budget)
    return (messages[::-1] if latest else messages), more


def list_messages(
    db: Database, user_id: str, conversation_id: str, after_sequence: int = 0, limit: int = 100,
    latest: bool = False,
) -> dict[str, Any]:
    """Up to `limit` messages with a sequence above `after_sequence`, in chronological order; with
    `latest`, the last `limit` of them (a conversation's recent turns), still chronological.

    A page also stops before `db.max_page_bytes` of JSON. `has_more` says messages were left out: read on
    with `after_sequence` = `next_after_sequence` (with `latest`, the ones left out are older).
    """
    limit, after_sequence = clamp(limit, 1, MAX_LIMIT), max(0, int(after_sequence))

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        load_conversation(conn, user_id, conversation_id)
        messages, more = _page(conn, conversation_id, after_sequence, limit, db.max_page_bytes, latest)
        return {"messages": messages, "count": len(messages), "conversation_id": conversation_id,
                "has_more": more,
                "next_after_sequence": messages[-1]["sequence"] if messages else after_sequence}

    return db.read(tx)


def iter_conversation(
    db: Database, user_id: str, conversation_id: str, page_size: int = 500
) -> Iterator[dict]:
    """Every message of the conversation in order, read page by page; access is checked before returning."""
    db.read(lambda conn: load_conversation(conn, user_id, conversation_id))
    page_size = clamp(page_size, 1, MAX_LIMIT)

    def pages() -> Iterator[dict]:
        after = 0
        while True:
            page, more = db.read(partial(_page, conversation_id=conversation_id, after_sequence=after,
                                         limit=page_size, budget=db.max_page_bytes))
            yield from page
            if not more:
                return
            after = page[-1]["sequence"]

    return pages()


def iter_history(
    db: Database, user_id: str, limit: int | None = None, page_size: int = 500
) -> Iterator[dict]:
    """At most `limit` messages from every conversation the user may read, newest stored first.

    The user's existence is checked before returning; order follows the global insert order, not clocks.
    """
    db.read(lambda conn: require_user(conn, user_id))
    page_size = clamp(page_size, 1, MAX_LIMIT)
    remaining = None if limit is None else max(0, int(limit))

    def history_page(conn: sqlite3.Connection, before: int, size: int) -> tuple[list[dict], bool]:
        # The newest `size + 1` of each readable conversation, from its (conversation_id, sequence) index,
        # merged: a page reads at most that many rows per conversation, however long the history is and
        # however many messages other users hold (sequence follows seq_global within a conversation).
        conversations = [row[0] for row in conn.execute(READABLE_CONVERSATION_IDS, {"user_id": user_id})]
        if len(conversations) > _MANY_CONVERSATIONS:  # one walk down the global order costs less then
            newest = conn.execute(
                f"SELECT * FROM messages WHERE conversation_id IN ({READABLE_CONVERSATION_IDS})"
                " AND seq_global < :before ORDER BY seq_global DESC LIMIT :size",
                {"user_id": user_id, "before": before, "size": size + 1}).fetchall()
            rows = ({**message_from_row(row), "_seq": row["seq_global"]} for row in newest)
            return take_within(rows, size, db.max_page_bytes)
        newest = []
        for start in range(0, len(conversations), _COMPOUND):
            chunk = conversations[start:start + _COMPOUND]
            params: dict[str, Any] = {"before": before, "size": size + 1,
                                      **{f"c{i}": conversation for i, conversation in enumerate(chunk)}}
            newest += conn.execute(" UNION ALL ".join(
                f"SELECT * FROM (SELECT * FROM messages WHERE conversation_id = :c{i} AND seq_global < :before"
                " ORDER BY sequence DESC LIMIT :size)" for i in range(len(chunk)))
                + " ORDER BY seq_global DESC LIMIT :size", params).fetchall()
        newest.sort(key=lambda row: -row["seq_global"])
        # The position to go on from is seq_global, which the public shape leaves out.
        rows = ({**message_from_row(row), "_seq": row["seq_global"]} for row in newest[:size + 1])
        return take_within(rows, size, db.max_page_bytes)

    def pages() -> Iterator[dict]:
        before, left = _AFTER_LAST_ROWID, remaining
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page, more = db.read(partial(history_page, before=before, size=size))
            for message in page:
                yield {key: value for key, value in message.items() if key != "_seq"}
            if not more:
                return
            before = page[-1]["_seq"]
            left = None if left is None else left - len(page)

    return pages()


def count_history(db: Database, user_id: str) -> int:
    """How many messages the user may read across all their conversations."""

    def tx(conn: sqlite3.Connection) -> int:
        require_user(conn, user_id)
        return conn.execute(
            f"SELECT COUNT(*) FROM messages WHERE conversation_id IN ({READABLE_CONVERSATION_IDS})",
            {"user_id": user_id},
        ).fetchone()[0]

    return db.read(tx)


def messages_around(db: Database, user_id: str, message_ids: list[str], distance: int) -> list[dict[str, Any]]:
    """The messages at most `distance` places before or after each of `message_ids` in its conversation
    (the messages themselves included), of conversations the user may read; unknown ids are left out."""

    def tx(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        require_user(conn, user_id)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(message_ids), 400):
            chunk = message_ids[start:start + 400]
            params: dict[str, Any] = {"user_id": user_id, "distance": distance,
                                      **{f"m{i}": mid for i, mid in enumerate(chunk)}}
            for row in conn.execute(
                    "SELECT n.* FROM messages m JOIN messages n ON n.conversation_id = m.conversation_id"
                    " AND n.sequence BETWEEN m.sequence - :distance AND m.sequence + :distance"
                    f" WHERE m.id IN ({', '.join(f':m{i}' for i in range(len(chunk)))})"
                    f" AND m.conversation_id IN ({READABLE_CONVERSATION_IDS})", params):
                found[row["id"]] = message_from_row(row)
        return list(found.values())

    return db.read(tx)
