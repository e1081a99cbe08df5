"""The positions of the Redis event log: Redis stream ids (`1700000000000-0`). The ids an in-process log sent
before a deployment moved to Redis are well-formed but replayable nowhere (`RetiredId`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
