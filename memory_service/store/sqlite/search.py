"""Ranked full-text search over the messages a user may read: SQLite FTS5 finds them, BM25 ranks them.

FTS5's own bm25() takes its statistics (how many messages hold a word, how long messages are) from the
whole index, every user's messages included, so its scores told a user how often a word occurs in
messages they cannot read. Here the index only says where the query's words occur (`messages_fts_instances`,
an fts5vocab table); the caller's readable messages are kept and the statistics come from them alone, so
nothing returned depends on anyone else's messages.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from memory_service.store.pages import take_within
from memory_service.store.sqlite.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite.messages import message_from_row
from memory_service.store.sqlite.users import require_user
from memory_service.store.values import page_bounds
from memory_service.store.words import MAX_TOKENS, fold, stems, terms

__all__ = ["MAX_TOKENS", "fold", "search_messages", "terms"]

K1, B = 1.2, 0.75  # BM25's usual constants, as FTS5 uses them

# Okapi BM25 over the caller's matching messages (`scope`), from where the index says each query term
# occurs (`messages_fts_instances`, an fts5vocab table): term counts per message, document frequencies and
# the average length (in characters) over the caller's matches, N = :total, the caller's messages in
# scope. idf is Lucene's log(1 + (N - df + 0.5) / (df + 0.5)), positive even in a small corpus where a
# word is in most messages (FTS5 flattens that to 1e-6). Equal scores: the newer message first.
BM25_SQL = """
WITH hits AS (
    SELECT doc, term, COUNT(*) AS tf FROM {instances} WHERE term IN ({terms}) GROUP BY doc, term),
counts AS (
    -- Counted per message first, so each matching message is read once, not once per occurrence.
    SELECT h.doc AS doc, h.term AS term, h.tf AS tf, length(m.content) AS len
    FROM hits h JOIN messages m ON m.seq_global = h.doc WHERE {scope}),
frequencies AS (SELECT term, ln(1 + (:total - COUNT(*) + 0.5) / (COUNT(*) + 0.5)) AS idf
                FROM counts GROUP BY term),
average AS (SELECT AVG(len) AS len FROM (SELECT doc, MAX(len) AS len FROM counts GROUP BY doc))
SELECT counts.doc, SUM(idf * tf * (:k1 + 1) / (tf + :k1 * (1 - :b + :b * counts.len / average.len))) AS score
FROM counts JOIN frequencies USING (term), average
GROUP BY counts.doc ORDER BY score DESC, counts.doc DESC LIMIT :take OFFSET :skip
"""


def search_messages(
    db: Database, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10,
    offset: int = 0, match: str = "words",
) -> dict[str, Any]:
    """The best-matching messages the user may read (optionally in one conversation), best first.

    Each result is a message plus a positive BM25 `score` (higher is better) computed over the caller's
    own readable messages. Results skip the best `offset` and stop at `limit` or `db.max_page_bytes` of
    JSON; `has_more` says more matched, and `next_offset` is the offset to go on from. `match="stems"`
    searches the stemmed index (`messages_stems`) for the query's stems instead of the exact words.
    """
    limit, offset = page_bounds(limit, offset)
    words = stems(query) if match == "stems" else terms(query)
    instances = "messages_stems_instances" if match == "stems" else "messages_fts_instances"

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        if conversation_id is None:
            require_user(conn, user_id)
            scope = f"m.conversation_id IN ({READABLE_CONVERSATION_IDS})"
        else:
            load_conversation(conn, user_id, conversation_id)
            scope = "m.conversation_id = :conversation_id"
        if not words:
            return {"results": [], "count": 0, "query": query, "has_more": False, "next_offset": offset}
        params: dict[str, Any] = {"user_id": user_id, "conversation_id": conversation_id}
        params.update((f"t{index}", word) for index, word in enumerate(words))
        total = conn.execute(f"SELECT COUNT(*) FROM messages m WHERE {scope}", params).fetchone()[0]
        # One more than the page can hold tells whether more matched; ranking runs over every match, so
        # an old message is found as readily as a recent one.
        ranked = conn.execute(
            BM25_SQL.format(instances=instances, scope=scope,
                            terms=", ".join(f":t{index}" for index in range(len(words)))),
            {**params, "total": total, "k1": K1, "b": B, "skip": offset, "take": limit + 1},
        ).fetchall()
        scores = dict(ranked)
        rows = (conn.execute("SELECT * FROM messages WHERE seq_global = ?", (doc,)).fetchone() for doc, _ in ranked)
        results, more = take_within(({**message_from_row(row), "score": scores[row["seq_global"]]}
                                     for row in rows), limit, db.max_page_bytes - len(json.dumps(query)))
        return {"results": results, "count": len(results), "query": query, "has_more": more,
                "next_offset": offset + len(results)}

    return db.read(tx)
