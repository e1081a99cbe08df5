"""Nobody gets in where they don't belong, against real Memory, Cognition and Core processes: the service
token guards every tool, resource, listing and `/mcp`; forged, expired and orphaned user tokens are refused
on every Core route; and no user reaches another user's objects through any Core route or any Memory or
Cognition tool. Every answer goes through `Probe`: no 5xx, and no stack trace or internal URL in an error."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests

from tests.system.hostile.security_probe import (
    PUBLIC_ROUTES,
    Probe,
    authenticated_attempts,
    core_routes,
    fill_resource,
    forged_tokens,
)
from tests.system.hostile.security_tables import core_cross_user_rows, service_cross_user_rows, tool_arguments
from tests.system.support.api import Api
from tests.system.support.stack import JWT_SECRET, Stack, start_stack

OWNER_SECRET, PRIVATE_SECRET = "zanzibar-owl-7731", "kestrel-nest-4242"
SECRETS = (OWNER_SECRET, PRIVATE_SECRET)
# What the owner stored; a search's answer echoes its query, so the check looks for whole messages.
OWNER_CONTENT, PRIVATE_CONTENT = f"The {OWNER_SECRET} code opens the gate", f"Only mine: {PRIVATE_SECRET}"


@dataclass
class World:
    stack: Stack
    tmp: Path
    owner: Api
    intruder: Api
    participant: Api
    ws: str  # the owner's workspace
    conv: str  # in `ws`, with the participant
    private_conv: str  # in `ws`, the owner alone
    owner_message: str  # in `conv`, holding OWNER_SECRET
    participant_message: str  # in `conv`

    @property
    def token(self) -> str:
        return self.stack.memory.env["SERVICE_TOKEN"]

    def tool(self, service: str, name: str, arguments: dict) -> requests.Response:
        url = getattr(self.stack, service).url
        return requests.post(f"{url}/tool/{name}", json={"arguments": arguments}, timeout=15,
                             headers={"Authorization": f"Bearer {self.token}"})

    def store(self, user: Api, conv: str, content: str) -> str:
        stored = self.tool("memory", "store_input", {"user_id": user.user["id"], "input_data": {
            "conversation_id": conv, "content": content}})
        assert stored.status_code == 200, stored.text
        return stored.json()["result"]["item_id"]


def new_user(stack: Stack, label: str) -> Api:
    return Api(stack.core.url, f"{label}-{uuid.uuid4().hex[:8]}@example.com", name=label.title())


def make_conversation(user: Api, ws: str, topic: str, participants: list[Api] | None = None) -> str:
    """A new conversation of `user`; each of `participants` is invited and accepts."""
    created = user.request("POST", "/v1/conversation", json={
        "workspace_id": ws, "topic": topic, "participant_ids": [p.user["id"] for p in participants or []]})
    assert created.status_code == 201, created.text
    for participant, invitation in zip(participants or [], created.json()["invitations"], strict=True):
        accepted = participant.request("POST", f"/v1/invitations/{invitation['id']}/accept")
        assert accepted.status_code == 200, accepted.text
    return created.json()["conversation"]["id"]


def make_workspace(user: Api, name: str) -> str:
    created = user.request("POST", "/v1/workspace", json={"name": name})
    assert created.status_code == 201, created.text
    return created.json()["workspace"]["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("security")
    stack = start_stack(tmp)
    try:
        owner, intruder, participant = (new_user(stack, label) for label in ("owner", "intruder", "participant"))
        ws = make_workspace(owner, "Owner space")
        conv = make_conversation(owner, ws, "Shared walk", [participant])
        private = make_conversation(owner, ws, "Private notes")
        made = World(stack, tmp, owner, intruder, participant, ws, conv, private, "", "")
        made.owner_message = made.store(owner, conv, OWNER_CONTENT)
        made.participant_message = made.store(participant, conv, "participant heron words")
        made.store(owner, private, PRIVATE_CONTENT)
        intruder_ws = make_workspace(intruder, "Intruder space")
        made.store(intruder, make_conversation(intruder, intruder_ws, "Own stuff"), "intruder owl words")
        yield made
    finally:
        stack.stop()


def record(tmp_path: Path, name: str, figures: dict) -> None:
    print(f"{name}: {json.dumps(figures)}")
    (tmp_path / f"{name}.json").write_text(json.dumps(figures, indent=2))


def assert_owner_data_intact(world: World, probe: Probe) -> None:
    owner = world.owner.headers
    ws = probe("GET", f"{world.stack.core.url}/v1/workspace/{world.ws}", headers=owner)
    assert ws.status == 200 and ws.json()["workspace"]["name"] == "Owner space", ws.text
    conv = probe("GET", f"{world.stack.core.url}/v1/conversation/{world.conv}", headers=owner)
    assert conv.status == 200, conv.text
    assert conv.json()["conversation"]["topic"] == "Shared walk"
    assert conv.json()["conversation"]["participant_ids"] == [world.owner.user["id"], world.participant.user["id"]]
    for conv_id, contents in ((world.conv, [OWNER_CONTENT, "participant heron words"]),
                              (world.private_conv, [PRIVATE_CONTENT])):
        history = probe("GET", f"{world.stack.core.url}/v1/conversation/{conv_id}/messages", headers=owner)
        assert [m["content"] for m in history.json()["messages"]] == contents


# --- the service token ---------------------------------------------------------------------------------


def bad_credentials(token: str, user_jwt: str) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """(headers, query) pairs that must not pass for the service token."""
    return {
        "none": ({}, {}),
        "wrong token": ({"Authorization": "Bearer wrong-token-0001"}, {}),
        "token plus a byte": ({"Authorization": f"Bearer {token}x"}, {}),
        "token minus a byte": ({"Authorization": f"Bearer {token[:-1]}"}, {}),
        "token in upper case": ({"Authorization": f"Bearer {token.upper()}"}, {}),
        "basic scheme": ({"Authorization": f"Basic {token}"}, {}),
        "bare token": ({"Authorization": token}, {}),
        "empty bearer": ({"Authorization": "Bearer "}, {}),
        "a user's JWT": ({"Authorization": f"Bearer {user_jwt}"}, {}),
        "token in the query": ({}, {"token": token, "access_token": token, "service_token": token}),
    }


MCP_HEADERS = {"MCP-Protocol-Version": "2025-06-18", "Accept": "application/json, text/event-stream"}


def mcp_message(method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params else {})}


@pytest.mark.parametrize("service", ["memory", "cognition"])
def test_the_service_token_guards_every_endpoint(world, service, tmp_path):
    probe, url = Probe(), getattr(world.stack, service).url
    good = {"Authorization": f"Bearer {world.token}"}
    # Objects of the owner's that a tokenless call would change, if it got through.
    target_ws = make_workspace(world.owner, "Token target")
    target_conv = make_conversation(world.owner, target_ws, "Token topic")
    target_msg = world.store(world.owner, target_conv, "token target words")
    ids = {"user_id": world.owner.user["id"], "workspace_id": target_ws, "conversation_id": target_conv,
           "message_id": target_msg, "n": "5", "type": "summary"}
    new_email = f"tokenless-{uuid.uuid4().hex[:8]}@example.com"
    arguments = tool_arguments(service, ids, world.owner.user["email"], new_email)

    tools = probe("GET", f"{url}/tools", headers=good).json()["tools"]
    assert {tool["name"] for tool in tools} == set(arguments), "every tool needs a row"
    resources = probe("GET", f"{url}/resources", headers=good).json()["resources"]
    endpoints = [("GET", "/tools", {}), ("GET", "/resources", {})]
    endpoints += [("POST", f"/tool/{tool['name']}", {"json": {"arguments": arguments[tool["name"]]}}) for tool in tools]
    for resource in resources:
        path, query = fill_resource(resource["path_template"], resource["params"], ids)
        endpoints.append(("GET", path, {"query": query}))
    has_mcp = probe("POST", f"{url}/mcp", headers={**good, **MCP_HEADERS}, json=mcp_message("tools/list")).status == 200
    if has_mcp:
        first = tools[0]["name"]
        endpoints += [("POST", "/mcp", {"json": mcp_message("tools/list"), "headers": MCP_HEADERS}),
                      ("POST", "/mcp", {"json": mcp_message("tools/call", {"name": first, "arguments": arguments[
                          first]}), "headers": MCP_HEADERS}),
                      ("GET", "/mcp", {"headers": MCP_HEADERS})]

    refused = 0
    for label, (headers, params) in bad_credentials(world.token, world.owner.token).items():
        for method, path, kwargs in endpoints:
            answer = probe(method, f"{url}{path}", headers={**kwargs.get("headers", {}), **headers},
                           params={**kwargs.get("query", {}), **params}, json=kwargs.get("json"))
            assert answer.status == 401, (label, method, path, answer.text[:300])
            assert answer.error_code() == "unauthorized", (label, path, answer.text[:300])
            refused += 1

    # With the token, the same doors open: the 401s above were the token's doing.
    for tool in tools:
        answer = probe("POST", f"{url}/tool/{tool['name']}", headers=good, json={"arguments": {}})
        # Empty arguments are refused by every tool that needs some (embedding_backlog needs none).
        expected = 400 if tool["input_schema"].get("required") else 200
        assert answer.status == expected, (tool["name"], answer.text[:300])
    for method, path, kwargs in endpoints:
        if path.startswith("/resource/"):
            answer = probe(method, f"{url}{path}", headers=good, params=kwargs["query"])
            assert answer.status == 200 and "event: end" in answer.text, (path, answer.text[:300])
    if service == "memory":  # nothing a tokenless call asked for happened
        assert world.tool("memory", "get_workspace", {"user_id": ids["user_id"], "workspace_id": target_ws}
                          ).json()["result"]["workspace"]["name"] == "Token target"
        assert world.tool("memory", "get_conversation", {"user_id": ids["user_id"], "conversation_id": target_conv}
                          ).json()["result"]["conversation"]["topic"] == "Token topic"
        listed = world.tool("memory", "list_messages", {"user_id": ids["user_id"], "conversation_id": target_conv})
        assert [m["content"] for m in listed.json()["result"]["messages"]] == ["token target words"]
        names = [w["name"] for w in world.tool("memory", "list_workspaces", {"user_id": ids["user_id"], "limit": 100}
                                               ).json()["result"]["workspaces"]]
        assert "Tokenless" not in names and names.count("Token target") >= 1
        assert world.tool("memory", "authenticate_user", {"email": new_email, "password": "password-123"}
                          ).status_code == 401
    record(tmp_path, f"service_token_{service}", {
        "tools": len(tools), "resources": len(resources), "mcp": has_mcp, "endpoints": len(endpoints),
        "credential_variants": len(bad_credentials(world.token, "")), "refused_401": refused, **probe.figures()})


# --- user tokens ---------------------------------------------------------------------------------------


def test_every_route_is_in_the_attempt_table(world):
    attempts = {(method, rule) for method, rule, _, _ in authenticated_attempts(world.ws, world.conv)}
    assert attempts == core_routes(world.stack.core.env) - PUBLIC_ROUTES


def test_forged_user_tokens_are_refused_on_every_route(world, tmp_path):
    probe, core = Probe(), world.stack.core.url
    owner_id = world.owner.user["id"]
    kinds = forged_tokens(owner_id, JWT_SECRET, world.intruder.token)
    attempts = authenticated_attempts(world.ws, world.conv)
    honest = probe("GET", f"{core}/v1/auth/verify", headers=world.owner.headers)
    assert honest.status == 200 and honest.json()["user_id"] == owner_id, "the control: the real token works"
    for kind, token in kinds.items():
        for method, _, path, kwargs in attempts:
            answer = probe(method, f"{core}{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs)
            assert answer.status == 401 and answer.error_code() == "unauthorized", (kind, method, path, answer.text)
        stream = probe("GET", f"{core}/v1/conversation/{world.conv}/messages/stream", params={"access_token": token})
        assert stream.status == 401, (kind, stream.text)
    # A real token in the query string opens only the stream (EventSource cannot send headers).
    for method, _, path, kwargs in authenticated_attempts(world.ws, world.conv):
        if not path.endswith("/stream"):
            query = {**kwargs.pop("params", {}), "access_token": world.owner.token}
            answer = probe(method, f"{core}{path}", params=query, **kwargs)
            assert answer.status == 401, (method, path, answer.text)
    # A well-signed token for a user who never existed.
    now = int(time.time())
    ghost = jwt.encode({"sub": str(uuid.uuid4()), "iat": now, "exp": now + 600}, JWT_SECRET, algorithm="HS256")
    ghost_statuses = set()
    for method, _, path, kwargs in authenticated_attempts(world.ws, world.conv):
        answer = probe(method, f"{core}{path}", headers={"Authorization": f"Bearer {ghost}"}, **kwargs)
        assert answer.status in (401, 404), (method, path, answer.text)
        ghost_statuses.add(answer.status)
    assert_owner_data_intact(world, probe)
    record(tmp_path, "forged_tokens", {"kinds": sorted(kinds), "routes": len(attempts),
                                       "ghost_statuses": sorted(ghost_statuses), **probe.figures()})


def test_a_deleted_users_token_is_refused(world, tmp_path):
    probe, core = Probe(), world.stack.core.url
    doomed = new_user(world.stack, "doomed")
    doomed_id = doomed.user["id"]
    own_ws = make_workspace(doomed, "Doomed space")
    own_conv = make_conversation(doomed, own_ws, "Doomed talk")
    world.store(doomed, own_conv, "doomed private words")
    shared_ws = make_workspace(world.owner, "Shared with doomed")
    shared_conv = make_conversation(world.owner, shared_ws, "With doomed", [doomed])
    world.store(world.owner, shared_conv, f"owner says {OWNER_SECRET} to doomed")
    assert probe("GET", f"{core}/v1/conversation/{shared_conv}", headers=doomed.headers).status == 200

    # There is no delete-user API: remove the row the way an operator would, with cascades on.
    with closing(sqlite3.connect(world.tmp / "m.db", timeout=10)) as db, db:
        db.execute("PRAGMA foreign_keys=ON")
        assert db.execute("DELETE FROM users WHERE id = ?", (doomed_id,)).rowcount == 1
    verify = probe("GET", f"{core}/v1/auth/verify", headers=doomed.headers)
    assert verify.status == 401 and verify.error_code() == "unauthorized", verify.text

    seen: dict[str, list[int]] = {}
    for ws, conv in ((own_ws, own_conv), (shared_ws, shared_conv), (world.ws, world.conv)):
        for method, rule, path, kwargs in authenticated_attempts(ws, conv):
            answer = probe(method, f"{core}{path}", headers=doomed.headers, **kwargs)
            assert answer.status in (401, 404), (method, path, answer.text)
            assert not any(secret in answer.text for secret in (*SECRETS, "doomed private words"))
            seen.setdefault(f"{method} {rule}", []).append(answer.status)
    login = probe("POST", f"{core}/v1/auth/login", json={"email": doomed.user["email"], "password": "password-123"})
    assert login.status == 401 and login.error_code() == "invalid_credentials"
    for service, tool, arguments in [
        ("memory", "get_user", {}), ("memory", "list_workspaces", {}), ("memory", "create_workspace", {"name": "x"}),
        ("memory", "get_conversation", {"conversation_id": shared_conv}),
        ("memory", "store_input", {"input_data": {"conversation_id": shared_conv, "content": "ghost"}}),
        ("memory", "search_messages", {"query": "owl"}), ("cognition", "get_context", {"query": "owl"}),
        ("cognition", "search_history", {"query": "owl"}),
        ("cognition", "analyze_conversation", {"conversation_id": shared_conv, "analysis_type": "summary"}),
    ]:
        answer = probe("POST", f"{getattr(world.stack, service).url}/tool/{tool}",
                       headers={"Authorization": f"Bearer {world.token}"},
                       json={"arguments": {"user_id": doomed_id, **arguments}})
        assert answer.status in (403, 404), (service, tool, answer.text)
        seen.setdefault(f"{service}.{tool}", []).append(answer.status)
    with closing(sqlite3.connect(world.tmp / "m.db", timeout=10)) as db:
        assert db.execute("SELECT COUNT(*) FROM workspaces WHERE owner_id = ?", (doomed_id,)).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM conversation_participants WHERE user_id = ?",
                          (doomed_id,)).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (own_conv,)).fetchone()[0] == 0
    owner_view = probe("GET", f"{core}/v1/conversation/{shared_conv}/messages", headers=world.owner.headers)
    assert [m["content"] for m in owner_view.json()["messages"]] == [f"owner says {OWNER_SECRET} to doomed"]
    record(tmp_path, "deleted_user", {"answers": seen, **probe.figures()})


# --- other users' objects ------------------------------------------------------------------------------


def test_no_core_route_reaches_another_users_objects(world, tmp_path):
    probe, core = Probe(), world.stack.core.url
    rows = core_cross_user_rows(world, OWNER_SECRET, PRIVATE_SECRET, (OWNER_CONTENT, PRIVATE_CONTENT))
    assert {(row.method, row.rule) for row in rows} == core_routes(world.stack.core.env), \
        "every route of the Core App needs at least one row, and every row a route"
    for row in rows:
        kwargs = dict(row.kwargs)
        headers = {**({} if row.anonymous else getattr(world, row.who).headers), **kwargs.pop("headers", {})}
        row.check(probe(row.method, f"{core}{row.path}", headers=headers, **kwargs), world)
    assert_owner_data_intact(world, probe)
    record(tmp_path, "core_cross_user", {"rows": len(rows), "routes": len(core_routes(world.stack.core.env)),
                                         **probe.figures()})


def test_no_tool_or_resource_reaches_another_users_objects(world, tmp_path):
    probe = Probe()
    rows = service_cross_user_rows(world, OWNER_SECRET, PRIVATE_SECRET, (OWNER_CONTENT, PRIVATE_CONTENT))
    good = {"Authorization": f"Bearer {world.token}"}
    has_mcp = {}
    for service in ("memory", "cognition"):
        url = getattr(world.stack, service).url
        has_mcp[service] = requests.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                         headers={**good, **MCP_HEADERS}, timeout=10).status_code == 200
        names = {tool["name"] for tool in probe("GET", f"{url}/tools", headers=good).json()["tools"]}
        covered = {row.tool for row in rows if row.service == service and row.kind == "tool"}
        assert names <= covered, f"{service} tools without a cross-user row: {sorted(names - covered)}"
        templates = {r["path_template"] for r in probe("GET", f"{url}/resources", headers=good).json()["resources"]}
        covered = {row.tool for row in rows if row.service == service and row.kind == "resource"}
        assert templates <= covered, f"{service} resources without a cross-user row: {sorted(templates - covered)}"
    rows = [row for row in rows if row.kind != "mcp" or has_mcp[row.service]]
    for row in rows:
        row.check(row.send(probe, world, good), world)
    assert_owner_data_intact(world, probe)
    record(tmp_path, "service_cross_user", {"rows": len(rows), "mcp": has_mcp, **probe.figures()})
