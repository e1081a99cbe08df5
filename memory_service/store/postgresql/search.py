"""Ranked full-text search over the messages a user may read: a tsvector and its GIN index find them,
BM25 over the caller's own readable messages ranks them (as the SQLite backend does, so no score says how
often a word occurs in messages the caller cannot read; ts_rank_cd would not weigh rare words higher).

The query is never parsed as tsquery syntax: `words.terms` keeps only its letters and digits, and each word
becomes its own `plainto_tsquery`, OR-ed together. Messages are indexed by their folded words
(`words.folded_text`), so case and accents fold exactly as they do for FTS5's unicode61 tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from memory_service.store.pages import take_within
from memory_service.store.postgresql.conversations import READABLE_CONVERSATION_IDS, load_conversation
from memory_service.store.postgresql.database import Connection, Database, one
from memory_service.store.postgresql.messages import COLUMNS, message_from_row
from memory_service.store.postgresql.users import require_user
from memory_service.store.values import page_bounds
from memory_service.store.words import terms

K1, B = 1.2, 0.75
FETCH = 50  # matching messages read per round trip while a page fills

# Okapi BM25 with Lucene's idf, log(1 + (N - df + 0.5) / (df + 0.5)), over the caller's matches in scope
# (N = %(total)s, the caller's messages in scope); lengths in characters. Equal scores: newer first.
BM25_SQL = """
WITH matches AS (
    SELECT m.seq_global AS doc, m.{column} AS tsv, length(m.content)::float8 AS len
    FROM messages m WHERE m.{column} @@ ({query}) AND {scope}),
counts AS (
    SELECT matches.doc, u.lexeme AS term, cardinality(u.positions)::float8 AS tf, matches.len
    FROM matches, unnest(matches.tsv) u
    WHERE u.lexeme = ANY(tsvector_to_array(to_tsvector('{config}', %(text)s)))),
frequencies AS (SELECT term, ln(1 + (%(total)s - COUNT(*) + 0.5) / (COUNT(*) + 0.5)) AS idf
                FROM counts GROUP BY term),
average AS (SELECT AVG(len) AS len FROM (SELECT doc, MAX(len) AS len FROM counts GROUP BY doc) d)
SELECT counts.doc, SUM(idf * tf * (%(k1)s + 1) / (tf + %(k1)s * (1 - %(b)s + %(b)s * counts.len / average.len)))
    AS score
FROM counts JOIN frequencies USING (term), average
GROUP BY counts.doc ORDER BY score DESC, counts.doc DESC LIMIT %(take)s OFFSET %(skip)s
"""


def _rows(conn: Connection, ranked: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The ranked messages with their scores, in rank order, read FETCH at a time."""
    for start in range(0, len(ranked), FETCH):
        chunk = ranked[start:start + FETCH]
        rows = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE seq_global = ANY(%s)",
                            ([hit["doc"] for hit in chunk],)).fetchall()
        by_doc = {row["seq_global"]: row for row in rows}
        for hit in chunk:
            row = by_doc.get(hit["doc"])
            if row is not None:
                yield {**message_from_row(row), "score": hit["score"]}


def search_messages(db: Database, user_id: str, query: str, conversation_id: str | None = None, limit: int = 10,
                    offset: int = 0, match: str = "words") -> dict[str, Any]:
    """The best-matching messages the user may read (optionally in one conversation), best first, each
    with a positive BM25 `score`; paged by `offset`/`limit` and `db.max_page_bytes` as on SQLite. With
    `match="stems"` the 'english' configuration's stems (`stem_vector`) are searched instead of the words."""
    column, config = ("stem_vector", "english") if match == "stems" else ("search_vector", "simple")
    limit, offset = page_bounds(limit, offset)
    words = terms(query)

    def tx(conn: Connection) -> dict[str, Any]:
        if conversation_id is None:
            require_user(conn, user_id)
            scope = f"m.conversation_id IN ({READABLE_CONVERSATION_IDS})"
        else:
            load_conversation(conn, user_id, conversation_id)
            scope = "m.conversation_id = %(conversation_id)s"
        if not words:
            return {"results": [], "count": 0, "query": query, "has_more": False, "next_offset": offset}
        params: dict[str, Any] = {"user_id": user_id, "conversation_id": conversation_id, "text": " ".join(words)}
        params.update((f"t{index}", word) for index, word in enumerate(words))
        total = one(conn.execute(f"SELECT COUNT(*) AS n FROM messages m WHERE {scope}", params))["n"]
        tsquery = " || ".join(f"plainto_tsquery('{config}', %(t{index})s)" for index in range(len(words)))
        ranked = conn.execute(BM25_SQL.format(query=tsquery, scope=scope, column=column, config=config),
                              {**params, "total": float(total), "k1": K1, "b": B, "skip": offset,
                               "take": limit + 1}).fetchall()
        results, more = take_within(_rows(conn, ranked), limit, db.max_page_bytes - len(json.dumps(query)))
        return {"results": results, "count": len(results), "query": query, "has_more": more,
                "next_offset": offset + len(results)}

    return db.read(tx)
