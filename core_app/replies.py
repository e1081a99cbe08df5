"""What happens after a message is stored: announce it, then generate and store the reply (SPEC §7).

Exactly one Core process replies to a stored message, whichever process (or retry) stored it: the reply
begins by claiming the message from Memory (`claim_reply`), which says yes once per message ever.

Counted here: events published by type, each reply's time to first text and to its end by outcome
(REPLY_OUTCOMES), the language model's failures by kind, and refusals of the reply limits.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common import metrics
from common.errors import ServiceError, TooManyRequests
from common.models import MAX_MESSAGE_CHARS
from core_app.cognition import Cognition
from core_app.events import EventLog, StreamUnavailable
from core_app.generators import Generator, Prompt, ProviderError
from core_app.memory import Memory
from core_app.reply_pool import ReplyPool, Ticket

log = logging.getLogger(__name__)

CONTEXT_LIMIT = 5
HISTORY_TURNS = 20

# The events a conversation's stream carries (`cortex_events_published{type}`; anything else is "other").
EVENT_TYPES = frozenset({"message", "response.started", "response.delta", "response.completed", "warning", "error"})
# How a reply this process claimed ended: stored and published; the language model failed; Memory or
# Cognition failed it (the claim, or storing the reply); anything else (a bug, logged with its traceback).
REPLY_OUTCOMES = ("completed", "provider_failed", "dependency_failed", "error")
# The reply pool's refusals, named after their settings (REPLIES_PER_USER, REPLY_QUEUE).
REPLY_LIMITS = frozenset({"replies_per_user", "reply_queue"})

T = TypeVar("T")


def in_background(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` on its own thread (a greenlet under gunicorn's gevent worker, where threading is
    patched), in a copy of this context (a new thread starts with an empty one: its calls would carry no
    trace); the function returned waits for its result, or raises what it raised."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller, which reports it
            outcome["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True, name="reply-lookup")
    thread.start()

    def result() -> T:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return result


@dataclass
class Replier:
    memory: Memory
    cognition: Cognition
    events: EventLog
    generator: Generator
    pool: ReplyPool = field(default_factory=ReplyPool)
    provider: str = "builtin"  # LLM_PROVIDER: the label of the reply metrics

    def admit(self, user_id: str, idempotency_key: str | None = None) -> Ticket:
        """A place for the reply to a message about to be stored; `TooManyRequests` when this user, or
        this process, has as many replies in progress as allowed. Store the message inside the ticket's
        `with` block and hand the ticket to `accept`."""
        try:
            return self.pool.admit(user_id, idempotency_key)
        except TooManyRequests as exc:
            limit = exc.details.get("limit")
            metrics.rate_limited("core", limit if limit in REPLY_LIMITS else "replies")
            raise

    def accept(self, user_id: str, message: dict, ticket: Ticket, replayed: bool | None = False) -> None:
        """Publish the stored user message and queue its reply on the ticket's place, unless another
        request already did.

        A first write (`replayed` false) is announced at once, and its reply claims the message while it
        gathers context. A replay (a retried POST; None: Memory did not say) is announced and answered
        only if it wins the claim: the first attempt may have been stored but lost on its way back (a 503
        to the user), and then this retry is the one that must reply."""
        with ticket.deciding():
            if ticket.replying:
                return  # this process replies to it already; the ticket's `with` block gives its place back
            if replayed is False:
                self._announce(user_id, message, ticket, claimed=False)
                return
            try:
                won = self.memory.claim_reply(user_id, message["id"]).claimed
            except ServiceError as exc:
                log.warning("no reply to %s: the claim failed: %s %s", message["id"], exc.code, exc.message)
                self.publish(message["conversation_id"], "error", {
                    "code": exc.code, "message": exc.message, "response_id": uuid.uuid4().hex,
                    "in_reply_to": message["id"]})
                return
            if won:
                self._announce(user_id, message, ticket, claimed=True)

    def publish(self, conversation_id: str, event_type: str, data: dict) -> None:
        """Publish on the output stream; a shared log that is down loses the event, never the request or the
        reply (Memory is the record; the log has said so once, and ended the streams that would miss it)."""
        try:
            self.events.publish(conversation_id, event_type, data)
        except StreamUnavailable:
            return
        metrics.event_published(event_type if event_type in EVENT_TYPES else "other")

    def _announce(self, user_id: str, message: dict, ticket: Ticket, *, claimed: bool) -> None:
        accepted = time.monotonic()
        self.publish(message["conversation_id"], "message", message)
        try:
            self.pool.start(ticket, lambda: self.reply(user_id, message, claimed=claimed, accepted_at=accepted))
        except TooManyRequests as exc:
            # Only a retry that found no reply in progress after all, with the limits reached since.
            self.publish(message["conversation_id"], "error", {
                "code": exc.code, "message": f"no reply to this message: {exc.message}", "in_reply_to": message["id"]})

    def reply(self, user_id: str, message: dict, *, claimed: bool = False, accepted_at: float | None = None) -> None:
        """Generate, stream and store the reply to `message`. Unless `claimed`, first claim the message, with
        the recent turns in the same call, while the context is read, and stop silently on losing it.
        Its times are measured from `accepted_at` (`time.monotonic()` when the message was accepted; now
        without it), and recorded unless another process replies."""
        began = time.monotonic() if accepted_at is None else accepted_at
        ended = self._reply(user_id, message, claimed, began)
        if ended is not None:
            outcome, pieces = ended
            metrics.reply_finished(self.provider, outcome, time.monotonic() - began, pieces)

    def _reply(self, user_id: str, message: dict, claimed: bool, began: float) -> tuple[str, int] | None:
        """The reply's work: how it ended (one of REPLY_OUTCOMES) and the text pieces it streamed, or None
        when another process or request replies."""
        conversation_id = message["conversation_id"]
        response_id = uuid.uuid4().hex
        parts: list[str] = []

        def publish(event_type: str, data: dict) -> None:
            self.publish(conversation_id, event_type, data)

        try:
            # Independent lookups, run at once: the reply waits for the slowest, not for their sum. Unclaimed,
            # the claim itself brings the recent turns (one call to Memory for both).
            context = in_background(lambda: self._context(user_id, message))
            if claimed:
                history = in_background(lambda: self._history(user_id, message))
            else:
                claim = self.memory.claim_reply(user_id, message["id"], recent=HISTORY_TURNS)
                if not claim.claimed:
                    return None  # another process or request replies to it
                turns = claim.recent
                history = lambda: turns  # noqa: E731 - the same shape as the lookup's result
            publish("response.started", {"response_id": response_id, "in_reply_to": message["id"]})
            items, warning = context()
            if warning is not None:
                publish("warning", warning)
            prompt = Prompt(message["content"], items, history(), sender_id=message.get("sender_id"))
            for delta in self.generator.stream(prompt):
                if not parts:
                    metrics.reply_first_token(self.provider, time.monotonic() - began)
                parts.append(delta)
                publish("response.delta", {"response_id": response_id, "delta": delta})
                # Let the streams write between deltas (a yield to the hub under gevent), so a fast
                # generator's burst does not pile up in every subscriber's buffer at once.
                time.sleep(0)
            # A message holds at most MAX_MESSAGE_CHARS characters; a longer reply is stored cut at that length.
            content = "".join(parts)[:MAX_MESSAGE_CHARS] or "…"
            stored = self.memory.store_reply(user_id, conversation_id, content,
                                             {"response_id": response_id, "in_reply_to": message["id"]},
                                             idempotency_key=f"reply-{response_id}").body()
            publish("response.completed", {"response_id": response_id, "message": stored})
            publish("message", stored)
            return "completed", len(parts)
        except ServiceError as exc:
            log.warning("reply %s failed: %s %s", response_id, exc.code, exc.message)
            publish("error", {"code": exc.code, "message": exc.message, "response_id": response_id})
            if isinstance(exc, ProviderError):
                metrics.provider_failed(self.provider, exc.kind)
                return "provider_failed", len(parts)
            return "dependency_failed", len(parts)
        except Exception:
            log.exception("reply %s failed", response_id)
            publish("error", {"code": "internal_error", "message": "the reply failed; see the server log",
                              "response_id": response_id})
            return "error", len(parts)

    def _context(self, user_id: str, message: dict) -> tuple[list[dict], dict | None]:
        """Context items for the reply, and the warning to publish when Cognition could not give any."""
        try:
            found = self.cognition.context_for_reply(user_id, message["content"], CONTEXT_LIMIT + 1)
        except ServiceError as exc:
            return [], {"code": "context_unavailable", "message": f"replying without context: {exc.message}"}
        return [item for item in found if item.get("id") != message["id"]][:CONTEXT_LIMIT], None

    def _history(self, user_id: str, message: dict) -> list[dict]:
        try:
            recent = self.memory.recent_turns(user_id, message["conversation_id"], HISTORY_TURNS)
        except ServiceError as exc:
            log.warning("replying without recent turns: %s", exc.message)
            return []
        return [turn for turn in recent if turn["sequence"] < message["sequence"]]
