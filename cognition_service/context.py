"""Context retrieval and history search (SPEC §5): which of a user's messages are worth showing for a
query. Reads Memory through a `MemoryReader`; what each step below bought is measured in docs/COGNITION.md.

`get_context` with a query is hybrid:
1. lexical: Memory's BM25 over the stems of the query's words (stop words left out), the best candidates;
2. dense: the query's embedding against the vectors of the messages the user may read (cosine), the best
   candidates, when an embedder is configured;
3. fusion: each list's scores scaled to 0-1 over the list (min-max), then `0.5 × lexical + 0.5 × dense`;
4. neighbours: a turn next to a good hit is often the one that answers (the reply after a question), so each
   message also gets `0.5 ×` the better fused score of the turns one place away and `0.25 ×` two away;
5. the result, scaled to 0-1 by the best, blended `0.8 × relevance + 0.2 × recency`.
`search_history` stays lexical: exact words, as people expect of a search box.

`cortex_retrieval_duration_seconds` times each get_context (`total`) and its parts: `lexical` (1), `dense`
(2, the model and Memory's vector search, overlapping the lexical half) and `neighbours` (4). All are
recorded on greenlets, never in the thread pool the embedding runs on.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cognition_service.text import search_terms
from cognition_service.timestamps import parse_time
from common import metrics
from common.errors import Forbidden, NotFound, ServiceError

if TYPE_CHECKING:  # the reader brings in the network client; this module needs only its methods
    from cognition_service.embeddings import Embedder
    from cognition_service.memory import MemoryReader

log = logging.getLogger(__name__)

RELEVANCE_WEIGHT = 0.8
RECENCY_WEIGHT = 0.2
RECENCY_HALF_LIFE = timedelta(days=7)
"""A message's recency halves for every week it is older than the newest message considered."""

STEMS = True
"""Whether the lexical half matches stems ("paints" finds "painted") or only exact words."""
LEXICAL_WEIGHT = 0.5
DENSE_WEIGHT = 0.5
NEIGHBOUR_WEIGHTS = (0.5, 0.25)
"""What a message gains from the better of its neighbours one place away, and two places away."""
DENSE_WAIT_SECONDS = 1.0
"""How long get_context waits for the dense half (the model, Memory's vector search) before the words
answer alone: a slow or hung embeddings endpoint must not hold every context retrieval up."""
NEIGHBOURS_OF = 3
"""The neighbours of the best `NEIGHBOURS_OF × limit` fused candidates (at least 30) are read."""

CANDIDATE_FACTOR = 5
MIN_CANDIDATES = 50
MAX_CANDIDATES = 1000  # the largest page Memory's search returns


def candidate_count(limit: int) -> int:
    """How many hits each list (lexical, dense) contributes for `limit` context items: enough that fusion,
    neighbours and recency can lift a message that neither list ranked in its top `limit`."""
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


def scaled(hits: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each hit's score scaled to 0-1 over the list (the best 1, the worst 0; all 1 when they are equal)."""
    scores = {hit["id"]: float(hit.get("score") or 0.0) for hit in hits}
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    return {key: (value - low) / (high - low) if high > low else 1.0 for key, value in scores.items()}


def fuse(lists: Sequence[tuple[float, Sequence[dict[str, Any]]]]) -> dict[str, float]:
    """The weighted sum of each message's scaled scores over the (weight, hits) lists; absent counts 0."""
    fused: dict[str, float] = {}
    for weight, hits in lists:
        for key, value in scaled(hits).items():
            fused[key] = fused.get(key, 0.0) + weight * value
    return fused


def with_neighbours(fused: dict[str, float], messages: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every message of `messages` scored by its own fused score plus, for each distance d, `NEIGHBOUR_WEIGHTS
    [d-1] ×` the better fused score of the messages d places before and after it in its conversation."""
    at = {(message["conversation_id"], message["sequence"]): key for key, message in messages.items()}

    def score_at(conversation: str, sequence: int) -> float:
        key = at.get((conversation, sequence))
        return fused.get(key, 0.0) if key is not None else 0.0

    smoothed = {}
    for key, message in messages.items():
        conversation, sequence = message["conversation_id"], message["sequence"]
        smoothed[key] = fused.get(key, 0.0) + sum(
            weight * max(score_at(conversation, sequence - distance), score_at(conversation, sequence + distance))
            for distance, weight in enumerate(NEIGHBOUR_WEIGHTS, start=1))
    return smoothed


def blend(scores: dict[str, float], messages: dict[str, dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The best `limit` messages by `0.8 × score / best + 0.2 × recency`, each with that as `score`. Ties
    keep the order of `scores`."""
    keys = [key for key in scores if key in messages]
    if not keys:
        return []
    best = max(scores[key] for key in keys)
    recency = recency_scores([messages[key] for key in keys])
    blended = {key: RELEVANCE_WEIGHT * (scores[key] / best if best > 0 else 0.0) + RECENCY_WEIGHT * recent
               for key, recent in zip(keys, recency, strict=True)}
    order = sorted(keys, key=lambda key: -blended[key])[:limit]
    return [{**messages[key], "score": round(blended[key], 6)} for key in order]


def by_recency(newest_first: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages already ordered newest first, each scored by its recency alone."""
    return [{**message, "score": round(recent, 6)}
            for message, recent in zip(newest_first, recency_scores(newest_first), strict=True)]


@contextmanager
def timed(part: str) -> Iterator[None]:
    """Record how long the block took as `part` of a retrieval, whether it returned or raised."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.retrieval_finished(part, time.perf_counter() - started)


def concurrently(work: Callable[[], Any], timeout: float, fallback: Any) -> Callable[[], Any]:
    """Start `work` in its own greenlet when gevent has patched this process (under gunicorn's worker), and
    return a function that waits for its result at most `timeout` seconds (then `fallback`, the greenlet
    killed); without gevent (unit tests, scripts) it runs at once. The greenlet carries the request's
    context and id, so its calls log under it and pass it on."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        result = work()
        return lambda: result
    import gevent

    # In a copy of this context: a new greenlet starts with an empty one, and the copy holds the request's
    # trace (and Flask's request context), as the Core's reply work does.
    greenlet = gevent.spawn(contextvars.copy_context().run, work)

    def wait() -> Any:
        try:
            return greenlet.get(timeout=timeout)
        except gevent.Timeout:
            greenlet.kill(block=False)
            log.warning("get_context without dense retrieval: no answer within %.1f s", timeout)
            return fallback

    return wait


class Retriever:
    """`get_context` and `search_history` over Memory, with an embedder for the dense half (None: lexical
    only) whose `encode` runs through `offload` (off the gevent hub)."""

    def __init__(self, memory: MemoryReader, embedder: Embedder | None = None,
                 offload: Callable[..., Any] = lambda work, *args: work(*args)) -> None:
        self.memory = memory
        self.embedder = embedder
        self.offload = offload

    def dense(self, user_id: str, query: str, limit: int, conversation_id: str | None) -> list[dict[str, Any]]:
        """The dense candidates, or none when there is no embedder or it fails (the lexical half still
        answers; the failure is logged)."""
        if self.embedder is None:
            return []
        try:
            vector = self.offload(self.embedder.encode, [query])[0]
        except Exception as exc:  # noqa: BLE001 - a broken embedder must not take retrieval down with it
            log.warning("get_context without dense retrieval: the embedder failed: %s", str(exc)[:200])
            return []
        return self.memory.similar(user_id, self.embedder.name, [float(x) for x in vector], limit=limit,
                                   conversation_id=conversation_id)

    def get_context(self, user_id: str, query: str | None, conversation_id: str | None,
                    limit: int) -> dict[str, Any]:
        """With a query, the user's best matches from their whole history (or one conversation), hybrid as
        the module says; without one, their newest messages, newest first."""
        with timed("total"):
            if query:
                items = self.hybrid(user_id, query, conversation_id, limit)
            elif conversation_id:
                items = by_recency(self.memory.latest_in_conversation(user_id, conversation_id, limit))
            else:
                items = by_recency(self.memory.newest(user_id, limit))
        return {"context": items, "user_id": user_id, "query": query, "count": len(items)}

    def hybrid(self, user_id: str, query: str, conversation_id: str | None, limit: int) -> list[dict[str, Any]]:
        count = candidate_count(limit)

        def dense_half() -> list[dict[str, Any]]:
            if self.embedder is None:
                return []
            try:
                with timed("dense"):  # a half cut off at DENSE_WAIT_SECONDS is recorded as it is killed
                    return self.dense(user_id, query, count, conversation_id)
            except ServiceError as exc:  # Memory could not search vectors: words alone still answer
                log.warning("get_context without dense retrieval: %s", exc.message)
                return []

        # The two halves wait on different things (the model, two Memory searches), so they overlap.
        dense_waiting = concurrently(dense_half, DENSE_WAIT_SECONDS, [])
        with timed("lexical"):
            lexical = self.memory.search(user_id, search_terms(query), limit=count,
                                         conversation_id=conversation_id, stems=STEMS)
        dense = dense_waiting()
        fused = fuse([(LEXICAL_WEIGHT, lexical), (DENSE_WEIGHT, dense)])
        messages = {hit["id"]: hit for hit in [*dense, *lexical]}
        best = sorted(fused, key=lambda key: -fused[key])[:max(NEIGHBOURS_OF * limit, 30)]
        if best:
            try:
                with timed("neighbours"):
                    around = self.memory.around(user_id, best, len(NEIGHBOUR_WEIGHTS))
                for message in around:
                    messages.setdefault(message["id"], message)
            except ServiceError as exc:  # the hits still answer, without the turns next to them
                log.warning("get_context without neighbouring turns: %s", exc.message)
        scores = with_neighbours(fused, messages)
        # Stable: equal scores keep the fused order, then the order Memory's lists gave.
        ordered = dict(sorted(scores.items(), key=lambda item: -item[1]))
        return blend(ordered, messages, limit)

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
