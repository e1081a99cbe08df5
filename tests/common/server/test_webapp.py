"""What every service's base app adds to every answer."""

from __future__ import annotations

import pytest
from flask import Response

from common.errors import NotFound
from common.server import base_app
from common.sse import sse_response


@pytest.fixture
def client():
    app = base_app(__name__, service="test", max_body_bytes=1024, log_level="WARNING")
    app.add_url_rule("/ok", "ok", lambda: {"private": True})
    app.add_url_rule("/missing", "missing", lambda: (_ for _ in ()).throw(NotFound()))
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    app.add_url_rule("/stream", "stream", lambda: sse_response(iter([b"data: 1\n\n"])))
    app.add_url_rule("/page", "page", lambda: Response("<b>hi</b>", mimetype="text/html"))
    return app.test_client()


@pytest.mark.parametrize("path", ["/ok", "/missing", "/boom", "/stream", "/page", "/no-such-route"])
def test_every_answer_is_uncacheable_and_not_sniffed(client, path):
    response = client.get(path)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_route_that_chooses_its_own_caching_keeps_it():
    app = base_app(__name__, service="test", max_body_bytes=1024, log_level="WARNING")
    app.add_url_rule("/file", "file", lambda: Response("x", headers={"Cache-Control": "no-cache"}))

    response = app.test_client().get("/file")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
