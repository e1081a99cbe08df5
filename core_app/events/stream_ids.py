"""The positions of the Redis event log: Redis stream ids (`1700000000000-0`), and the ids an in-process log
sent before a deployment moved to Redis, which are well-formed but replayable nowhere."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core_app.events.inprocess import EventId

# No leading zeros: Redis never writes them, and an in-process id (12 hex digits) may look like digits.
_STREAM_ID = re.compile(r"^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$")
_LIMIT = 1 << 64


@dataclass(frozen=True, order=True)
class StreamId:
    """A Redis stream id: milliseconds and a sequence within them; ordered as Redis orders them."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, raw: str | bytes) -> StreamId:
        """The id as Redis or a client wrote it; ValueError for anything else."""
        text = raw.decode("ascii") if isinstance(raw, bytes) else raw
        match = _STREAM_ID.match(text.strip())
        if match is None:
            raise ValueError("not a stream id")
        ms, seq = int(match.group(1)), int(match.group(2))
        if ms >= _LIMIT or seq >= _LIMIT:
            raise ValueError("not a stream id")
        return cls(ms, seq)


# The position of a conversation whose stream holds nothing yet (what `connected` says then).
START = StreamId(0, 0)


@dataclass(frozen=True, order=True)
class RetiredId:
    """An id of the in-process log (or an older server's plain number): sent once, replayable by no Redis
    log, so resuming from it is `replay_window_exceeded` (reload the history), not a bad request."""

    text: str

    def __str__(self) -> str:
        return self.text


def parse_position(raw: str) -> StreamId | RetiredId:
    """A stream id, or a retired in-process id; ValueError for anything else."""
    try:
        return StreamId.parse(raw)
    except ValueError:
        EventId.parse(raw)
        return RetiredId(raw.strip())
