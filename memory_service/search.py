"""Ranked full-text search (SQLite FTS5, BM25) over the messages a user may read."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from memory_service.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.db import MAX_LIMIT, Database, clamp
from memory_service.messages import message_from_row
from memory_service.users import require_user

MAX_TOKENS = 64
# Letters and digits only, like FTS5's unicode61 tokenizer; underscores separate words there too.
_WORD = re.compile(r"[^\W_]+")


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression ORing the query's words, each quoted so no user text is FTS syntax.

    None when the query holds no words.
    """
    tokens = list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))[:MAX_TOKENS]
    if not tokens:
        return None
    return " OR ".join('"' + token.replace('"', '""') + '"' for token in tokens)


def search_messages(
    db: Database, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10
) -> dict[str, Any]:
    """The best-matching messages the user may read (optionally in one conversation), best first.

    Each result is a message plus a positive `score` (negated BM25: higher is better).
    """
    limit = clamp(limit, 1, MAX_LIMIT)
    expression = match_expression(query)

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        if conversation_id is None:
            require_user(conn, user_id)
            scope = f"m.conversation_id IN ({READABLE_CONVERSATION_IDS})"
        else:
            load_conversation(conn, user_id, conversation_id)
            scope = "m.conversation_id = :conversation_id"
        if expression is None:
            return {"results": [], "count": 0, "query": query}
        # Ranking runs over every match, so an old message is found as readily as a recent one.
        rows = conn.execute(
            "WITH hits AS (SELECT rowid, bm25(messages_fts) AS rank FROM messages_fts"
            " WHERE messages_fts MATCH :expression)"
            " SELECT m.*, -hits.rank AS score FROM hits JOIN messages m ON m.seq_global = hits.rowid"
            f" WHERE {scope} ORDER BY hits.rank, m.seq_global DESC LIMIT :limit",
            {"expression": expression, "user_id": user_id, "conversation_id": conversation_id,
             "limit": limit},
        ).fetchall()
        results = [{**message_from_row(row), "score": row["score"]} for row in rows]
        return {"results": results, "count": len(results), "query": query}

    return db.read(tx)
