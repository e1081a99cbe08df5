"""gunicorn settings shared by the three services (`gunicorn -c gunicorn.conf.py ...`).

The master loads this before gevent patches anything, so it imports nothing of ours at the top.
The bind address comes from the command line (`-b`), set per service by the Procfile and scripts.
"""

import atexit
import os
import re
import shutil
import sys
import tempfile


def whole_number(name, default):
    """A positive whole number from the environment. Anything else stops the master with one line naming
    the variable (an exception here would be gunicorn's "Failed to read config file" and a traceback)."""
    value = os.environ.get(name, "").strip() or str(default)
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        sys.exit(f"cortex: invalid configuration: {name} must be a whole number of at least 1, got {value!r}")
    return int(value)


# gunicorn's gevent worker, but with its own refusals (414, 431, bad HTTP) in the JSON error shape.
worker_class = "common.serving.worker.JsonErrorGeventWorker"
workers = whole_number("WEB_CONCURRENCY", 1)
# Each open SSE stream holds one greenlet slot for its whole life; leave room for ordinary calls.
worker_connections = whole_number("WORKER_CONNECTIONS", 12000)
backlog = 4096
# Under gevent the timeout only fires when something blocks the hub; streams never trigger it.
timeout = 30
# Below honcho's 5 s SIGKILL; the watcher below ends open streams so shutdown need not wait for it.
graceful_timeout = 4
# How long an idle keep-alive connection stays open. Clients must expect it closed at any moment after
# this (the network client retries a request the server closed unanswered on an idle connection).
# At least 1: gunicorn's gevent worker reads request headers under this timeout only, so 0 would let a
# client hold a connection for ever by trickling its headers.
keepalive = whole_number("GUNICORN_KEEPALIVE", 5)
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
# gunicorn's default access line, then its time in milliseconds and the request id and trace id the app
# left in the WSGI environ (common/request_ids.py; `-` for a request the app never saw), so the line joins
# the app's own lines for the same request. With LOG_FORMAT=json the logger writes JSON instead.
access_log_format = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms '
                     "request_id=%({cortex.request_id}e)s trace=%({cortex.trace_id}e)s")
# gunicorn's logger, with `?access_token=`, `?ticket=` and similar query values written as [redacted].
logger_class = "common.serving.worker.RedactingLogger"
errorlog = "-"
# gunicorn 27's control socket defaults to one path per user, which every service here would share.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# HTTPS: with a certificate and its private key (PEM files) the service serves TLS only (the gevent worker
# supports it). GUNICORN_CA_CERTS also makes every client present a certificate signed by that CA (mutual
# TLS; the clients' CLIENT_CERT and CLIENT_KEY). Clients trust a private CA through CLIENT_CA_BUNDLE.
certfile = os.environ.get("GUNICORN_CERTFILE") or None
keyfile = os.environ.get("GUNICORN_KEYFILE") or None
ca_certs = os.environ.get("GUNICORN_CA_CERTS") or None
if ca_certs:
    cert_reqs = 2  # ssl.CERT_REQUIRED
for _name in ("GUNICORN_CERTFILE", "GUNICORN_KEYFILE", "GUNICORN_CA_CERTS"):
    if os.environ.get(_name) and not os.path.isfile(os.environ[_name]):
        raise SystemExit(f"cortex: invalid configuration: {_name} names no file: {os.environ[_name]!r}")
if bool(certfile) != bool(keyfile):
    raise SystemExit("cortex: invalid configuration: GUNICORN_CERTFILE and GUNICORN_KEYFILE go together")


def _check_settings():
    """Refuse a bad BODY_READ_TIMEOUT_SECONDS, MAX_CONNECTIONS_PER_* or LOG_FORMAT here, in one line, rather
    than in every worker's boot (the workers read them again; this module only validates)."""
    from common.config import ConfigError, Env, exit_on_config_error
    from common.logs import LOG_FORMATS
    from common.serving.connection_limits import ConnectionLimits

    try:
        ConnectionLimits.from_env()
        Env(os.environ).choice("LOG_FORMAT", "text", LOG_FORMATS)
    except ConfigError as error:
        exit_on_config_error(error)


_check_settings()


def _metrics_directory():
    """Where the workers write their metrics (prometheus-client's multiprocess mode), so a scrape of any
    worker reports all of them: a new directory of this master's own, inside PROMETHEUS_MULTIPROC_DIR when
    that is set (so services sharing it never read or delete each other's files, or anything else there),
    else in the system's temporary directory. Made by `on_starting` in the master, before any worker imports
    prometheus_client; removed when the master exits however it does (a stop, after a reload, halted while
    its workers fail to boot). The workers inherit the exit handler, hence the pid."""
    from common.config import ConfigError, Env, exit_on_config_error

    try:
        enabled = Env(os.environ).bool("METRICS", True)
    except ConfigError as error:
        exit_on_config_error(error)
    if not enabled:
        return
    parent = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip() or None
    if parent:
        os.makedirs(parent, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="cortex-metrics-", dir=parent)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(_remove_own_directory, os.getpid(), directory)


def _remove_own_directory(master, directory):
    if os.getpid() == master:
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server, worker):
    """A worker's live gauges (open streams) stop counting once it is gone; its counters stay summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Runs in the worker after gevent's patching: end every live stream once shutdown begins, so a
    client sees a clean end of stream and reconnects instead of a cut connection."""
    import gevent

    from common.sse import LIVE

    def watch():
        while worker.alive:
            gevent.sleep(0.25)
        LIVE.end_all()

    gevent.spawn(watch)


def worker_exit(server, worker):
    """Close what the app holds open (Memory's database pool) while the worker's threads can still end:
    a pool left to the interpreter's exit is torn down with a traceback in the log."""
    close = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("cortex.close")
    if close is not None:
        close()


def on_starting(server):
    """Before any worker starts: make the metrics directory (first, so nothing imported here can load
    prometheus_client without it), then refuse several Core App workers without REDIS_URL here, in the
    master (each worker checks too, but when every worker refuses, gunicorn reports all but the first with
    a traceback)."""
    _metrics_directory()
    if str(getattr(server.app, "app_uri", None) or "").startswith("core_app"):
        _check_core_workers(server.cfg.workers)


def _check_core_workers(workers):
    from common.config import ConfigError, Env, exit_on_config_error
    from core_app.workers import worker_count

    env = Env(os.environ)
    try:
        worker_count(Env({**os.environ, "WEB_CONCURRENCY": str(workers)}), env.str("REDIS_URL") is not None)
    except ConfigError as error:
        exit_on_config_error(error)
