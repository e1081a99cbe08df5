"""The embedding worker: turns queued messages into vectors stored by Memory, after their write is durable.

Memory queues every new or changed message in the write's own transaction (memory_service/store/vectors.py),
so `store_input` is acknowledged without waiting for an embedding. Each Cognition process runs one worker:
it leases a batch (`claim_embedding_work`), embeds it off the gevent hub, and stores the vectors
(`store_embeddings`); while there is work it goes on at once, and when the queue is empty it asks again
every `poll_seconds`, so a new message is searchable by meaning within about that long plus one batch.
Several processes share the queue: a lease keeps two from taking the same message, and a worker that dies
leaves its lease to expire. At start the worker queues every message without a vector of its model
(`queue_missing_embeddings`): messages stored before vectors existed, or made by another model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from cognition_service.embeddings import Embedder
from common.client import ServiceClient
from common.errors import ServiceError

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
MAX_CHARS = 8_000
"""Of a message, only this much is embedded (the built-in model reads 256 tokens, about 1,000 characters;
an endpoint may refuse a longer input)."""


class Indexer:
    def __init__(self, memory: ServiceClient, embedder: Embedder, *, batch: int = 64, poll_seconds: float = 0.2,
                 lease_seconds: float = 60.0, offload: Callable[..., Any] = lambda work, *args: work(*args)) -> None:
        self.memory = memory
        self.embedder = embedder
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.offload = offload
        self.backfilled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backfill(self) -> int:
        """Queue every message without a vector of this model; how many were queued."""
        queued = int(self.memory.call_tool("queue_missing_embeddings", {"model": self.embedder.name})["queued"])
        self.backfilled = True
        if queued:
            log.info("queued %d messages stored without a %s vector", queued, self.embedder.name)
        return queued

    def run_once(self) -> int:
        """Embed one leased batch; how many messages it held."""
        items = self.memory.call_tool("claim_embedding_work", {
            "limit": self.batch, "lease_seconds": self.lease_seconds})["items"]
        if not items:
            return 0
        texts = [item["content"][:MAX_CHARS] for item in items]
        try:
            done = list(zip(items, self.offload(self.embedder.encode, texts), strict=True))
        except ServiceError:
            raise  # the embedder's endpoint is down: the whole batch waits for its lease to end
        except Exception:
            if len(items) == 1:
                raise
            # One message the model cannot take must not hold back the rest: each on its own, and the
            # one that fails keeps its lease (tried again when it ends).
            done = []
            for item, text in zip(items, texts, strict=True):
                try:
                    done.append((item, self.offload(self.embedder.encode, [text])[0]))
                except Exception as exc:  # noqa: BLE001 - logged; the message stays queued
                    log.warning("message %s could not be embedded: %s", item["message_id"], str(exc)[:200])
            if not done:
                return len(items)
        self.memory.call_tool("store_embeddings", {"model": self.embedder.name, "items": [
            {"ticket": item["ticket"], "message_id": item["message_id"], "vector": [float(x) for x in vector]}
            for item, vector in done]})
        return len(items)

    def start(self) -> None:
        """Run in the background (a greenlet under gevent's patched threading) until `stop`."""
        if self._thread is None and self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="embedding-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                if not self.backfilled:
                    self.backfill()
                done = self.run_once()
                backoff = 0.0
            except ServiceError as exc:  # Memory down or refusing: try again later, quietly after the first
                if not backoff:
                    log.warning("embedding worker paused: %s", exc.message)
                backoff = min(MAX_BACKOFF_SECONDS, max(self.poll_seconds, backoff * 2))
                self._stop.wait(backoff)
                continue
            except Exception:
                log.exception("embedding worker failed a batch")
                backoff = min(MAX_BACKOFF_SECONDS, max(self.poll_seconds, backoff * 2))
                self._stop.wait(backoff)
                continue
            if not done:
                self._stop.wait(self.poll_seconds)
