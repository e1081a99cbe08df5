"""`GET /debug/stats`: counts that show leaks (greenlets, open file descriptors, live streams).

Off unless a service's config turns it on (`DEBUG_STATS=true`): it is for load and fault tests."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable

from flask import Blueprint, Response, jsonify

from common.sse import LIVE


def _greenlets() -> int:
    try:
        from greenlet import greenlet
    except ImportError:  # pragma: no cover - greenlet comes with gevent
        return 0
    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet) and not obj.dead)


def stats_blueprint(extra: Callable[[], dict] | None = None) -> Blueprint:
    bp = Blueprint("stats", __name__)

    @bp.get("/debug/stats")
    def stats() -> Response:
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = -1
        return jsonify({"pid": os.getpid(), "greenlets": _greenlets(), "open_fds": fds, "live_streams": len(LIVE),
                        **(extra() if extra else {})})

    return bp
