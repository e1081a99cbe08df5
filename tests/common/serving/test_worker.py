"""The gunicorn logger keeps credentials sent in request URLs out of the access and error logs, writes the
request id and trace id on its access lines, and JSON lines under LOG_FORMAT=json."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from common import logs
from common.serving.worker import RedactingLogger, redact, service_name

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(("text", "expected"), [
    (f"/v1/conversation/c1/messages/stream?access_token={TOKEN}",
     "/v1/conversation/c1/messages/stream?access_token=[redacted]"),
    (f"/s?last_event_id=ab-1&access_token={TOKEN}&x=1", "/s?last_event_id=ab-1&access_token=[redacted]&x=1"),
    (f"/s?ticket={TOKEN}", "/s?ticket=[redacted]"),
    (f"/s?ACCESS_TOKEN={TOKEN}", "/s?ACCESS_TOKEN=[redacted]"),
    (f"/s?access%5Ftoken={TOKEN}", "/s?access%5Ftoken=[redacted]"),
    (f"/s?a=1;token={TOKEN}", "/s?a=1;token=[redacted]"),
    (f"access_token={TOKEN}", "access_token=[redacted]"),  # a bare query string (%(q)s)
    (f"/s?access_token={TOKEN}#frag", "/s?access_token=[redacted]#frag"),
    ("/s?monkey=1&tokens=2&last_event_id=5", "/s?monkey=1&tokens=2&last_event_id=5"),
    ("/v1/conversation/c1/messages", "/v1/conversation/c1/messages"),
    (f"Invalid HTTP Header: 'Authorization Bearer {TOKEN}'", "Invalid HTTP Header: 'Authorization [redacted]'"),
    (f'Invalid HTTP Header: "cookie: session={TOKEN}"', 'Invalid HTTP Header: "cookie: [redacted]"'),
    ("the Authorization header is missing", "the Authorization header is missing"),
], ids=["stream", "among-others", "ticket", "upper-case", "percent-encoded-name", "semicolon", "bare-query",
        "fragment", "similar-names-kept", "no-query", "quoted-authorization-header", "quoted-cookie",
        "prose-kept"])
def test_redact_replaces_only_credential_values(text, expected):
    assert redact(text) == expected


def test_every_access_log_atom_is_redacted():
    logger = RedactingLogger(Config())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/s?access_token={TOKEN}", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/s", "QUERY_STRING": f"access_token={TOKEN}", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_REFERER": f"https://app.example/?ticket={TOKEN}"}
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    request = SimpleNamespace(headers=[("REFERER", f"https://app.example/?ticket={TOKEN}")])

    atoms = logger.atoms(response, request, environ, datetime.timedelta(seconds=1))

    assert atoms["r"] == "GET /s?access_token=[redacted] HTTP/1.1"
    assert atoms["q"] == "access_token=[redacted]"
    assert not [name for name, value in atoms.items() if TOKEN in str(value)]


def test_error_log_lines_are_redacted(caplog):
    logger = RedactingLogger(Config())
    logger.error_log.propagate = True
    with caplog.at_level(logging.INFO, logger="gunicorn.error"):
        logger.exception("Error handling request %s", f"/s?access_token={TOKEN}")
        logger.error("Error handling request %s", f"/s?ticket={TOKEN}")

    assert TOKEN not in caplog.text
    assert caplog.text.count("[redacted]") == 2


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
def test_a_report_gunicorn_formats_itself_is_redacted_at_every_level(caplog, level):
    """gunicorn puts a malformed request line or header into its message before logging it."""
    logger = RedactingLogger(Config())
    logger.error_log.propagate = True
    logger.error_log.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="gunicorn.error"):
        getattr(logger, level)(f"Invalid request from ip=127.0.0.1: Invalid request line: "
                               f"'GET /health?access_token={TOKEN}\\x7f HTTP/1.1'")
        getattr(logger, level)(f"Invalid request from ip=127.0.0.1: Invalid HTTP Header: "
                               f"'Authorization Bearer {TOKEN}'")

    assert TOKEN not in caplog.text
    assert caplog.text.count("[redacted]") == 2


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CONF = Path(__file__).resolve().parents[3] / "gunicorn.conf.py"


def served(config: Config) -> tuple[RedactingLogger, dict, SimpleNamespace, SimpleNamespace]:
    """A logger for `config`, and a request the app saw (its ids and route left in the environ)."""
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/v1/conversation/c1/messages/stream?access_token={TOKEN}",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/v1/conversation/c1/messages/stream",
               "QUERY_STRING": f"access_token={TOKEN}", "REMOTE_ADDR": "127.0.0.1",
               logs.ENVIRON_REQUEST_ID: "req-7", logs.ENVIRON_TRACE_ID: TRACE,
               logs.ENVIRON_ROUTE: "/v1/conversation/<id:conversation_id>/messages/stream"}
    return (RedactingLogger(config), environ, SimpleNamespace(status="200 OK", sent=10, headers=[]),
            SimpleNamespace(headers=[]))


def access_config(**settings: str) -> Config:
    namespace: dict = {}
    exec(compile(CONF.read_text(), "gunicorn.conf.py", "exec"), namespace)
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", namespace["access_log_format"])
    for name, value in settings.items():
        config.set(name, value)
    return config


def test_a_text_access_line_carries_the_request_id_and_trace_id(capsys, monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    logger, environ, response, request = served(access_config())
    logger.access(response, request, environ, datetime.timedelta(milliseconds=12))
    line = capsys.readouterr().out.strip()
    assert line.endswith(f" 12ms request_id=req-7 trace={TRACE}"), line
    assert "access_token=[redacted]" in line and TOKEN not in line


def test_a_request_the_app_never_saw_has_dashes_for_its_ids(capsys, monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    logger, environ, response, request = served(access_config())
    for key in (logs.ENVIRON_REQUEST_ID, logs.ENVIRON_TRACE_ID, logs.ENVIRON_ROUTE):
        del environ[key]
    logger.access(response, request, environ, datetime.timedelta(milliseconds=1))
    assert capsys.readouterr().out.strip().endswith("request_id=- trace=-")


def test_json_access_lines_are_objects_with_the_request_and_no_credentials(capsys, monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    logger, environ, response, request = served(access_config(default_proc_name="core_app.app:create_app()"))
    logger.access(response, request, environ, datetime.timedelta(milliseconds=12, microseconds=345))
    out = capsys.readouterr().out
    assert TOKEN not in out and out.count("\n") == 1  # one line
    line = json.loads(out)
    assert {key: line[key] for key in ("service", "logger", "level", "message", "request_id", "trace_id", "route",
                                       "method", "status", "duration_ms", "remote_addr")} == {
        "service": "core", "logger": "gunicorn.access", "level": "INFO",
        "message": "GET /v1/conversation/c1/messages/stream?access_token=[redacted] HTTP/1.1",
        "request_id": "req-7", "trace_id": TRACE, "route": "/v1/conversation/<id:conversation_id>/messages/stream",
        "method": "GET", "status": 200, "duration_ms": 12.345, "remote_addr": "127.0.0.1"}


def test_json_error_lines_are_objects_redacted_with_the_traceback_as_a_field(capsys, monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    logger = RedactingLogger(access_config(default_proc_name="memory_service.app:create_app()"))
    try:
        raise OSError("reset")
    except OSError:
        logger.exception("Error handling request %s", f"/s?ticket={TOKEN}")
    logger.info("Booting worker with pid: %s", 42)
    err = capsys.readouterr().err
    assert TOKEN not in err
    failed, booted = (json.loads(line) for line in err.splitlines())
    assert failed["message"] == "Error handling request /s?ticket=[redacted]" and failed["level"] == "ERROR"
    assert "OSError: reset" in failed["exception"]
    assert (booted["service"], booted["logger"], booted["message"]) == ("memory", "gunicorn.error",
                                                                       "Booting worker with pid: 42")
    assert booted["trace_id"] is None


@pytest.mark.parametrize(("uri", "name"), [
    ("core_app.app:create_app()", "core"), ("memory_service.app:create_app()", "memory"),
    ("cognition_service.app:create_app()", "cognition"), ("other.wsgi:app", "other"), (None, "gunicorn")])
def test_gunicorn_lines_name_the_service_its_app_is(uri, name):
    assert service_name(uri) == name
