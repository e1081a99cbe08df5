"""The cross-user tables of `test_security.py`: one row per attempt on another user's objects, through every
route of the Core App and every tool and resource of Memory and Cognition (and `/mcp`), and the valid
arguments of every tool for the service-token checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.system.hostile.security_probe import Answer, Probe

if TYPE_CHECKING:
    from tests.system.hostile.test_security import World

HIDDEN = "hidden"  # Core: 404 not_found, exactly like a missing object
REFUSED = "refused"  # Memory/Cognition: 403 forbidden (or 404)
OWN = "own"  # 2xx, and nothing of the other user's in the body
ALLOWED = "allowed"  # 2xx: a control that the setup gives the access it should
MCP_REFUSED = "mcp refused"  # a JSON-RPC error or a tool result with isError, without the other user's data

EMBEDDING_MODEL, EMBEDDING_DIMS = "all-MiniLM-L6-v2-int8", 384  # the built-in embedder's
W, C = "/v1/workspace/<id:workspace_id>", "/v1/conversation/<id:conversation_id>"


def check_expectation(answer: Answer, expect: str | int, absent: tuple[str, ...], where: str) -> None:
    leaked = [text for text in absent if text in answer.text]
    assert not leaked, f"{where}: the answer shows {leaked}: {answer.text[:300]}"
    if expect == HIDDEN:
        assert answer.status == 404 and answer.error_code() == "not_found", (where, answer.status, answer.text[:300])
    elif expect == REFUSED:
        assert answer.status in (403, 404), (where, answer.status, answer.text[:300])
        assert answer.error_code() in ("forbidden", "not_found"), (where, answer.text[:300])
    elif expect in (OWN, ALLOWED):
        assert 200 <= answer.status < 300, (where, answer.status, answer.text[:300])
    elif expect == MCP_REFUSED:
        body = answer.json()
        result = body.get("result") or {}
        assert "error" in body or result.get("isError") is True, (where, answer.text[:300])
        code = (result.get("structuredContent") or {}).get("error", {}).get("code")
        assert code in (None, "forbidden", "not_found"), (where, answer.text[:300])
    else:
        assert answer.status == expect, (where, answer.status, answer.text[:300])


@dataclass
class CoreRow:
    label: str
    who: str  # the World attribute of the acting user
    method: str
    rule: str
    path: str
    expect: str | int
    kwargs: dict[str, Any] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    anonymous: bool = False

    def check(self, answer: Answer, world: World) -> None:
        check_expectation(answer, self.expect, self.absent, f"{self.who}: {self.label}")


def core_cross_user_rows(world: World, owner_secret: str, private_secret: str,
                         contents: tuple[str, str]) -> list[CoreRow]:
    """`contents` are the owner's stored messages holding the two secrets; a search answer echoes its
    query, so a secret used as the query is looked for as the whole stored message."""
    ws, conv, private = world.ws, world.conv, world.private_conv
    owner_email, owner_id = world.owner.user["email"], world.owner.user["id"]
    theirs = (*contents, ws, conv, private, world.owner_message, world.participant_message)
    rows = [
        CoreRow("register the owner's email in upper case", "intruder", "POST", "/v1/auth/register",
                "/v1/auth/register", 409, {"json": {"email": owner_email.upper(), "name": "Impostor",
                                                     "password": "password-999"}}, anonymous=True),
        CoreRow("log in as the owner with a wrong password", "intruder", "POST", "/v1/auth/login", "/v1/auth/login",
                401, {"json": {"email": owner_email, "password": "password-999"}}, anonymous=True),
        CoreRow("form log-in as the owner with a wrong password", "intruder", "POST", "/v1/auth/login",
                "/v1/auth/login", 401, {"data": {"username": owner_email, "password": "password-999"}},
                anonymous=True),
        CoreRow("verify shows only the caller", "intruder", "GET", "/v1/auth/verify", "/v1/auth/verify", OWN,
                absent=(owner_id, owner_email)),
        CoreRow("create a workspace in the owner's name", "intruder", "POST", "/v1/workspace", "/v1/workspace", 400,
                {"json": {"name": "Theirs", "owner_id": owner_id}}),
        CoreRow("list workspaces", "intruder", "GET", "/v1/workspace", "/v1/workspace", OWN,
                {"params": {"limit": 1000}}, absent=theirs),
        CoreRow("read the workspace", "intruder", "GET", W, f"/v1/workspace/{ws}", HIDDEN),
        CoreRow("rename the workspace", "intruder", "PUT", W, f"/v1/workspace/{ws}", HIDDEN,
                {"json": {"name": "Mine"}}),
        CoreRow("delete the workspace", "intruder", "DELETE", W, f"/v1/workspace/{ws}", HIDDEN),
        CoreRow("create a conversation in the workspace", "intruder", "POST", "/v1/conversation", "/v1/conversation",
                HIDDEN, {"json": {"workspace_id": ws, "topic": "Mine"}}),
        CoreRow("list the workspace's conversations", "intruder", "GET", "/v1/conversation", "/v1/conversation",
                HIDDEN, {"params": {"workspace_id": ws}}),
        CoreRow("read the conversation", "intruder", "GET", C, f"/v1/conversation/{conv}", HIDDEN),
        CoreRow("retitle the conversation", "intruder", "PUT", C, f"/v1/conversation/{conv}", HIDDEN,
                {"json": {"topic": "Mine"}}),
        CoreRow("join the conversation", "intruder", "PUT", C, f"/v1/conversation/{conv}", HIDDEN,
                {"json": {"participant_ids": [owner_id, world.intruder.user["id"]]}}),
        CoreRow("delete the conversation", "intruder", "DELETE", C, f"/v1/conversation/{conv}", HIDDEN),
        CoreRow("post into the conversation", "intruder", "POST", f"{C}/messages", f"/v1/conversation/{conv}/messages",
                HIDDEN, {"json": {"content": "let me in"}}),
        CoreRow("read the history", "intruder", "GET", f"{C}/messages", f"/v1/conversation/{conv}/messages", HIDDEN,
                {"params": {"limit": 1000}}),
        CoreRow("stream the conversation", "intruder", "GET", f"{C}/messages/stream",
                f"/v1/conversation/{conv}/messages/stream", HIDDEN),
        CoreRow("stream with ?access_token=", "intruder", "GET", f"{C}/messages/stream",
                f"/v1/conversation/{conv}/messages/stream", HIDDEN, {"params": {"access_token": world.intruder.token}},
                anonymous=True),
        CoreRow("replay the stream from event 1", "intruder", "GET", f"{C}/messages/stream",
                f"/v1/conversation/{conv}/messages/stream", HIDDEN, {"headers": {"Last-Event-ID": "1"}}),
        CoreRow("a stream ticket for the conversation", "intruder", "POST", f"{C}/stream-ticket",
                f"/v1/conversation/{conv}/stream-ticket", HIDDEN),
        CoreRow("context from the conversation", "intruder", "POST", "/v1/context", "/v1/context", HIDDEN,
                {"json": {"conversation_id": conv, "query": "gate"}}),
        CoreRow("context by the secret's words", "intruder", "POST", "/v1/context", "/v1/context", OWN,
                {"json": {"query": f"{owner_secret} gate", "limit": 100}}, absent=theirs),
        CoreRow("search for the secrets", "intruder", "POST", "/v1/search", "/v1/search", OWN,
                {"json": {"query": f"{owner_secret} {private_secret} gate", "limit": 100}}, absent=theirs),
        *[CoreRow(f"analyse the conversation ({kind})", "intruder", "POST", "/v1/analyze", "/v1/analyze", HIDDEN,
                  {"json": {"conversation_id": conv, "analysis_type": kind}})
          for kind in ("summary", "topics", "sentiment", "activity")],
        CoreRow("invite oneself into the conversation", "intruder", "POST", f"{C}/participants",
                f"/v1/conversation/{conv}/participants", HIDDEN, {"json": {"user_id": world.intruder.user["id"]}}),
        CoreRow("remove the participant", "intruder", "DELETE", f"{C}/participants/<id:user_id>",
                f"/v1/conversation/{conv}/participants/{world.participant.user['id']}", HIDDEN),
        CoreRow("leave a conversation one is not in", "intruder", "DELETE", f"{C}/participants/me",
                f"/v1/conversation/{conv}/participants/me", HIDDEN),
        CoreRow("list the conversation's invitations", "intruder", "GET", "/v1/invitations", "/v1/invitations",
                HIDDEN, {"params": {"conversation_id": conv}}),
        CoreRow("list invitations", "intruder", "GET", "/v1/invitations", "/v1/invitations", OWN,
                {"params": {"limit": 1000}}, absent=theirs),
        CoreRow("accept an invitation by a guessed id", "intruder", "POST",
                "/v1/invitations/<id:invitation_id>/<any(accept, decline):answer>", f"/v1/invitations/{conv}/accept",
                HIDDEN),
        CoreRow("health shows no user data", "intruder", "GET", "/health", "/health", OWN, absent=theirs,
                anonymous=True),
        CoreRow("metrics hold no user data (no ids in labels)", "intruder", "GET", "/metrics", "/metrics", OWN,
                absent=theirs, anonymous=True),
        CoreRow("the web page holds no user data", "intruder", "GET", "/", "/", OWN, absent=theirs, anonymous=True),
        CoreRow("static files do not reach the database", "intruder", "GET", "/static/<path:filename>",
                "/static/..%2f..%2fvar%2fcortex-memory.db", 404, absent=theirs),
    ]
    # A participant of `conv` may read it, but not change what the owner owns, nor read `private`.
    rows += [
        CoreRow("read the shared conversation (control)", "participant", "GET", C, f"/v1/conversation/{conv}",
                ALLOWED),
        CoreRow("list the workspace's conversations", "participant", "GET", "/v1/conversation", "/v1/conversation",
                OWN, {"params": {"workspace_id": ws}}, absent=(private, contents[1])),
        CoreRow("rename the workspace", "participant", "PUT", W, f"/v1/workspace/{ws}", HIDDEN,
                {"json": {"name": "Mine"}}),
        CoreRow("delete the workspace", "participant", "DELETE", W, f"/v1/workspace/{ws}", HIDDEN),
        CoreRow("create a conversation in the workspace", "participant", "POST", "/v1/conversation",
                "/v1/conversation", HIDDEN, {"json": {"workspace_id": ws, "topic": "Mine"}}),
        CoreRow("retitle the shared conversation", "participant", "PUT", C, f"/v1/conversation/{conv}", HIDDEN,
                {"json": {"topic": "Mine"}}),
        CoreRow("delete the shared conversation", "participant", "DELETE", C, f"/v1/conversation/{conv}", HIDDEN),
        CoreRow("read the private conversation", "participant", "GET", C, f"/v1/conversation/{private}", HIDDEN),
        CoreRow("read the private history", "participant", "GET", f"{C}/messages",
                f"/v1/conversation/{private}/messages", HIDDEN),
        CoreRow("post into the private conversation", "participant", "POST", f"{C}/messages",
                f"/v1/conversation/{private}/messages", HIDDEN, {"json": {"content": "let me in"}}),
        CoreRow("stream the private conversation", "participant", "GET", f"{C}/messages/stream",
                f"/v1/conversation/{private}/messages/stream", HIDDEN),
        CoreRow("a stream ticket for the private conversation", "participant", "POST", f"{C}/stream-ticket",
                f"/v1/conversation/{private}/stream-ticket", HIDDEN),
        CoreRow("analyse the private conversation", "participant", "POST", "/v1/analyze", "/v1/analyze", HIDDEN,
                {"json": {"conversation_id": private, "analysis_type": "summary"}}),
        CoreRow("context from the private conversation", "participant", "POST", "/v1/context", "/v1/context", HIDDEN,
                {"json": {"conversation_id": private}}),
        CoreRow("search for the private secret", "participant", "POST", "/v1/search", "/v1/search", OWN,
                {"json": {"query": private_secret, "limit": 100}}, absent=(private, contents[1])),
        CoreRow("invite someone into the shared conversation", "participant", "POST", f"{C}/participants",
                f"/v1/conversation/{conv}/participants", HIDDEN, {"json": {"user_id": world.intruder.user["id"]}}),
        CoreRow("remove the owner", "participant", "DELETE", f"{C}/participants/<id:user_id>",
                f"/v1/conversation/{conv}/participants/{owner_id}", HIDDEN),
        CoreRow("list the shared conversation's invitations", "participant", "GET", "/v1/invitations",
                "/v1/invitations", HIDDEN, {"params": {"conversation_id": conv}}),
    ]
    return rows


@dataclass
class ServiceRow:
    label: str
    service: str  # "memory" | "cognition"
    kind: str  # "tool" | "resource" | "mcp"
    tool: str  # tool name, resource template, or MCP method
    arguments: dict[str, Any]  # tool arguments, resource path values + query, or MCP params
    expect: str | int
    absent: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, probe: Probe, world: World, auth: dict[str, str]) -> Answer:
        url = getattr(world.stack, self.service).url
        if self.kind == "tool":
            return probe("POST", f"{url}/tool/{self.tool}", headers=auth, json={"arguments": self.arguments})
        if self.kind == "resource":
            path, query = self.tool, dict(self.arguments)
            for name in list(query):
                if "{" + name + "}" in path:
                    path = path.replace("{" + name + "}", query.pop(name))
            return probe("GET", f"{url}/resource/{path}", headers=auth, params=query)
        message = {"jsonrpc": "2.0", "id": 7, "method": self.tool, "params": self.arguments}
        return probe("POST", f"{url}/mcp", json=message, headers={
            **auth, "MCP-Protocol-Version": "2025-06-18", "Accept": "application/json, text/event-stream"})

    def check(self, answer: Answer, world: World) -> None:
        check_expectation(answer, self.expect, self.absent, f"{self.service} {self.kind} {self.tool}: {self.label}")


def service_cross_user_rows(world: World, owner_secret: str, private_secret: str,
                            contents: tuple[str, str]) -> list[ServiceRow]:
    ws, conv, private, msg = world.ws, world.conv, world.private_conv, world.owner_message
    me, part, owner = world.intruder.user["id"], world.participant.user["id"], world.owner.user["id"]
    secrets = (owner_secret, private_secret)
    theirs = (*contents, ws, conv, private, msg, world.participant_message)

    def mem(label: str, tool: str, expect: str | int, absent: tuple[str, ...] = (), **arguments: Any) -> ServiceRow:
        return ServiceRow(label, "memory", "tool", tool, arguments, expect, absent)

    def cog(label: str, tool: str, expect: str | int, absent: tuple[str, ...] = (), **arguments: Any) -> ServiceRow:
        return ServiceRow(label, "cognition", "tool", tool, arguments, expect, absent)

    def res(label: str, service: str, template: str, expect: str, absent: tuple[str, ...] = (),
            **values: str) -> ServiceRow:
        return ServiceRow(label, service, "resource", template, values, expect, absent)

    def mcp(label: str, service: str, tool: str, **arguments: Any) -> ServiceRow:
        # Refusals may echo the ids they were asked about, so only the stored words must not appear.
        return ServiceRow(label, service, "mcp", "tools/call", {"name": tool, "arguments": arguments}, MCP_REFUSED,
                          contents)

    return [
        mem("register the owner's email again", "create_user", 409, email=world.owner.user["email"].upper(),
            name="Impostor", password="password-999"),
        mem("authenticate as the owner with a wrong password", "authenticate_user", 401,
            email=world.owner.user["email"], password="password-999"),
        mem("a user's public profile has no password hash", "get_user", OWN, ("password",), user_id=owner),
        mem("a new workspace is the caller's own", "create_workspace", OWN, (owner,), user_id=me, name="Extra"),
        mem("list workspaces", "list_workspaces", OWN, theirs, user_id=me, limit=1000),
        mem("read the workspace", "get_workspace", REFUSED, user_id=me, workspace_id=ws),
        mem("rename the workspace", "update_workspace", REFUSED, user_id=me, workspace_id=ws, name="Mine"),
        mem("delete the workspace", "delete_workspace", REFUSED, user_id=me, workspace_id=ws),
        mem("create a conversation in the workspace", "create_conversation", REFUSED, user_id=me, workspace_id=ws,
            topic="Mine"),
        mem("list the workspace's conversations", "list_conversations", REFUSED, user_id=me, workspace_id=ws),
        mem("read the conversation", "get_conversation", REFUSED, user_id=me, conversation_id=conv),
        mem("join the conversation", "update_conversation", REFUSED, user_id=me, conversation_id=conv,
            participant_ids=[owner, me]),
        mem("delete the conversation", "delete_conversation", REFUSED, user_id=me, conversation_id=conv),
        mem("post into the conversation", "store_input", REFUSED, user_id=me,
            input_data={"conversation_id": conv, "content": "let me in"}),
        mem("read a message", "get_message", REFUSED, user_id=me, message_id=msg),
        mem("claim the reply to a message", "claim_reply", REFUSED, user_id=me, message_id=msg),
        mem("rewrite a message", "update_message", REFUSED, user_id=me, message_id=msg, content="mine"),
        mem("delete a message", "delete_message", REFUSED, user_id=me, message_id=msg),
        mem("read the history", "list_messages", REFUSED, user_id=me, conversation_id=conv, limit=1000),
        mem("search everything for the secrets", "search_messages", OWN, theirs, user_id=me,
            query=" ".join(secrets), limit=1000),
        mem("search inside the conversation", "search_messages", REFUSED, user_id=me, query="gate",
            conversation_id=conv),
        mem("search by stems for the secrets", "search_messages", OWN, theirs, user_id=me,
            query=" ".join(secrets), limit=1000, match="stems"),
        mem("search by meaning for the secrets", "search_similar", OWN, theirs, user_id=me, model=EMBEDDING_MODEL,
            vector=[0.05] * EMBEDDING_DIMS, limit=1000),
        mem("search by meaning inside the conversation", "search_similar", REFUSED, user_id=me,
            model=EMBEDDING_MODEL, vector=[0.05] * EMBEDDING_DIMS, conversation_id=conv),
        mem("the turns around the owner's message", "messages_around", OWN, theirs, user_id=me, message_ids=[msg],
            distance=10),
        # The embedding workers' tools act for the service, not for a user: they take no user_id, and the
        # service token is what guards them (as it guards every tool's user_id). These rows pin that they
        # answer without one, with counts only where they can.
        mem("the embedding backlog is a count", "embedding_backlog", ALLOWED, secrets),
        mem("a backfill of a model is counts", "queue_missing_embeddings", ALLOWED, secrets,
            model=EMBEDDING_MODEL),
        mem("a made-up ticket stores nothing", "store_embeddings", ALLOWED, secrets, model=EMBEDDING_MODEL,
            items=[{"ticket": 999_999_999, "message_id": msg, "vector": [0.05] * EMBEDDING_DIMS}]),
        mem("a worker's claim hands out queued messages of any user", "claim_embedding_work", ALLOWED, limit=1,
            lease_seconds=1),
        mem("invite oneself into the conversation", "invite_participant", REFUSED, user_id=me, conversation_id=conv,
            participant_id=me),
        mem("remove the participant", "remove_participant", REFUSED, user_id=me, conversation_id=conv,
            participant_id=part),
        mem("leave a conversation one is not in", "leave_conversation", REFUSED, user_id=me, conversation_id=conv),
        mem("list the conversation's invitations", "list_invitations", REFUSED, user_id=me, conversation_id=conv),
        mem("list invitations", "list_invitations", OWN, theirs, user_id=me, limit=1000),
        mem("accept a made-up invitation", "respond_invitation", REFUSED, user_id=me, invitation_id=conv,
            accept=True),
        mem("participant invites someone", "invite_participant", REFUSED, user_id=part, conversation_id=conv,
            participant_id=me),
        mem("participant removes the owner", "remove_participant", REFUSED, user_id=part, conversation_id=conv,
            participant_id=owner),
        mem("participant reads a message of the shared conversation (control)", "get_message", ALLOWED,
            user_id=part, message_id=msg),
        mem("participant renames the workspace", "update_workspace", REFUSED, user_id=part, workspace_id=ws,
            name="Mine"),
        mem("participant deletes the workspace", "delete_workspace", REFUSED, user_id=part, workspace_id=ws),
        mem("participant creates a conversation", "create_conversation", REFUSED, user_id=part, workspace_id=ws,
            topic="Mine"),
        mem("participant retitles the conversation", "update_conversation", REFUSED, user_id=part,
            conversation_id=conv, topic="Mine"),
        mem("participant deletes the conversation", "delete_conversation", REFUSED, user_id=part,
            conversation_id=conv),
        mem("participant rewrites the owner's message", "update_message", REFUSED, user_id=part, message_id=msg,
            content="mine"),
        mem("participant deletes the owner's message", "delete_message", REFUSED, user_id=part, message_id=msg),
        mem("participant reads the private conversation", "get_conversation", REFUSED, user_id=part,
            conversation_id=private),
        mem("participant reads the private history", "list_messages", REFUSED, user_id=part,
            conversation_id=private),
        mem("participant searches for the private secret", "search_messages", OWN, (contents[1], private),
            user_id=part, query=private_secret),
        res("history", "memory", "history/{user_id}", OWN, theirs, user_id=me),
        res("history with a limit", "memory", "history/{user_id}/limit/{n}", OWN, theirs, user_id=me, n="10000"),
        res("the conversation", "memory", "conversation/{conversation_id}", REFUSED, conversation_id=conv,
            user_id=me),
        res("participant: the private conversation", "memory", "conversation/{conversation_id}", REFUSED,
            conversation_id=private, user_id=part),
        res("a message", "memory", "message/{message_id}", REFUSED, message_id=msg, user_id=me),
        cog("context from the conversation", "get_context", REFUSED, user_id=me, conversation_id=conv),
        cog("context by the secret's words", "get_context", OWN, theirs, user_id=me, query=f"{owner_secret} gate",
            limit=200),
        cog("search for the secrets", "search_history", OWN, theirs, user_id=me, query=" ".join(secrets),
            limit=1000),
        *[cog(f"analyse the conversation ({kind})", "analyze_conversation", REFUSED, user_id=me,
              conversation_id=conv, analysis_type=kind) for kind in ("summary", "topics", "sentiment", "activity")],
        cog("participant analyses the private conversation", "analyze_conversation", REFUSED, user_id=part,
            conversation_id=private, analysis_type="summary"),
        res("context from the conversation", "cognition", "context/{user_id}", REFUSED, user_id=me,
            conversation_id=conv),
        res("context by the secret's words", "cognition", "context/{user_id}", OWN, theirs, user_id=me,
            query=owner_secret, limit="200"),
        res("the conversation's analysis", "cognition", "conversation_analysis/{conversation_id}/{type}", REFUSED,
            conversation_id=conv, type="summary", user_id=me),
        mcp("read the conversation", "memory", "get_conversation", user_id=me, conversation_id=conv),
        mcp("read the history", "memory", "list_messages", user_id=me, conversation_id=conv),
        mcp("read a message", "memory", "get_message", user_id=me, message_id=msg),
        mcp("delete the conversation", "memory", "delete_conversation", user_id=me, conversation_id=conv),
        mcp("rename the workspace", "memory", "update_workspace", user_id=me, workspace_id=ws, name="Mine"),
        ServiceRow("read the conversation resource", "memory", "mcp", "resources/read",
                   {"uri": f"cortex://memory/conversation/{conv}?user_id={me}"}, MCP_REFUSED, contents),
        mcp("analyse the conversation", "cognition", "analyze_conversation", user_id=me, conversation_id=conv,
            analysis_type="summary"),
        mcp("context from the conversation", "cognition", "get_context", user_id=me, conversation_id=conv),
    ]


def tool_arguments(service: str, ids: dict[str, str], owner_email: str, new_email: str) -> dict[str, dict]:
    """Valid arguments for every tool, aimed at the objects in `ids`: a call that got past the token
    check would change or reveal them."""
    user = {"user_id": ids["user_id"]}
    ws, conv, msg = ({**user, key: ids[key]} for key in ("workspace_id", "conversation_id", "message_id"))
    if service == "cognition":
        return {"get_context": {**user, "query": "token"}, "search_history": {**user, "query": "token"},
                "analyze_conversation": {**conv, "analysis_type": "summary"}}
    return {
        "create_user": {"email": new_email, "name": "Tokenless", "password": "password-123"},
        "authenticate_user": {"email": owner_email, "password": "password-123"},
        "get_user": user, "create_workspace": {**user, "name": "Tokenless"}, "list_workspaces": user,
        "get_workspace": ws, "update_workspace": {**ws, "name": "Tokenless"}, "delete_workspace": ws,
        "create_conversation": {**ws, "topic": "Tokenless"}, "list_conversations": ws,
        "get_conversation": conv, "update_conversation": {**conv, "topic": "Tokenless"},
        "delete_conversation": conv, "list_messages": conv,
        "store_input": {**user, "input_data": {"conversation_id": ids["conversation_id"], "content": "tokenless"}},
        "get_message": msg, "update_message": {**msg, "content": "tokenless"}, "delete_message": msg,
        "claim_reply": msg, "search_messages": {**user, "query": "token"},
        "search_similar": {**user, "model": EMBEDDING_MODEL, "vector": [0.05] * EMBEDDING_DIMS},
        "messages_around": {**user, "message_ids": [ids["message_id"]]}, "embedding_backlog": {},
        "queue_missing_embeddings": {"model": EMBEDDING_MODEL}, "claim_embedding_work": {"limit": 1},
        "store_embeddings": {"model": EMBEDDING_MODEL, "items": [{"ticket": 1, "message_id": ids["message_id"],
                                                                  "vector": [0.05] * EMBEDDING_DIMS}]},
        "invite_participant": {**conv, "participant_id": ids["user_id"]}, "list_invitations": user,
        "respond_invitation": {**user, "invitation_id": ids["conversation_id"], "accept": True},
        "leave_conversation": conv, "remove_participant": {**conv, "participant_id": ids["user_id"]},
    }
