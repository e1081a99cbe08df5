"""Ranked full-text search over the messages a user may read: SQLite FTS5 finds them, BM25 ranks them.

FTS5's own bm25() takes its statistics (how many messages hold a word, how long messages are) from the
whole index, every user's messages included, so its scores told a user how often a word occurs in
messages they cannot read. Here the index only says where the query's words occur (`messages_fts_instances`,
an fts5vocab table); the caller's readable messages are kept and the statistics come from them alone, so
nothing returned depends on anyone else's messages.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from memory_service.store.pages import take_within
from memory_service.store.sqlite.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.store.sqlite.database import Database
from memory_service.store.sqlite.messages import message_from_row
from memory_service.store.sqlite.users import require_user
from memory_service.store.values import page_bounds
from memory_service.store.words import MAX_TOKENS, fold, stem, terms

__all__ = ["MAX_TOKENS", "fold", "search_messages", "search_stems", "terms"]

K1, B = 1.2, 0.75  # BM25's usual constants, as FTS5 uses them

# Okapi BM25 over the caller's matching messages (`scope`), from where the index says each query term
# occurs (`messages_fts_instances`, an fts5vocab table): term counts per message, document frequencies and
# the average length (in characters) over the caller's matches, N = :total, the caller's messages in
# scope. idf is Lucene's log(1 + (N - df + 0.5) / (df + 0.5)), positive even in a small corpus where a
# word is in most messages (FTS5 flattens that to 1e-6). Equal scores: the newer message first.
BM25_SQL = """
WITH hits AS (
    SELECT doc, term, COUNT(*) AS tf FROM messages_fts_instances WHERE term IN ({terms}) GROUP BY doc, term),
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
    searches the stemmed index instead (`search_stems`).
    """
    if match == "stems":
        return search_stems(db, user_id, query, conversation_id, limit, offset)
    limit, offset = page_bounds(limit, offset)
    words = terms(query)

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
            BM25_SQL.format(scope=scope,
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


STEM_MATCHES = 1000
"""For each query word, how many of its matches in the user's conversations are scored: the newest."""
DF_CAP = 20_000
"""A word's matches are counted (for its idf) up to this many."""


def scope_token(conversation_id: str) -> str:
    """A conversation as the one token of messages_stems' `scope` column (schema.stems_scope in SQL)."""
    return "z" + conversation_id.replace("-", "").replace("_", "")


def search_stems(db: Database, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10,
                 offset: int = 0) -> dict[str, Any]:
    """Ranked search by stems over what the user may read, in work bounded by the user's own data.

    FTS5 finds each query word's matches inside the user's conversations (their `scope` tokens), newest
    first, so nothing scans other users' messages. BM25 over the caller's messages as in `search_messages`,
    with two bounds that keep a query's cost flat as a history grows: each word scores its newest
    STEM_MATCHES matches (a word in more messages than that weighs little: its idf is low), and a word
    counts once per message (the index gives no counts per message; in chat a word rarely repeats).
    Words with one stem count once ("paint painting" is one word).
    """
    limit, offset = page_bounds(limit, offset)
    words = list({stem(word): word for word in reversed(terms(query))}.values())[::-1]

    def tx(conn: sqlite3.Connection) -> dict[str, Any]:
        if conversation_id is None:
            require_user(conn, user_id)
            conversations = [row[0] for row in conn.execute(READABLE_CONVERSATION_IDS, {"user_id": user_id})]
        else:
            load_conversation(conn, user_id, conversation_id)
            conversations = [conversation_id]
        empty = {"results": [], "count": 0, "query": query, "has_more": False, "next_offset": offset}
        if not words or not conversations:
            return empty
        scope = "scope: (" + " OR ".join(scope_token(c) for c in conversations) + ")"
        # N: the messages ever stored in scope, from each conversation's next sequence (deleted ones
        # included: counting the rest would read every message in scope).
        total = sum(row[0] - 1 for row in conn.execute(
            f"SELECT next_sequence FROM conversations WHERE id IN ({', '.join('?' * len(conversations))})",
            conversations))
        weights: dict[int, float] = {}
        for word in words:
            match = f'content: "{word}" AND {scope}'
            found = [row[0] for row in conn.execute(
                "SELECT rowid FROM messages_stems WHERE messages_stems MATCH ? ORDER BY rowid DESC LIMIT ?",
                (match, STEM_MATCHES))]
            if not found:
                continue
            # Fewer than the bound: these are all its matches. Otherwise count them, up to a cap (a word
            # in more messages than the cap weighs as if in the cap's number; it weighs little either way).
            frequency = len(found) if len(found) < STEM_MATCHES else conn.execute(
                "SELECT count(*) FROM (SELECT rowid FROM messages_stems WHERE messages_stems MATCH ? LIMIT ?)",
                (match, DF_CAP)).fetchone()[0]
            idf = math.log(1 + max(0.0, total - frequency + 0.5) / (frequency + 0.5))
            for doc in found:
                weights[doc] = weights.get(doc, 0.0) + idf
        if not weights:
            return empty
        allowed, lengths = set(conversations), {}
        docs = list(weights)
        for start in range(0, len(docs), 500):
            chunk = docs[start:start + 500]
            for doc, conversation, length in conn.execute(
                    "SELECT seq_global, conversation_id, length(content) FROM messages"
                    f" WHERE seq_global IN ({', '.join('?' * len(chunk))})", chunk):
                if conversation in allowed:
                    lengths[doc] = length
        if not lengths:
            return empty
        average = sum(lengths.values()) / len(lengths) or 1.0
        scores = {doc: weights[doc] * (K1 + 1) / (1 + K1 * (1 - B + B * length / average))
                  for doc, length in lengths.items()}
        ranked = sorted(scores, key=lambda doc: (-scores[doc], -doc))[offset:offset + limit + 1]
        page = (conn.execute("SELECT * FROM messages WHERE seq_global = ?", (doc,)).fetchone() for doc in ranked)
        results, more = take_within(({**message_from_row(row), "score": scores[row["seq_global"]]} for row in page),
                                    limit, db.max_page_bytes - len(json.dumps(query)))
        return {"results": results, "count": len(results), "query": query, "has_more": more,
                "next_offset": offset + len(results)}

    return db.read(tx)
