"""A second load-generator process holding streams for `scaleout-capacity`: one process may not hold
20,000 sockets here (the hard descriptor limit is 20,000), so this one holds the half on Core B.

    python holder.py PORT PATH        # then, on stdin, one command a line:
    open N                            # hold N streams in all; answers `held H`
    report MARKER SECONDS             # wait until every stream has MARKER (or SECONDS); answers a JSON
                                      # list of the monotonic times it arrived (same clock as the parent)
    quit
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit.holding import HeldStream, hold  # noqa: E402
from benchkit.procs import raise_file_limit  # noqa: E402


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    raise_file_limit(30_000)
    received: dict[str, list[float]] = {}
    streams: list[HeldStream] = []
    # Cooperative stdin: a blocking read would stop the hub, and with it the streams' receive times.
    commands = FileObjectPosix(sys.stdin.fileno(), "rb")
    out = sys.stdout
    for raw in commands:
        words = raw.decode().split()
        if not words or words[0] == "quit":
            break
        if words[0] == "open":
            wanted = int(words[1]) - len(streams)
            if wanted > 0:
                streams += hold(port, path, wanted, received)
            out.write(f"held {len(streams)}\n")
        elif words[0] == "report":
            marker, deadline = words[1], time.monotonic() + float(words[2])
            held = len(streams)
            while len(received.get(marker, [])) < held and time.monotonic() < deadline:
                gevent.sleep(0.01)
            out.write(json.dumps(received.get(marker, [])) + "\n")
        out.flush()
    for stream in streams:
        stream.close()


if __name__ == "__main__":
    main()
