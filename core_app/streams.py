"""What keeps the output streams of one process in bounds: open streams per user, and an end for a
stream whose token expired or whose reader lost access to the conversation (SPEC §7)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common import metrics
from common.errors import Forbidden, NotFound, ServiceError, Unauthorized
from common.sse import Event
from core_app.slots import KeyedSlots


def stream_slots(per_user: int, retry_after: int) -> KeyedSlots:
    """Open streams per user in this process; one user cannot hold every connection of the worker."""
    return KeyedSlots(per_user, f"at most {per_user} open streams per user; close one first", retry_after,
                      name="streams_per_user")


def stream_capacity(worker_connections: int) -> int:
    """How many output streams this process can hold at once: each holds one of the gevent worker's
    WORKER_CONNECTIONS slots (connections) and one file descriptor for its whole life, so the lower of
    WORKER_CONNECTIONS and the open-files limit. Ordinary calls share both, so this is an upper bound."""
    capacity = worker_connections
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files != resource.RLIM_INFINITY:
        capacity = min(capacity, open_files)
    return capacity


# Refusals that mean the reader has lost the conversation; anything else (Memory busy or down) is not
# the reader's doing, and the stream goes on with the last answer.
_LOST = (Forbidden, NotFound, Unauthorized)


@dataclass
class AccessChecks:
    """Whether a user may still read a conversation, asked of Memory at most once per `interval` for each
    (user, conversation), however many streams they have open on it."""

    ask: Callable[[str, str], object]  # raises when the user may not read the conversation
    interval: float
    clock: Callable[[], float] = time.monotonic
    _answers: dict[tuple[str, str], tuple[float, ServiceError | None]] = field(default_factory=dict)
    _purged: float = 0.0

    def allowed_now(self, user_id: str, conversation_id: str) -> None:
        """Record that Memory has just let the user read the conversation (a stream opening checks it)."""
        self._answers[(user_id, conversation_id)] = (self.clock(), None)

    def refusal(self, user_id: str, conversation_id: str) -> ServiceError | None:
        """None while the user may read the conversation; the refusal once they may not."""
        now = self.clock()
        key = (user_id, conversation_id)
        checked, refused = self._answers.get(key, (-self.interval, None))
        if now - checked < self.interval:
            return refused
        # Streams waking at the same heartbeat use the last answer while one of them asks again.
        self._answers[key] = (now, refused)
        self._purge(now)
        try:
            self.ask(user_id, conversation_id)
            refused = None
        except NotFound as exc:
            gone_user = exc.details.get("object") == "user"
            refused = Unauthorized("the user of this token no longer exists") if gone_user else exc
        except _LOST as exc:
            refused = exc
        except ServiceError:
            pass
        self._answers[key] = (now, refused)
        return refused

    def _purge(self, now: float) -> None:
        if now - self._purged < self.interval:
            return
        self._purged = now
        stale = [key for key, (checked, _) in self._answers.items() if now - checked > 2 * self.interval]
        for key in stale:
            del self._answers[key]


@dataclass(slots=True)
class StreamGuard:
    """Called by the stream at each wake-up (every event and heartbeat, so no timer of its own): the
    `error` event that ends the stream once the token has expired or access is lost, else None."""

    checks: AccessChecks
    user_id: str
    conversation_id: str
    expires_at: float  # Unix seconds
    wall_clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        # Access was checked when the stream opened; `checks` alone paces the next question to Memory.
        self.checks.allowed_now(self.user_id, self.conversation_id)

    def __call__(self) -> Event | None:
        reason = self._ending()
        if reason is None:
            return None
        metrics.subscriber_cut(reason)
        return end_event(reason, ENDINGS[reason])

    def _ending(self) -> str | None:
        if self.wall_clock() >= self.expires_at:
            return "token_expired"
        refused = self.checks.refusal(self.user_id, self.conversation_id)
        if isinstance(refused, Unauthorized):
            return "unauthorized"
        if refused is not None:
            return "forbidden"
        return None


# Why the guard ends a stream (the `error` event's code, and the reason it is counted by), and what it says.
ENDINGS = {
    "token_expired": "the access token has expired; sign in again and reconnect",
    "unauthorized": "the user of this token no longer exists",
    "forbidden": "you no longer have access to this conversation",
}


def end_event(code: str, message: str) -> Event:
    return Event({"code": code, "message": message}, event="error")
