"""Under gevent (a gunicorn worker) psycopg never blocks the hub: slow queries overlap and a ticker keeps
ticking. Run in a fresh, monkey-patched interpreter, as a worker is; the app's own imports must not pull
psycopg in before the patching (it would pick its blocking wait function)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time, gevent
import memory_service.app, memory_service.__main__, memory_service.store  # what a worker imports
imported_early = sorted(name for name in sys.modules if name.startswith("psycopg"))
from memory_service.store.postgresql import PostgresStore
import psycopg.waiting
store = PostgresStore(sys.argv[1], pool_size=5)
sleep = lambda conn: conn.execute("SELECT pg_sleep(0.5)").fetchall()
gevent.joinall([gevent.spawn(store.db.read, lambda conn: conn.execute("SELECT 1").fetchall())
                for _ in range(5)], raise_error=True)  # the pool at its five connections
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in iter(int, 1)])
start = time.perf_counter()
gevent.joinall([gevent.spawn(store.db.read, sleep) for _ in range(5)], raise_error=True)
elapsed = time.perf_counter() - start
ticker.kill()
store.close()
print(json.dumps({"early": imported_early, "wait": psycopg.waiting.wait.__name__, "elapsed": elapsed,
                  "ticks": len(ticks)}))
"""


def test_slow_queries_leave_the_hub_free(pg_url: str) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, pg_url], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["early"] == [], "psycopg imported before the store was opened"
    assert report["wait"] == "wait_poll"
    assert report["elapsed"] < 1.2, report  # five 0.5 s queries at once, not one after another (2.5 s)
    assert report["ticks"] >= 25, report  # the hub kept running every 10 ms or so
