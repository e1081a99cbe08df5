"""Hostile input against real Memory, Cognition and Core processes: every bad request is a 4xx in the one
error shape (never a 500, a stack trace or an internal URL), and the services are alive afterwards.

The table is `input_rows.py` next to this file; requests go out over raw sockets so that `..` segments,
invalid UTF-8, oversized headers, chunked bodies and lying Content-Lengths reach the servers unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
import requests

from tests.system.hostile.input_rows import ROWS, SEED_CONTENT, Row
from tests.system.hostile.raw_http import (
    Reply,
    ServerError,
    build_request,
    check_refusal,
    chunked,
    send_raw,
)
from tests.system.support.api import Api
from tests.system.support.stack import Stack, start_stack

RESULTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = start_stack(tmp_path_factory.mktemp("hostile"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def seed(stack: Stack) -> dict[str, str]:
    """One user with a workspace, a conversation and one stored message; the rows' placeholders."""
    api = Api(stack.core.url, f"hostile-{uuid.uuid4().hex[:8]}@example.com")
    ws = api.request("POST", "/v1/workspace", json={"name": "Birds"}).json()["workspace"]["id"]
    conv = api.request("POST", "/v1/conversation", json={"workspace_id": ws, "topic": "Lake"})
    assert conv.status_code == 201, conv.text
    conv_id = conv.json()["conversation"]["id"]
    other = api.request("POST", "/v1/conversation", json={"workspace_id": ws, "topic": "Odd metadata"})
    assert other.status_code == 201, other.text
    stored = requests.post(f"{stack.memory.url}/tool/store_input", headers=service_auth(stack), timeout=10,
                           json={"arguments": {"user_id": api.user["id"], "input_data": {
                               "conversation_id": conv_id, "content": SEED_CONTENT}}})
    assert stored.status_code == 200, stored.text
    return {"@USER@": api.user["id"], "@CONV@": conv_id, "@WS@": ws, "@MSG@": stored.json()["result"]["item_id"],
            "@EMAIL@": api.user["email"].upper(), "@CONV2@": other.json()["conversation"]["id"], "jwt": api.token}


def service_auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.memory.env['SERVICE_TOKEN']}"}


def substitute(data: bytes, seed: dict[str, str]) -> bytes:
    for marker, value in seed.items():
        if marker.startswith("@"):
            data = data.replace(marker.encode(), value.encode())
    return data


def send(row: Row, stack: Stack, seed: dict[str, str]) -> Reply:
    proc = {"memory": stack.memory, "cognition": stack.cognition, "core": stack.core}[row.service]
    headers: list[tuple[str, bytes | str]] = []
    if row.auth:
        secret = seed["jwt"] if row.service == "core" else proc.env["SERVICE_TOKEN"]
        headers.append(("Authorization", f"Bearer {secret}"))
    ctype = ("application/json" if row.method in ("POST", "PUT") else None) if row.ctype == "auto" else row.ctype
    if ctype:
        headers.append(("Content-Type", ctype))
    headers += [(name, substitute(value, seed)) for name, value in row.headers]
    body = substitute(row.body, seed)
    if row.framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        body = chunked(body)
    request = build_request(row.method, substitute(row.target, seed), headers, body,
                            content_length=row.framing == "length")
    return send_raw(proc.port, request)


def check_answered(reply: Reply, row: Row) -> None:
    """A 200 row (search text that looks like FTS syntax): results, never an error or internals."""
    if reply.status >= 500:
        raise ServerError(f"{row.id}: {reply.status}: {reply.text[:300]}")
    assert reply.status == 200, f"{row.id}: {reply.status}: {reply.text[:300]}"
    assert "Traceback" not in reply.text
    body = reply.json()
    found = body.get("result", body)
    assert isinstance(found.get("count"), int), reply.text[:300]
    if row.min_count is not None:
        assert found["count"] >= row.min_count, f"{row.id}: the query's words must still match: {reply.text[:300]}"


def as_param(row: Row):  # type: ignore[no-untyped-def]
    marks = [pytest.mark.xfail(strict=True, raises=row.raises, reason=row.bug)] if row.bug else []
    return pytest.param(row, id=row.id, marks=marks)


def test_the_table_is_wide_enough():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids)), "row ids must be unique"
    refusals = [row for row in ROWS if row.status != 200]
    assert len(refusals) >= 60
    assert {row.service for row in refusals} == {"memory", "cognition", "core"}


@pytest.mark.parametrize("row", [as_param(row) for row in ROWS])
def test_hostile_request(stack, seed, row: Row):
    reply = send(row, stack, seed)
    RESULTS[row.id] = reply.status
    if row.status == 200:
        check_answered(reply, row)
    else:
        check_refusal(reply.status, reply.body, row.status, row.code, where=row.id)


def test_services_alive_and_unchanged_after_the_table(stack, seed, tmp_path):
    for proc in stack.all():
        health = requests.get(f"{proc.url}/health", timeout=5)
        assert health.status_code == 200, (proc.app, health.text)
        assert health.json()["status"] == "healthy", health.text
    # Nothing a refused request carried was stored: still the one seeded workspace, conversation, message.
    user = {"Authorization": f"Bearer {seed['jwt']}"}
    core = stack.core.url
    workspaces = requests.get(f"{core}/v1/workspace", headers=user, timeout=10).json()
    assert [w["id"] for w in workspaces["workspaces"]] == [seed["@WS@"]]
    conversations = requests.get(f"{core}/v1/conversation", params={"workspace_id": seed["@WS@"]}, headers=user,
                                 timeout=10).json()
    assert sorted(c["id"] for c in conversations["conversations"]) == sorted([seed["@CONV@"], seed["@CONV2@"]])
    history = requests.get(f"{core}/v1/conversation/{seed['@CONV@']}/messages", headers=user, timeout=10).json()
    assert [m["content"] for m in history["messages"]] == [SEED_CONTENT]
    found = requests.post(f"{core}/v1/search", json={"query": "owl"}, headers=user, timeout=10)
    assert found.status_code == 200 and found.json()["count"] == 1, found.text

    figures = {
        "rows": len(ROWS), "rows_run": len(RESULTS),
        "refusal_rows": sum(1 for row in ROWS if row.status != 200),
        "fts_rows_answering_200": sum(1 for row in ROWS if row.status == 200),
        "known_bug_rows": {row.id: row.bug for row in ROWS if row.bug},
        "rows_by_service": dict(Counter(row.service for row in ROWS)),
        "statuses_seen": dict(sorted(Counter(RESULTS.values()).items())),
        "server_errors": sorted(row_id for row_id, status in RESULTS.items() if status >= 500),
    }
    (tmp_path / "hostile_input.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
