"""A web app on another origin, in a real Chromium, against the real services: from an origin in
CORS_ALLOWED_ORIGINS (and MCP_ALLOWED_ORIGINS) it uses the Core's API, its stream and `/mcp`; from any
other origin the browser blocks every call and the stream.

The page (cross_origin_page.html) is served from a temporary folder by two small HTTP servers on their own
loopback ports: two origins, one allowed and one not, of the same file.
"""

from __future__ import annotations

import functools
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.system.support.browser import chromium
from tests.system.support.harness import free_port
from tests.system.support.stack import SERVICE_TOKEN, Stack, start_stack

PAGE = Path(__file__).with_name("cross_origin_page.html")
PASSWORD = "correct horse battery"
PAGE_SECONDS = 20


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's parameter name
        pass


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on a free loopback port, in a thread; its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class World:
    stack: Stack
    allowed: str
    other: str
    browser: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    pages = tmp_path_factory.mktemp("pages")
    shutil.copy(PAGE, pages / "page.html")
    with static_site(pages) as allowed, static_site(pages) as other, chromium() as browser:
        stack = start_stack(tmp_path_factory.mktemp("stack"), core_env={"CORS_ALLOWED_ORIGINS": allowed},
                            common_env={"MCP_ALLOWED_ORIGINS": allowed})
        try:
            yield World(stack, allowed, other, browser)
        finally:
            stack.stop()


def open_page(world: World, origin: str, **params: str) -> dict:
    """The page from `origin`, run to its end in a fresh browser context; what it recorded."""
    email = f"page-{uuid.uuid4().hex[:10]}@example.com"
    query = urlencode({"core": world.stack.core.url, "memory": world.stack.memory.url,
                       "cognition": world.stack.cognition.url, "service_token": SERVICE_TOKEN, "email": email,
                       **params})
    context = world.browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{origin}/page.html?{query}")
        page.wait_for_function("window.results && window.results.done", timeout=PAGE_SECONDS * 1000)
        return {**page.evaluate("window.results"), "email": email}
    finally:
        context.close()


def test_a_page_on_an_allowed_origin_uses_the_api_the_stream_and_mcp(world):
    results = open_page(world, world.allowed, mode="allowed")

    assert results["errors"] == [], results
    assert results["steps"]["register"] == 201 and results["steps"]["ticket"] == 201
    assert results["steps"]["message"] == 202
    # Exposed headers: the page read the id it sent.
    assert results["requestId"] == "page-on-another-origin"
    # The stream: connected first, then the page's own message and the reply, token by token.
    events = results["events"]
    assert events[0] == "connected" and "message" in events and events.count("response.delta") >= 2
    assert events[-1] == "response.completed" and "streamError" not in results
    assert results["reply"]["role"] == "assistant"
    assert results["reply"]["metadata"]["in_reply_to"] == results["sent"]["id"]
    # The long-lived token never went into the stream's URL.
    assert "ticket=" in results["streamUrl"] and "access_token" not in results["streamUrl"]
    # An error is readable too, so the page can say what went wrong.
    assert results["unauthenticated"]["status"] == 401
    assert results["unauthenticated"]["body"]["error"]["code"] == "unauthorized"
    assert results["steps"]["mcp-memory"] == {"status": 200, "server": "cortex-memory"}
    assert results["steps"]["mcp-cognition"] == {"status": 200, "server": "cortex-cognition"}


def test_a_page_on_another_origin_can_use_neither_the_api_nor_the_stream_nor_mcp(world):
    # Everything the page would need to open the stream, obtained outside the browser: even a valid
    # ticket does not get a page on another origin past CORS.
    core = world.stack.core.url
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    assert requests.post(f"{core}/v1/auth/register", json={"email": email, "name": "Owner", "password": PASSWORD},
                         timeout=10).status_code == 201
    token = requests.post(f"{core}/v1/auth/login", json={"email": email, "password": PASSWORD},
                          timeout=10).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    workspace = requests.post(f"{core}/v1/workspace", json={"name": "W"}, headers=auth, timeout=10).json()
    conversation = requests.post(f"{core}/v1/conversation", headers=auth, timeout=10, json={
        "workspace_id": workspace["workspace"]["id"], "topic": "T"}).json()["conversation"]
    ticket = requests.post(f"{core}/v1/conversation/{conversation['id']}/stream-ticket", headers=auth,
                           timeout=10).json()["ticket"]
    stream = f"{core}/v1/conversation/{conversation['id']}/messages/stream?ticket={ticket}"

    results = open_page(world, world.other, mode="other", stream=stream)

    failed = {error.partition(":")[0]: error for error in results["errors"]}
    assert set(failed) == {"register", "list", "mcp-memory", "mcp-cognition"}, results
    assert all("TypeError: Failed to fetch" in error for error in failed.values()), results
    assert results["events"] == [] and results.get("streamError") == {"readyState": 2}, results  # closed for good
    # The registration's preflight was refused, so the request itself was never sent.
    login = requests.post(f"{core}/v1/auth/login", json={"email": results["email"], "password": PASSWORD},
                          timeout=10)
    assert login.status_code == 401


@pytest.mark.parametrize("path", ["/", "/static/index.html"])
def test_the_cores_own_page_is_served_by_a_distributed_core_to_its_own_origin_only(world, path):
    response = requests.get(world.stack.core.url + path, headers={"Origin": world.allowed}, timeout=10)

    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Access-Control-Allow-Origin" not in response.headers
