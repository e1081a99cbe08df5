"""What happens after a message is stored: announce it, then generate and store the reply (SPEC §7)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from common.client import ServiceClient
from common.errors import ServiceError, TooManyRequests
from core_app.events import EventLog
from core_app.generators import Generator, Prompt
from core_app.reply_pool import ReplyPool, Ticket

log = logging.getLogger(__name__)

CONTEXT_LIMIT = 5
HISTORY_TURNS = 20
MAX_CONTENT = 32_000


@dataclass
class Replier:
    memory: ServiceClient
    cognition: ServiceClient
    events: EventLog
    generator: Generator
    pool: ReplyPool = field(default_factory=ReplyPool)
    # Ids of messages already announced here, so a client retrying its POST with the same
    # Idempotency-Key (Memory replays the stored message) does not get a second reply.
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, user_id: str, idempotency_key: str | None = None) -> Ticket:
        """A place for the reply to a message about to be stored; `TooManyRequests` when this user, or
        this process, has as many replies in progress as allowed. Store the message inside the ticket's
        `with` block and hand the ticket to `accept`."""
        return self.pool.admit(user_id, idempotency_key)

    def accept(self, user_id: str, message: dict, ticket: Ticket) -> None:
        """Publish the stored user message and queue its reply on the ticket's place."""
        with self._lock:
            if message["id"] in self._seen:
                return  # the ticket's `with` block gives its place back
            self._seen[message["id"]] = None
            if len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        self.events.publish(message["conversation_id"], "message", message)
        try:
            self.pool.start(ticket, lambda: self.reply(user_id, message))
        except TooManyRequests as exc:
            # Only a retry that found no reply in progress after all, with the limits reached since.
            self.events.publish(message["conversation_id"], "error", {
                "code": exc.code, "message": f"no reply to this message: {exc.message}", "in_reply_to": message["id"]})

    def reply(self, user_id: str, message: dict) -> None:
        conversation_id = message["conversation_id"]
        response_id = uuid.uuid4().hex

        def publish(event_type: str, data: dict) -> None:
            self.events.publish(conversation_id, event_type, data)

        try:
            publish("response.started", {"response_id": response_id, "in_reply_to": message["id"]})
            prompt = Prompt(message["content"], self._context(user_id, message, publish),
                            self._history(user_id, message), sender_id=message.get("sender_id"))
            parts = []
            for delta in self.generator.stream(prompt):
                parts.append(delta)
                publish("response.delta", {"response_id": response_id, "delta": delta})
                # Let the streams write between deltas (a yield to the hub under gevent), so a fast
                # generator's burst does not pile up in every subscriber's buffer at once.
                time.sleep(0)
            # A message holds at most MAX_CONTENT characters; a longer reply is stored cut at that length.
            content = "".join(parts)[:MAX_CONTENT] or "…"
            stored = self.memory.call_tool("store_input", {"user_id": user_id, "input_data": {
                "conversation_id": conversation_id, "content": content, "role": "assistant",
                "metadata": {"response_id": response_id, "in_reply_to": message["id"]}}},
                idempotency_key=f"reply-{response_id}")
            publish("response.completed", {"response_id": response_id, "message": stored["message"]})
            publish("message", stored["message"])
        except ServiceError as exc:
            log.warning("reply %s failed: %s %s", response_id, exc.code, exc.message)
            publish("error", {"code": exc.code, "message": exc.message, "response_id": response_id})
        except Exception:
            log.exception("reply %s failed", response_id)
            publish("error", {"code": "internal_error", "message": "the reply failed; see the server log",
                              "response_id": response_id})

    def _context(self, user_id: str, message: dict, publish) -> list[dict]:
        try:
            found = self.cognition.call_tool("get_context", {
                "user_id": user_id, "query": message["content"], "limit": CONTEXT_LIMIT + 1})
        except ServiceError as exc:
            publish("warning", {"code": "context_unavailable",
                                "message": f"replying without context: {exc.message}"})
            return []
        return [item for item in found.get("context", []) if item.get("id") != message["id"]][:CONTEXT_LIMIT]

    def _history(self, user_id: str, message: dict) -> list[dict]:
        try:
            recent = self.memory.call_tool("list_messages", {
                "user_id": user_id, "conversation_id": message["conversation_id"], "limit": HISTORY_TURNS,
                "latest": True})
        except ServiceError as exc:
            log.warning("replying without recent turns: %s", exc.message)
            return []
        return [turn for turn in recent["messages"] if turn["sequence"] < message["sequence"]]
