"""The gunicorn logger keeps credentials sent in request URLs out of the access and error logs."""

from __future__ import annotations

import datetime
import logging
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from common.serving.worker import RedactingLogger, redact

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
], ids=["stream", "among-others", "ticket", "upper-case", "percent-encoded-name", "semicolon", "bare-query",
        "fragment", "similar-names-kept", "no-query"])
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
