"""Measurements that need a gevent-patched process; run by `test_gevent.py` as a subprocess.

`breaker`: 20 simultaneous 100 ms calls through one client, with our breaker and with pybreaker's.
`sqlite`: how long the hub stalls while a slow SQLite query runs through `Database.read`.
Prints one JSON object.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import pybreaker  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from common.client import ServiceClient  # noqa: E402


class PlainBreaker(pybreaker.CircuitBreaker):
    """pybreaker's own breaker, with the one question our client asks before it waits for a connection."""

    def refuses_calls(self) -> bool:
        return False

def slow_app(environ, start_response):
    gevent.sleep(0.1)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"result": {"ok": true}}']


def timed_burst(client: ServiceClient, n: int = 20) -> float:
    started = time.monotonic()
    jobs = [gevent.spawn(client.call_tool, "slow", {}) for _ in range(n)]
    gevent.joinall(jobs, raise_error=True)
    return time.monotonic() - started


def breaker() -> dict:
    server = WSGIServer(("127.0.0.1", 0), slow_app, log=None)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}"
    ours = ServiceClient("slow", url)
    plain = ServiceClient("slow", url, breaker=PlainBreaker(fail_max=5, reset_timeout=10))
    timed_burst(ours, 2)  # warm the pool
    return {"concurrent_breaker_s": timed_burst(ours), "plain_pybreaker_s": timed_burst(plain)}


SLOW_QUERY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
              "SELECT count(*) FROM c")


def sqlite(path: str) -> dict:
    from memory_service.store.sqlite.database import Database

    db = Database(path)
    gaps = []

    def ticker():
        last = time.monotonic()
        while True:
            gevent.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = gevent.spawn(ticker)
    gevent.sleep(0.05)
    started = time.monotonic()
    db.read(lambda conn: conn.execute(SLOW_QUERY).fetchone())
    query_s = time.monotonic() - started
    tick.kill()
    return {"query_s": query_s, "max_hub_gap_s": max(gaps)}


if __name__ == "__main__":
    result = breaker() if sys.argv[1] == "breaker" else sqlite(sys.argv[2])
    print(json.dumps(result))
