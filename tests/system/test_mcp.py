"""The official MCP endpoint (`POST /mcp`) of real Memory and Cognition processes, driven by the official
`mcp` SDK client in its default mode and in every protocol era we serve: its tools and resources answer
exactly what `/tool/{name}` and `/resource/...` answer for the same arguments."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import requests
from mcp import Client, ClientSession
from mcp import types as mcp_types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from common.client import ClientSettings, RetryPolicy, ServiceClient
from tests.system.support.harness import ServiceProcess
from tests.system.support.polling import wait_until

MEMORY_APP = "memory_service.app:create_app()"
COGNITION_APP = "cognition_service.app:create_app()"
TOKEN = "mcp-system-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INVALID_PARAMS = -32602

# row id: (how the SDK connects, the protocol version it must end up speaking)
ERAS = {
    "sdk-default": ("auto", "2026-07-28"),  # Client(url): probes server/discover, stays modern
    "modern": ("2026-07-28", "2026-07-28"),  # Client(url, mode="2026-07-28"): no probe
    "legacy": ("legacy", "2025-11-25"),  # Client(url, mode="legacy"): initialize handshake
    "session-initialize": ("session", "2025-11-25"),  # streamable_http_client + ClientSession.initialize()
    "2025-06-18": ("pinned", "2025-06-18"),
    "2025-03-26": ("pinned", "2025-03-26"),
}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """One Memory and one Cognition for the module: every test makes its own user, and six eras of
    restarts would cost more than the tests themselves."""
    tmp = tmp_path_factory.mktemp("mcp")
    memory = ServiceProcess(MEMORY_APP, {"DATABASE_URL": f"sqlite:///{tmp}/memory.db", "SERVICE_TOKEN": TOKEN},
                            tmp / "memory.log")
    cognition = ServiceProcess(COGNITION_APP, {"MEMORY_SERVICE_URL": memory.url, "SERVICE_TOKEN": TOKEN,
                                               "HEALTH_INTERVAL_SECONDS": "1"}, tmp / "cognition.log")
    try:
        memory.start()
        cognition.start()
        yield memory, cognition
    finally:
        cognition.stop()  # first, so Memory's graceful shutdown is not kept waiting by its pooled connections
        memory.stop()


def plain_client(name: str, url: str) -> ServiceClient:
    return ServiceClient(name, url, token=TOKEN, settings=ClientSettings(retry=RetryPolicy(attempts=0)))


def seed(mem: ServiceClient) -> tuple[str, str, str]:
    """A fresh user with one conversation holding two messages, and a stranger to that conversation."""
    def user() -> str:
        email = f"mcp-{uuid.uuid4().hex[:10]}@example.com"
        return mem.call_tool("create_user", {"email": email, "name": "MCP", "password": "password1"})["user"]["id"]

    owner, stranger = user(), user()
    workspace = mem.call_tool("create_workspace", {"user_id": owner, "name": "Birds"})["workspace"]["id"]
    conversation = mem.call_tool("create_conversation", {"user_id": owner, "workspace_id": workspace,
                                                         "topic": "Lake walk"})["conversation"]["id"]
    for content in ("Saw a grey heron by the lake this morning.", "The kingfisher was back at the bridge."):
        mem.call_tool("store_input", {"user_id": owner, "input_data": {"conversation_id": conversation,
                                                                         "content": content}})
    return owner, conversation, stranger


def wait_embedded(mem: ServiceClient) -> None:
    """Until Cognition's worker has embedded every message, get_context may change between two calls."""
    wait_until(lambda: mem.call_tool("embedding_backlog", {})["backlog"] == 0, 30,
               message="the messages to be embedded")


async def initialize_at(session: ClientSession, version: str) -> None:
    """What `ClientSession.initialize()` does, offering `version`: the SDK always offers its newest
    handshake version, so an older era is pinned by sending the same request with another version."""
    request = mcp_types.InitializeRequest(params=mcp_types.InitializeRequestParams(
        protocol_version=version, capabilities=mcp_types.ClientCapabilities(),
        client_info=mcp_types.Implementation(name="cortex-system-tests", version="1")))
    session.adopt(await session.send_request(request, mcp_types.InitializeResult))
    await session.send_notification(mcp_types.InitializedNotification())


@asynccontextmanager
async def connect(base_url: str, how: str, version: str, token: str = TOKEN) -> AsyncIterator[Any]:
    """An SDK `Client` or `ClientSession` (both have list_tools, call_tool, read_resource) to `/mcp`."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        if how in ("auto", "legacy", "2026-07-28"):
            async with Client(transport, mode=how) as client:
                yield client
            return
        async with transport as (read, write), ClientSession(read, write) as session:
            if how == "session":
                await session.initialize()
            else:
                await initialize_at(session, version)
            yield session


def text_json(result: Any) -> Any:
    [content] = result.contents
    assert content.mime_type == "application/json"
    return json.loads(content.text)


async def drive_memory(url: str, how: str, version: str, mem: ServiceClient, owner: str, conversation: str,
                       stranger: str) -> None:
    async with connect(url, how, version) as session:
        assert session.protocol_version == version

        listed = (await session.list_tools()).tools
        plain = requests.get(f"{url}/tools", headers=AUTH, timeout=5).json()["tools"]
        assert [(tool.name, tool.description, tool.input_schema) for tool in listed] == [
            (tool["name"], tool["description"], tool["input_schema"]) for tool in plain]

        content = f"A heron stood in the reeds ({version})."
        stored = await session.call_tool("store_input", {"user_id": owner, "input_data": {
            "conversation_id": conversation, "content": content}})
        assert stored.is_error is False
        assert json.loads(stored.content[0].text) == stored.structured_content
        direct = mem.call_tool("store_input", {"user_id": owner, "input_data": {
            "conversation_id": conversation, "content": "Back home."}})
        result = stored.structured_content
        assert set(result) == set(direct)
        assert (result["status"], result["user_id"], result["sequence"] + 1) == ("stored", owner, direct["sequence"])
        message = mem.call_tool("get_message", {"user_id": owner, "message_id": result["item_id"]})["message"]
        assert message["content"] == content and message == result["message"]

        query = {"user_id": owner, "query": "heron", "limit": 5}
        found = await session.call_tool("search_messages", query)
        assert found.structured_content == mem.call_tool("search_messages", query)
        assert found.structured_content["count"] == 2

        history = await session.read_resource(f"cortex://memory/history/{owner}/limit/3")
        assert text_json(history) == list(mem.read_resource(f"history/{owner}/limit/3"))
        thread = await session.read_resource(f"cortex://memory/conversation/{conversation}?user_id={owner}")
        assert [item["content"] for item in text_json(thread)] == [
            item["content"] for item in mem.read_resource(f"conversation/{conversation}", {"user_id": owner})]

        with pytest.raises(MCPError) as unknown:
            await session.call_tool("no_such_tool", {"user_id": owner})
        assert unknown.value.code == INVALID_PARAMS and "no_such_tool" in unknown.value.message

        refused = await session.call_tool("get_message", {"user_id": stranger,
                                                           "message_id": result["item_id"]})
        assert refused.is_error is True
        assert refused.structured_content["error"]["code"] == "forbidden"
        bad = await session.call_tool("search_messages", {"user_id": owner, "query": ""})
        assert bad.is_error is True and bad.structured_content["error"]["code"] == "invalid_arguments"

        with pytest.raises(MCPError) as missing:
            await session.read_resource(f"cortex://memory/nowhere/{owner}")
        assert missing.value.code == (INVALID_PARAMS if version == "2026-07-28" else -32002)


async def drive_cognition(url: str, how: str, version: str, cog: ServiceClient, owner: str) -> None:
    async with connect(url, how, version) as session:
        assert session.protocol_version == version
        names = [tool.name for tool in (await session.list_tools()).tools]
        assert names == ["get_context", "search_history", "analyze_conversation"]

        arguments = {"user_id": owner, "query": "where was the heron?", "limit": 3}
        context = await session.call_tool("get_context", arguments)
        assert context.is_error is False
        assert context.structured_content == cog.call_tool("get_context", arguments)
        assert "heron" in context.structured_content["context"][0]["content"]

        read = await session.read_resource(f"cortex://cognition/context/{owner}?query=kingfisher&limit=2")
        assert text_json(read) == list(cog.read_resource(f"context/{owner}", {"query": "kingfisher", "limit": 2}))

        templates = (await session.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == [
            "cortex://cognition/context/{user_id}{?query,conversation_id,limit}",
            "cortex://cognition/conversation_analysis/{conversation_id}/{type}{?user_id}"]


@pytest.mark.parametrize(("how", "version"), list(ERAS.values()), ids=list(ERAS))
def test_sdk_client_gets_what_the_service_protocol_gives(services, how, version):
    memory, cognition = services
    mem, cog = plain_client("memory", memory.url), plain_client("cognition", cognition.url)
    try:
        owner, conversation, stranger = seed(mem)
        asyncio.run(drive_memory(memory.url, how, version, mem, owner, conversation, stranger))
        wait_embedded(mem)  # drive_memory stored another message
        asyncio.run(drive_cognition(cognition.url, how, version, cog, owner))
    finally:
        mem.close()
        cog.close()


@pytest.mark.parametrize("how", ["auto", "legacy", "2026-07-28"])
def test_sdk_client_without_the_service_token_gets_a_clear_refusal(services, how):
    memory, _ = services

    async def attempt() -> None:
        async with connect(memory.url, how, "", token="wrong-token") as session:
            await session.list_tools()

    with pytest.raises(BaseException) as refused:
        asyncio.run(attempt())
    # The SDK raises from inside its task groups; the refusal itself is one MCPError with our message.
    errors = [refused.value]
    while isinstance(errors[0], BaseExceptionGroup):
        errors = list(errors[0].exceptions)
    assert [(type(e), str(e)) for e in errors] == [(MCPError, "missing or wrong service token")]


def test_the_real_endpoint_is_stateless_and_checks_origin(services):
    memory, _ = services
    url = f"{memory.url}/mcp"
    headers = {**AUTH, "Accept": "application/json, text/event-stream"}
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}}

    opened = requests.post(url, json=hello, headers=headers, timeout=5)
    assert opened.status_code == 200 and "Mcp-Session-Id" not in opened.headers
    assert opened.json()["result"]["protocolVersion"] == "2025-11-25"
    note = requests.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers={**headers, "MCP-Protocol-Version": "2025-11-25"}, timeout=5)
    assert (note.status_code, note.content) == (202, b"")
    for method in ("GET", "DELETE"):
        answer = requests.request(method, url, headers=headers, timeout=5)
        assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert requests.post(url, json=hello, headers={**headers, "Origin": "http://evil.example"},
                         timeout=5).status_code == 403
    assert requests.post(url, json=hello, headers={**headers, "Origin": "http://localhost:5173"},
                         timeout=5).status_code == 200
    old = requests.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                        headers={**headers, "MCP-Protocol-Version": "2024-11-05"}, timeout=5)
    assert old.status_code == 400 and old.json()["error"]["code"] == -32022
