"""Context retrieval and history search (SPEC §5): which of a user's messages are worth showing for a
query, ranked by relevance blended with recency. Reads Memory through a `MemoryReader`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cognition_service.text import search_terms
from cognition_service.timestamps import parse_time
from common.errors import Forbidden, NotFound

if TYPE_CHECKING:  # the reader brings in the network client; this module needs only its methods
    from cognition_service.memory import MemoryReader

RELEVANCE_WEIGHT = 0.8
RECENCY_WEIGHT = 0.2
RECENCY_HALF_LIFE = timedelta(days=7)
"""A message's recency halves for every week it is older than the newest message considered."""

CANDIDATE_FACTOR = 5
MIN_CANDIDATES = 50
MAX_CANDIDATES = 1000  # the largest page Memory's search returns


def candidate_count(limit: int) -> int:
    """How many search hits to re-rank for `limit` context items: enough that recency can lift a slightly
    less relevant but newer message into the top `limit`."""
    return min(max(CANDIDATE_FACTOR * limit, MIN_CANDIDATES), MAX_CANDIDATES)


def recency_scores(messages: Sequence[dict[str, Any]]) -> list[float]:
    """Each message's recency in [0, 1]: 1 for the newest of `messages`, halving per `RECENCY_HALF_LIFE`
    older. Measured against the newest message rather than the clock, so a quiet user's history is not
    uniformly "old" and the result depends on the data alone. Unreadable timestamps score 0."""
    times = [parse_time(message.get("created_at")) for message in messages]
    known = [moment for moment in times if moment is not None]
    if not known:
        return [0.0] * len(messages)
    newest, half_life = max(known), RECENCY_HALF_LIFE.total_seconds()
    return [0.0 if moment is None else 0.5 ** ((newest - moment).total_seconds() / half_life)
            for moment in times]


def rank(candidates: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The best `limit` search hits by `0.8 × relevance + 0.2 × recency`, where relevance is the hit's
    search score divided by the best score among the candidates. Each item's `score` becomes the blend."""
    if not candidates:
        return []
    relevance = [max(0.0, float(hit.get("score") or 0.0)) for hit in candidates]
    best = max(relevance)
    blended = [
        RELEVANCE_WEIGHT * (score / best if best > 0 else 0.0) + RECENCY_WEIGHT * recent
        for score, recent in zip(relevance, recency_scores(candidates), strict=True)
    ]
    # sorted() is stable, so equal blends keep Memory's order (better BM25 first, then newer).
    order = sorted(range(len(candidates)), key=lambda index: -blended[index])[:limit]
    return [{**candidates[index], "score": round(blended[index], 6)} for index in order]


def by_recency(newest_first: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages already ordered newest first, each scored by its recency alone."""
    return [{**message, "score": round(recent, 6)}
            for message, recent in zip(newest_first, recency_scores(newest_first), strict=True)]


def get_context(memory: MemoryReader, user_id: str, query: str | None, conversation_id: str | None,
                limit: int) -> dict[str, Any]:
    """With a query, the user's best matches from their whole history (or one conversation), blended with
    recency; without one, their newest messages, newest first."""
    if query:
        hits = memory.search(user_id, search_terms(query), limit=candidate_count(limit),
                             conversation_id=conversation_id)
        items = rank(hits, limit)
    elif conversation_id:
        items = by_recency(memory.latest_in_conversation(user_id, conversation_id, limit))
    else:
        items = by_recency(memory.newest(user_id, limit))
    return {"context": items, "user_id": user_id, "query": query, "count": len(items)}


def search_history(memory: MemoryReader, user_id: str, query: str, limit: int,
                   include_conversations: bool) -> dict[str, Any]:
    """Full-text search over the user's messages, best first by the search score; with
    `include_conversations`, each hit carries its conversation's `topic` (each conversation read once)."""
    results = memory.search(user_id, search_terms(query), limit=limit)
    if include_conversations:
        topics = {conversation_id: conversation_topic(memory, user_id, conversation_id)
                  for conversation_id in dict.fromkeys(hit["conversation_id"] for hit in results)}
        results = [{**hit, "topic": topics[hit["conversation_id"]]} for hit in results]
    return {"results": results, "count": len(results), "query": query}


def conversation_topic(memory: MemoryReader, user_id: str, conversation_id: str) -> str | None:
    """The conversation's topic; None if it was deleted or access was lost since the search ran, which
    should not fail a search whose other hits are still good."""
    try:
        return memory.conversation(user_id, conversation_id).get("topic")
    except (NotFound, Forbidden):
        return None
