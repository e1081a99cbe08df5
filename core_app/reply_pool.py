"""Bounded reply work: at most `concurrency` replies run at once in this process, at most `queue` more wait
for a turn, and each user holds at most `per_user` of those places.

A place is taken *before* the user's message is stored (`admit`), so a refusal (429) stores nothing and a
202 always means a reply is coming; it is given back when the reply ends, or at once if the message was
not stored after all.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import TooManyRequests

log = logging.getLogger(__name__)

RETRY_AFTER_MAX = 60


@dataclass(frozen=True)
class ReplyLimits:
    concurrency: int = 64  # REPLY_CONCURRENCY
    queue: int = 256  # REPLY_QUEUE
    per_user: int = 4  # REPLIES_PER_USER


class _Place:
    """One place in the pool, shared by every request with the same idempotency key while it is held."""

    def __init__(self, user_id: str, key: str | None) -> None:
        self.user_id = user_id
        self.key = key
        self.holders = 0  # tickets still inside their `with` block
        self.started = False  # a reply runs, or waits to run, on this place
        # Requests sharing the place decide one at a time whether they start its reply, so a retry whose
        # answer came back first cannot start a second reply beside the first write's.
        self.deciding = threading.Lock()
        self.released = False


class Ticket:
    """An admitted request's hold on a place, from admission until its message is stored and handed over.

    Used as a context manager around storing the message: leaving the block gives the place back unless
    a reply was started on it (`ReplyPool.start`); then the place is given back when the reply ends.
    """

    def __init__(self, pool: ReplyPool, place: _Place) -> None:
        self.pool = pool
        self.place = place

    @property
    def replying(self) -> bool:
        """Whether a reply already runs, or waits to run, on this place: a request with the same
        idempotency key started it in this process."""
        return self.place.started

    def deciding(self) -> threading.Lock:
        """Held while a request decides whether to start the reply on this place (`replying` first)."""
        return self.place.deciding

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool._leave(self.place)


class ReplyPool:
    """Runs admitted replies on at most `limits.concurrency` worker threads (greenlets under gevent),
    first come first served."""

    def __init__(self, limits: ReplyLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or ReplyLimits()
        self.clock = clock
        self._lock = threading.Lock()
        self._waiting: deque[tuple[_Place, contextvars.Context, Callable[[], None]]] = deque()
        self._by_user: Counter[str] = Counter()
        self._by_key: dict[str, _Place] = {}  # places held by requests that sent an idempotency key
        self._admitted = 0
        self._running = 0
        self._workers = 0
        self._typical_seconds = 1.0  # a moving average of how long a reply runs, for Retry-After

    def admit(self, user_id: str, key: str | None = None) -> Ticket:
        """A hold on a place for the reply to a message about to be stored, or `TooManyRequests`.

        `key` is the request's idempotency key (unique per user): a retry of a request whose place is still
        held (its message being stored, or its reply still coming) shares that place and is never refused.
        """
        with self._lock:
            place = self._by_key.get(key) if key is not None else None
            if place is None:
                place = self._take(user_id, key)
            place.holders += 1
            return Ticket(self, place)

    def start(self, ticket: Ticket, work: Callable[[], None]) -> None:
        """Run `work` when a worker is free, then give the place back. Should a reply already be started
        on the ticket's place (a retry that found a message of its own), this takes another place, which
        may raise `TooManyRequests`.

        `work` runs in a copy of the caller's context (a worker starts with an empty one), so the reply logs
        under the request's id and trace and passes them on to Memory and Cognition."""
        with self._lock:
            place = ticket.place
            if place.started:
                fresh = self._take(place.user_id, None)
                place.holders -= 1
                place = ticket.place = fresh
                place.holders += 1
            place.started = True
            self._waiting.append((place, contextvars.copy_context(), work))
            spawn = self._workers < self.limits.concurrency
            if spawn:
                self._workers += 1
        if spawn:
            # A greenlet under gunicorn's gevent worker (threading is patched), a thread elsewhere.
            threading.Thread(target=self._work, daemon=True, name="reply").start()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"running": self._running, "waiting": len(self._waiting), "admitted": self._admitted,
                    "users": len(self._by_user), "workers": self._workers}

    def _take(self, user_id: str, key: str | None) -> _Place:
        """A new place for `user_id`, or a refusal; the caller holds the lock."""
        if self._by_user[user_id] >= self.limits.per_user:
            raise TooManyRequests(
                f"you already have {self.limits.per_user} replies in progress; wait for one to finish",
                {"limit": "replies_per_user", "allowed": self.limits.per_user},
                retry_after=self._retry_after(1.0))
        if self._admitted >= self.limits.concurrency + self.limits.queue:
            ahead = self._admitted / self.limits.concurrency
            raise TooManyRequests(
                "the server is busy with other replies; try again shortly",
                {"limit": "reply_queue", "allowed": self.limits.concurrency + self.limits.queue},
                retry_after=self._retry_after(ahead))
        self._by_user[user_id] += 1
        self._admitted += 1
        place = _Place(user_id, key)
        if key is not None:
            self._by_key[key] = place
        return place

    def _retry_after(self, replies_ahead: float) -> int:
        return min(RETRY_AFTER_MAX, max(1, math.ceil(self._typical_seconds * replies_ahead)))

    def _leave(self, place: _Place) -> None:
        with self._lock:
            place.holders -= 1
            if place.holders == 0 and not place.started:
                self._release(place)

    def _release(self, place: _Place) -> None:
        """Give a place back; the caller holds the lock."""
        if place.released:
            return
        place.released = True
        self._by_user[place.user_id] -= 1
        if self._by_user[place.user_id] <= 0:
            del self._by_user[place.user_id]
        if place.key is not None and self._by_key.get(place.key) is place:
            del self._by_key[place.key]
        self._admitted -= 1

    def _work(self) -> None:
        """Run waiting replies until none is left; no worker idles, so a quiet process holds none."""
        while True:
            with self._lock:
                if not self._waiting:
                    self._workers -= 1
                    return
                place, context, work = self._waiting.popleft()
                self._running += 1
            began = self.clock()
            try:
                context.run(_run_reply, work)
            finally:
                seconds = self.clock() - began
                with self._lock:
                    self._running -= 1
                    self._typical_seconds = 0.8 * self._typical_seconds + 0.2 * seconds
                    self._release(place)


def _run_reply(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # the work reports its own failures; this keeps the worker alive
        log.exception("a reply failed outside its own error handling")
