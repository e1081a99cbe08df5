"""Conversation analyses (SPEC §5): summary, topics, sentiment and activity, each a pure function of a
conversation's messages in sequence order. docs/COGNITION.md documents every result field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from itertools import pairwise
from statistics import fmean
from typing import TYPE_CHECKING, Any, Literal, get_args

from cognition_service.sentiment import Tally, tally
from cognition_service.text import content_words, normalise, sentences, words
from cognition_service.timestamps import parse_time
from common.errors import InvalidArguments

if TYPE_CHECKING:  # the reader brings in the network client; this module needs only its methods
    from cognition_service.memory import MemoryReader

AnalysisType = Literal["summary", "topics", "sentiment", "activity"]
ANALYSIS_TYPES: tuple[str, ...] = get_args(AnalysisType)
ROLES = ("user", "assistant", "system")

KEY_POINTS = 3
MIN_KEY_POINT_TERMS = 3
KEY_POINT_CHARS = 280
TOPIC_COUNT = 10

Message = dict[str, Any]


def role_counts(messages: Sequence[Message]) -> dict[str, int]:
    counts = dict.fromkeys(ROLES, 0)
    for message in messages:
        counts[message["role"]] = counts.get(message["role"], 0) + 1
    return counts


def clip(text: str, limit: int = KEY_POINT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"


def summary(messages: Sequence[Message], topic: str | None = None) -> dict[str, Any]:
    """Counts plus an extractive summary: the `KEY_POINTS` sentences whose content words are most
    frequent across the conversation on average, in conversation order."""
    frequency = Counter(term for message in messages for term in content_words(message["content"]))
    scored: list[tuple[float, int, int, str, Message]] = []  # score, distinct terms, position, text, message
    seen: set[str] = set()
    for message in messages:
        for sentence in sentences(message["content"]):
            terms = set(content_words(sentence))
            if not terms or normalise(sentence) in seen:  # repeated lines ("thanks!") are not news
                continue
            seen.add(normalise(sentence))
            score = sum(frequency[term] for term in terms) / len(terms)
            scored.append((score, len(terms), len(scored), sentence, message))
    # Very short sentences ("Great, thanks") would win on one frequent word; use them only if nothing else.
    pool = [entry for entry in scored if entry[1] >= MIN_KEY_POINT_TERMS] or scored
    chosen = sorted(sorted(pool, key=lambda entry: (-entry[0], entry[2]))[:KEY_POINTS], key=lambda e: e[2])
    key_points = [{"message_id": message["id"], "sequence": message["sequence"], "role": message["role"],
                   "text": clip(sentence)} for _, _, _, sentence, message in chosen]
    participants = list(dict.fromkeys(message["sender_id"] for message in messages))
    return {
        "topic": topic,
        "message_count": len(messages),
        "participant_count": len(participants),
        "participants": participants,
        "by_role": role_counts(messages),
        "first_message_at": messages[0]["created_at"] if messages else None,
        "last_message_at": messages[-1]["created_at"] if messages else None,
        "key_points": key_points,
        "summary": " ".join(point["text"] for point in key_points),
    }


def topics(messages: Sequence[Message]) -> dict[str, Any]:
    """The `TOPIC_COUNT` most frequent content words (no stop words, numbers or words under 3 letters)."""
    counts: Counter[str] = Counter()
    in_messages: Counter[str] = Counter()
    for message in messages:
        terms = content_words(message["content"])
        counts.update(terms)
        in_messages.update(set(terms))
    total = sum(counts.values())
    ranked = sorted(counts, key=lambda term: (-counts[term], -in_messages[term], term))[:TOPIC_COUNT]
    return {
        "topics": [{"term": term, "count": counts[term], "message_count": in_messages[term],
                    "weight": round(counts[term] / total, 4)} for term in ranked],
        "term_count": total,
        "distinct_terms": len(counts),
    }


def _sentiment_entry(counted: Tally) -> dict[str, Any]:
    return {"score": counted.score, "label": counted.label, "positive": counted.positive,
            "negative": counted.negative}


def sentiment(messages: Sequence[Message]) -> dict[str, Any]:
    """Lexicon sentiment of the whole conversation, of each role and of each message (see `sentiment.py`)."""
    per_message = [(message, tally(message["content"])) for message in messages]
    by_role = {role: Tally() for role in ROLES}
    for message, counted in per_message:
        by_role[message["role"]] = by_role.get(message["role"], Tally()) + counted
    total = sum((counted for _, counted in per_message), Tally())
    return {
        **_sentiment_entry(total),
        "by_role": {role: _sentiment_entry(counted) for role, counted in by_role.items()},
        "by_message": [{"message_id": message["id"], "sequence": message["sequence"], "role": message["role"],
                        **_sentiment_entry(counted)} for message, counted in per_message],
    }


def activity(messages: Sequence[Message]) -> dict[str, Any]:
    """Who wrote how much and when: counts per role and sender, words, span, messages per UTC day, and
    how long replies took (an assistant message straight after a user message)."""
    senders: dict[str, dict[str, Any]] = {}
    for message in messages:
        entry = senders.setdefault(message["sender_id"], {"sender_id": message["sender_id"], "messages": 0,
                                                          "words": 0})
        entry["messages"] += 1
        entry["words"] += len(words(message["content"]))
    word_count = sum(entry["words"] for entry in senders.values())
    times = [parse_time(message.get("created_at")) for message in messages]
    days = Counter(moment.astimezone(UTC).date().isoformat() for moment in times if moment is not None)
    replies = [(later - earlier).total_seconds()
               for (first, earlier), (second, later) in pairwise(zip(messages, times, strict=True))
               if first["role"] == "user" and second["role"] == "assistant" and earlier and later]
    known = [moment for moment in times if moment is not None]
    return {
        "message_count": len(messages),
        "by_role": role_counts(messages),
        "participants": sorted(senders.values(), key=lambda entry: -entry["messages"]),
        "word_count": word_count,
        "average_words_per_message": round(word_count / len(messages), 2) if messages else 0.0,
        "first_message_at": messages[0]["created_at"] if messages else None,
        "last_message_at": messages[-1]["created_at"] if messages else None,
        "duration_seconds": round((max(known) - min(known)).total_seconds(), 3) if known else 0.0,
        "by_day": [{"date": day, "messages": count} for day, count in sorted(days.items())],
        "average_reply_seconds": round(fmean(replies), 3) if replies else None,
    }


ANALYSES: dict[str, Callable[[Sequence[Message]], dict[str, Any]]] = {
    "summary": summary, "topics": topics, "sentiment": sentiment, "activity": activity,
}


@dataclass(frozen=True)
class AnalysisLimits:
    """How much of a conversation one analysis reads: its latest `max_messages`, and of those only the
    newest that fit in `max_chars` of content, so one request's work is bounded whatever the conversation."""

    max_messages: int = 500
    max_chars: int = 200_000


def latest_within(newest_first: Sequence[Message], limits: AnalysisLimits) -> tuple[list[Message], bool]:
    """The newest messages within `limits`, in conversation order, and whether any were left out. A newest
    message longer than `max_chars` on its own is analysed in its first `max_chars` characters."""
    kept: list[Message] = []
    chars = 0
    for message in newest_first[:limits.max_messages]:
        size = len(message["content"])
        if chars + size > limits.max_chars:
            if not kept:
                return [{**message, "content": message["content"][:limits.max_chars]}], True
            break
        kept.append(message)
        chars += size
    return kept[::-1], len(kept) < len(newest_first)


def run_inline(work: Callable[..., Any], *args: Any) -> Any:
    return work(*args)


class Analyst:
    """Runs the analyses for the tool and the resource: reads the conversation's latest messages through
    Memory (which checks the user's access), bounds them by `limits`, and computes through `run`, which
    may move the CPU-bound work off the event loop (see `cognition_service.offload`)."""

    def __init__(self, memory: MemoryReader, limits: AnalysisLimits = AnalysisLimits(),
                 run: Callable[..., Any] = run_inline) -> None:
        self.memory = memory
        self.limits = limits
        self.run = run

    def analyze(self, user_id: str, conversation_id: str, analysis_type: str) -> dict[str, Any]:
        """One analysis of the conversation; `truncated` says whether older messages were left out, and
        `analyzed_messages` how many were read (every count in `results` is over those)."""
        if analysis_type not in ANALYSES:
            raise InvalidArguments(f"analysis_type must be one of {', '.join(ANALYSIS_TYPES)}")
        # One more than the limit tells whether there are older messages than the ones analysed.
        newest_first = self.memory.latest_in_conversation(user_id, conversation_id, self.limits.max_messages + 1)
        messages, truncated = latest_within(newest_first, self.limits)
        if analysis_type == "summary":
            topic = self.memory.conversation(user_id, conversation_id).get("topic")
            results = self.run(summary, messages, topic)
        else:
            results = self.run(ANALYSES[analysis_type], messages)
        return {"type": analysis_type, "conversation_id": conversation_id, "results": results,
                "truncated": truncated, "analyzed_messages": len(messages)}
