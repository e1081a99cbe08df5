"""Dense vectors of messages, for retrieval by meaning (docs/COGNITION.md), written once for every backend.

Memory owns them as it owns all durable data: one vector per message, stored next to it and deleted with
it (a foreign-key cascade), tagged with the model that made it. Memory never computes one: the Cognition
Service's embedding workers lease queued messages (`claim_embedding_work`), embed them and store the
vectors (`store_embeddings`). A message is queued in its own write's transaction, so the write is never
slower by an embedding, and queued again when its content changes.

Search (`VectorIndex`) is exact: the cosine of the query with every vector the user may read. Reading
100,000 vectors out of a database for each query would take longer than the search, so each Memory process
keeps the vectors of recently searched conversations in memory, as numpy matrices, bounded in bytes. Before
each search, one query gives each readable conversation's newest vector seq and vector count (from one
index); a copy reads only the rows after its seq, and is read again whole when its count disagrees (a
vector was deleted or replaced), so another process's writes are seen at once. Every hit is then read back
through the readable-messages query, so a message deleted or made unreadable a moment ago is not returned.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from common.errors import InvalidArguments
from memory_service.blocking import run_blocking

if TYPE_CHECKING:
    from memory_service.store.interface import Store

DTYPE = np.dtype("<f4")
"""Vectors are stored as little-endian float32 bytes."""


class WorkItem(NamedTuple):
    ticket: int
    message_id: str
    content: str


class VectorRow(NamedTuple):
    seq: int
    message_id: str
    vector: bytes


def to_bytes(vector: list[float]) -> bytes:
    """A vector as stored."""
    return np.asarray(vector, dtype=DTYPE).tobytes()


def unit(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), so a dot product is a cosine."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


@dataclass
class _Copy:
    """One conversation's vectors of one model: unit rows, their message ids, and the seq read up to."""

    version: int = 0
    ids: list[str] = field(default_factory=list)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes) + 80 * len(self.ids)

    def merged(self, rows: list[VectorRow], version: int, dims: int) -> _Copy:
        """A new copy with `rows` added (replacing a message's older row); rows of other sizes are left out."""
        fresh = [row for row in rows if len(row.vector) == dims * DTYPE.itemsize]
        new_ids = {row.message_id for row in fresh}
        keep = [index for index, message_id in enumerate(self.ids) if message_id not in new_ids]
        added = unit(np.frombuffer(b"".join(row.vector for row in fresh), dtype=DTYPE).reshape(-1, dims))
        old = self.matrix if self.matrix.shape[1:] == (dims,) else np.zeros((0, dims), dtype=np.float32)
        if len(keep) < len(self.ids):
            old = old[keep]
        return _Copy(max(version, self.version, *(row.seq for row in fresh)),
                     [self.ids[index] for index in keep] + [row.message_id for row in fresh],
                     np.vstack([old, added]).astype(np.float32, copy=False))


def _nearest(matrices: list[np.ndarray], query: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's cosine with `query`, and the indexes of the best `take`, best first."""
    joined = np.concatenate([matrix @ query for matrix in matrices])
    take = min(len(joined), take)
    best = np.argpartition(-joined, take - 1)[:take]
    return joined, best[np.argsort(-joined[best], kind="stable")]


class VectorIndex:
    """Exact cosine search over the vectors a user may read, with per-process copies of conversations'
    vectors kept up to `max_bytes` (least recently searched dropped first)."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._copies: OrderedDict[tuple[str, str], _Copy] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0

    def search(self, store: Store, user_id: str, model: str, vector: list[float], limit: int,
               conversation_id: str | None = None) -> dict[str, Any]:
        """The `limit` messages the user may read whose `model` vectors are nearest `vector`, best first,
        each with `score`, the cosine similarity."""
        query = unit(np.asarray(vector, dtype=np.float32))
        versions = store.vector_versions(user_id, model, conversation_id)
        copies = [self._current(store, conversation, model, version, count, len(query))
                  for conversation, (version, count) in versions.items()]
        ids = [message_id for copy in copies for message_id in copy.ids]
        if not ids:
            return {"results": [], "count": 0, "model": model}
        # A few more than asked, in case some are gone or no longer readable. The products run on a
        # thread (numpy lets go of the GIL), so the process's other requests go on meanwhile.
        joined, best = run_blocking(_nearest, [copy.matrix for copy in copies if copy.ids], query, limit + 8)
        readable = {m["id"]: m for m in store.readable_messages(user_id, [ids[i] for i in best])}
        results = [{**readable[ids[i]], "score": round(float(joined[i]), 6)} for i in best if ids[i] in readable]
        return {"results": results[:limit], "count": min(limit, len(results)), "model": model}

    def _current(self, store: Store, conversation: str, model: str, version: int, count: int,
                 dims: int) -> _Copy:
        """The conversation's copy, brought up to `version`: the rows after the copy's seq are added, and a
        copy that then holds other rows than the database's `count` (one was deleted or replaced, or the
        vectors' size changed) is read again whole."""
        key = (conversation, model)
        with self._lock:
            copy = self._copies.get(key) or _Copy()
            if key in self._copies:
                self._copies.move_to_end(key)
        if copy.version >= version and len(copy.ids) == count and copy.matrix.shape[1:] == (dims,):
            return copy
        if copy.version >= version or copy.matrix.shape[1:] != (dims,):
            copy = _Copy()
        rows = store.vectors_after(conversation, model, copy.version)
        if rows and all(len(row.vector) != dims * DTYPE.itemsize for row in rows):
            raise InvalidArguments(f"{model}'s vectors have {len(rows[0].vector) // DTYPE.itemsize} dimensions;"
                                   f" the query has {dims}")
        updated = run_blocking(copy.merged, rows, version, dims)
        if len(updated.ids) != count and copy.ids:  # something older than the copy's seq went
            updated = run_blocking(_Copy().merged, store.vectors_after(conversation, model, 0), version, dims)
        with self._lock:
            old = self._copies.pop(key, None)
            self._bytes += updated.nbytes - (old.nbytes if old else 0)
            self._copies[key] = updated
            while self._bytes > self.max_bytes and len(self._copies) > 1:
                _, dropped = self._copies.popitem(last=False)
                self._bytes -= dropped.nbytes
        return updated

    @property
    def cached_bytes(self) -> int:
        return self._bytes
