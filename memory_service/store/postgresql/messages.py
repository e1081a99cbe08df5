"""Messages: stored in order by a per-conversation sequence, read chronologically or as a user's history;
and reply claims, one per message ever.

The sequence comes from the conversation's row, locked by the writer (`FOR UPDATE`) and advanced in the
same transaction as the message and its idempotency key: a writer on another process waits for the lock,
so sequences stay unique and gap-free, and a rolled-back write gives its number back. That write is one
call of the `cortex_store_input` function the schema creates (schema.py), so it costs one round trip.

Reads are one statement each where the access check can travel with the data: the message or page is
fetched with its conversation's owner and the user's membership, and access.py decides on the row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from itertools import chain
from typing import Any

from common.errors import InvalidArguments, NotFound
from memory_service.store import access
from memory_service.store.idempotency import IdempotencyKey
from memory_service.store.pages import take_within
from memory_service.store.postgresql.conversations import (
    ACCESS_COLUMNS,
    ACCESS_JOINS,
    READABLE_CONVERSATION_IDS,
    check_access,
    load_conversation,
)
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.postgresql.users import require_user, unknown
from memory_service.store.values import MAX_LIMIT, clamp, encode_metadata, new_id, utc_now
from memory_service.store.words import folded_text

ROLES = ("user", "assistant", "system")
COLUMNS = "seq_global, id, conversation_id, sender_id, role, content, metadata_json, sequence, created_at"
_AFTER_LAST = 2**63 - 1  # above any seq_global, so the first history page starts at the newest
# The message with what its access check needs (conversations.ACCESS_COLUMNS), in one statement.
_WITH_ACCESS = (f"SELECT {', '.join(f'm.{column}' for column in COLUMNS.split(', '))}, {ACCESS_COLUMNS}"
                f" FROM messages m JOIN conversations c ON c.id = m.conversation_id {ACCESS_JOINS}"
                " WHERE m.id = %(message_id)s")
_STORE = ("SELECT * FROM cortex_store_input(%(user_id)s, %(conversation_id)s, %(id)s, %(role)s, %(content)s,"
          " %(metadata)s, %(now)s, %(words)s)")


def message_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a message."""
    return {"id": row["id"], "conversation_id": row["conversation_id"], "sender_id": row["sender_id"],
            "role": row["role"], "content": row["content"], "metadata": json.loads(row["metadata_json"]),
            "sequence": row["sequence"], "created_at": row["created_at"]}


def load_for(conn: Connection, user_id: str, message_id: str, *, modify: bool = False) -> dict[str, Any]:
    """The message's row if the user may read its conversation (and, with `modify`, change it)."""
    row = conn.execute(_WITH_ACCESS, {"user_id": user_id, "message_id": message_id}).fetchone()
    if row is None:
        require_user(conn, user_id)  # an unknown acting user is reported before an unknown message
        raise NotFound("message not found")
    check_access(conn, user_id, row)
    if modify:
        access.check_message_change(user_id, row["sender_id"], row["owner_id"])
    return row


def store_input(db: Database, user_id: str, conversation_id: str, content: str, role: str = "user",
                metadata: dict[str, Any] | None = None, *,
                idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Append a message from the user to a conversation they may read, with the next sequence number."""
    if role not in ROLES:
        raise InvalidArguments(f"role must be one of {', '.join(ROLES)}")
    metadata_json = encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: Connection) -> dict[str, Any]:
        message_id = new_id()
        row = one(conn.execute(_STORE, {"user_id": user_id, "conversation_id": conversation_id, "id": message_id,
                                        "role": role, "content": content, "metadata": metadata_json,
                                        "now": utc_now(), "words": folded_text(content)}))
        if row["outcome"] == "no_user":
            raise unknown()
        if row["outcome"] == "no_conversation":
            raise NotFound("conversation not found")
        access.check_conversation(user_id, row["o_owner"], lambda: row["outcome"] != "forbidden")
        sequence, now = row["o_sequence"], row["o_created"]
        message = {"id": message_id, "conversation_id": conversation_id, "sender_id": user_id, "role": role,
                   "content": content, "metadata": json.loads(metadata_json), "sequence": sequence,
                   "created_at": now}
        return {"status": "stored", "user_id": user_id, "item_id": message_id, "sequence": sequence,
                "message": message, "replayed": False}

    return db.write(tx, idempotency=idempotency, one_statement=True)


def get_message(db: Database, user_id: str, message_id: str) -> dict[str, Any]:
    """The message, for anyone who may read its conversation."""
    return db.lookup(lambda conn: {"message": message_from_row(load_for(conn, user_id, message_id))})


def update_message(db: Database, user_id: str, message_id: str, content: str | None = None,
                   metadata: dict[str, Any] | None = None, *,
                   idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Change the content and/or metadata (None leaves it unchanged), sender or workspace owner only."""
    metadata_json = None if metadata is None else encode_metadata(metadata, db.max_metadata_bytes)

    def tx(conn: Connection) -> dict[str, Any]:
        row = load_for(conn, user_id, message_id, modify=True)
        new_content = row["content"] if content is None else content
        updated = conn.execute(
            f"UPDATE messages SET content = %(content)s, metadata_json = COALESCE(%(metadata)s, metadata_json),"
            f" search_vector = to_tsvector('simple', %(words)s), stem_vector = to_tsvector('english', %(words)s)"
            f" WHERE id = %(id)s RETURNING {COLUMNS}",
            {"content": new_content, "metadata": metadata_json, "words": folded_text(new_content),
             "id": message_id}).fetchone()
        if updated is None:
            raise NotFound("message not found")
        return {"message": message_from_row(updated)}

    return db.write(tx, idempotency=idempotency)


def delete_message(db: Database, user_id: str, message_id: str, *,
                   idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """Delete the message; its sequence number is never reused. Only the sender or workspace owner may."""

    def tx(conn: Connection) -> dict[str, Any]:
        load_for(conn, user_id, message_id, modify=True)
        conn.execute("DELETE FROM messages WHERE id = %s", (message_id,))
        return {"deleted": True, "id": message_id}

    return db.write(tx, idempotency=idempotency)


def claim_reply(db: Database, user_id: str, message_id: str, *,
                idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
    """`claimed` true for the first claim on the message, false for every later one, on any process: the
    primary key decides (a second claim waits for the first to commit, then does nothing)."""

    def tx(conn: Connection) -> dict[str, Any]:
        load_for(conn, user_id, message_id)
        claimed = conn.execute("INSERT INTO reply_claims (message_id, claimed_at) VALUES (%s, %s)"
                               " ON CONFLICT DO NOTHING", (message_id, utc_now())).rowcount == 1
        return {"claimed": claimed, "message_id": message_id}

    return db.write(tx, idempotency=idempotency)


def _page(conn: Connection, conversation_id: str, after_sequence: int, limit: int, budget: int,
          latest: bool = False) -> tuple[list[dict[str, Any]], bool]:
    order = "DESC" if latest else "ASC"
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM messages WHERE conversation_id = %s AND sequence > %s"
                       f" ORDER BY sequence {order} LIMIT %s", (conversation_id, after_sequence, limit + 1))
        messages, more = take_within(map(message_from_row, cursor), limit, budget)
    return (messages[::-1] if latest else messages), more


def list_messages(db: Database, user_id: str, conversation_id: str, after_sequence: int = 0, limit: int = 100,
                  latest: bool = False) -> dict[str, Any]:
    """Up to `limit` messages after `after_sequence`, chronological (the last `limit` with `latest`),
    bounded by `db.max_page_bytes` of JSON as on SQLite."""
    limit, after_sequence = clamp(limit, 1, MAX_LIMIT), max(0, int(after_sequence))
    # One statement: the conversation with its access columns, joined to the page (no row of the page when
    # it is empty, hence the LEFT JOIN). The page is only returned once check_access has passed.
    query = (f"WITH c AS (SELECT c.id, {ACCESS_COLUMNS} FROM conversations c {ACCESS_JOINS}"
             " WHERE c.id = %(conversation_id)s)"
             " SELECT c.id AS checked_id, c.owner_id, c.user_exists, c.is_member, m.* FROM c LEFT JOIN LATERAL"
             f" (SELECT {COLUMNS} FROM messages WHERE conversation_id = c.id AND sequence > %(after)s"
             f" ORDER BY sequence {'DESC' if latest else 'ASC'} LIMIT %(size)s) m ON TRUE")

    def tx(conn: Connection) -> dict[str, Any]:
        with conn.cursor() as cursor:
            cursor.execute(query, {"user_id": user_id, "conversation_id": conversation_id, "after": after_sequence,
                                   "size": limit + 1})
            first = cursor.fetchone()
            check_access(conn, user_id, None if first is None else {**first, "id": first["checked_id"]})
            rows = (row for row in chain([first], cursor) if row is not None and row["id"] is not None)
            messages, more = take_within(map(message_from_row, rows), limit, db.max_page_bytes)
        messages = messages[::-1] if latest else messages
        return {"messages": messages, "count": len(messages), "conversation_id": conversation_id,
                "has_more": more, "next_after_sequence": messages[-1]["sequence"] if messages else after_sequence}

    return db.read(tx)


def iter_conversation(db: Database, user_id: str, conversation_id: str, page_size: int = 500) -> Iterator[dict]:
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


def iter_history(db: Database, user_id: str, limit: int | None = None, page_size: int = 500) -> Iterator[dict]:
    """At most `limit` messages from every conversation the user may read, newest stored first."""
    db.read(lambda conn: require_user(conn, user_id))
    page_size = clamp(page_size, 1, MAX_LIMIT)
    remaining = None if limit is None else max(0, int(limit))

    def history_page(conn: Connection, before: int, size: int) -> tuple[list[dict], bool]:
        # The newest `size + 1` of each readable conversation from its (conversation_id, sequence) index,
        # merged, so a page never sorts the user's whole history nor scans other users' messages.
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT m.* FROM ({READABLE_CONVERSATION_IDS}) r(id) CROSS JOIN LATERAL"
                           f" (SELECT {COLUMNS} FROM messages WHERE conversation_id = r.id"
                           " AND seq_global < %(before)s ORDER BY sequence DESC LIMIT %(size)s) m"
                           " ORDER BY m.seq_global DESC LIMIT %(size)s",
                           {"user_id": user_id, "before": before, "size": size + 1})
            rows = ({**message_from_row(row), "_seq": row["seq_global"]} for row in cursor)
            return take_within(rows, size, db.max_page_bytes)

    def pages() -> Iterator[dict]:
        before, left = _AFTER_LAST, remaining
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

    def tx(conn: Connection) -> int:
        require_user(conn, user_id)
        return int(one(conn.execute(f"SELECT COUNT(*) AS n FROM messages WHERE conversation_id IN"
                                    f" ({READABLE_CONVERSATION_IDS})", {"user_id": user_id}))["n"])

    return db.read(tx)


def messages_around(db: Database, user_id: str, message_ids: list[str], distance: int) -> list[dict[str, Any]]:
    """The messages at most `distance` places before or after each of `message_ids` in its conversation
    (the messages themselves included), of conversations the user may read; unknown ids are left out."""

    def tx(conn: Connection) -> list[dict[str, Any]]:
        require_user(conn, user_id)
        columns = ", ".join(f"n.{column.strip()}" for column in COLUMNS.split(","))
        rows = conn.execute(
            f"SELECT DISTINCT ON (n.id) {columns} FROM messages m JOIN messages n"
            " ON n.conversation_id = m.conversation_id"
            " AND n.sequence BETWEEN m.sequence - %(distance)s AND m.sequence + %(distance)s"
            f" WHERE m.id = ANY(%(ids)s) AND m.conversation_id IN ({READABLE_CONVERSATION_IDS})",
            {"ids": message_ids, "distance": distance, "user_id": user_id}).fetchall()
        return [message_from_row(row) for row in rows]

    return db.read(tx)
