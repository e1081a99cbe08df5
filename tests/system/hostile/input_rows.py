"""The hostile-input table: one raw request per row against Memory, Cognition or the Core App.

Targets and bodies are bytes sent as they are. `@USER@`, `@CONV@`, `@CONV2@`, `@WS@`, `@MSG@` and `@EMAIL@`
are replaced with the seeded user's ids (see `test_input.seed`) just before sending. A row expects a
refusal (a 4xx in the error shape, with `status`/`code` when given), or `status=200` for the FTS rows
that docs/DECISIONS.md says are searched as plain words. `bug` marks a row that currently fails: it
stays in the table as `xfail(strict=True, raises=<the failure class>)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SEED_CONTENT = "The grey owl sat on the heron's post by the lake"
TWO_MB = 2 * 1024 * 1024

@dataclass(frozen=True)
class Row:
    id: str
    service: str  # "memory" | "cognition" | "core"
    method: str
    target: bytes
    body: bytes = b""
    headers: tuple[tuple[str, bytes], ...] = ()
    ctype: str | None = "auto"  # "auto": application/json on POST/PUT
    auth: bool = True  # service token for Memory/Cognition, the user's JWT for the Core App
    framing: str = "length"  # "length" | "chunked" | "none" (the row's headers say it all)
    status: int | None = None
    code: str | None = None
    min_count: int | None = None  # for 200 rows: at least this many search results
    bug: str | None = None
    raises: type[AssertionError] | tuple[type[AssertionError], ...] | None = None


def b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def args(**arguments: Any) -> bytes:
    return json.dumps({"arguments": arguments}).encode()


def deep(levels: int) -> bytes:
    """A JSON object nested `levels` deep."""
    return b'{"a":' * levels + b"1" + b"}" * levels


def mem(id: str, tool: str, body: bytes, status: int | None = 400, code: str | None = None, **kw: Any) -> Row:
    return Row(id, "memory", "POST", b(f"/tool/{tool}"), body, status=status, code=code, **kw)


def cog(id: str, tool: str, body: bytes, status: int | None = 400, code: str | None = None, **kw: Any) -> Row:
    return Row(id, "cognition", "POST", b(f"/tool/{tool}"), body, status=status, code=code, **kw)


def get(id: str, service: str, target: str | bytes, status: int | None, code: str | None = None, **kw: Any) -> Row:
    return Row(id, service, "GET", b(target), status=status, code=code, **kw)


def core(id: str, method: str, target: str | bytes, body: bytes | dict | list | None = None,
         status: int | None = 400, code: str | None = None, **kw: Any) -> Row:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    return Row(id, "core", method, b(target), raw, status=status, code=code, **kw)


USER = {"user_id": "@USER@"}
BAD_JSON, BAD_ARGS, TOO_LARGE, MEDIA = "invalid_request", "invalid_arguments", "payload_too_large", \
    "unsupported_media_type"
HUGE_USER_ID = b'{"arguments": {"user_id": "' + b"a" * TWO_MB + b'"}}'
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
WITH_KEY = (("Idempotency-Key", b"hostile-key-0001"),)
STORE = {"conversation_id": "@CONV@", "content": "hello"}

PROTOCOL_ROWS = [
    mem("m-json-truncated", "get_user", b'{"arguments": {"user_id": ', code=BAD_JSON),
    mem("m-json-array", "get_user", b'[{"arguments": {"user_id": "@USER@"}}]', code=BAD_JSON),
    mem("m-json-string", "get_user", b'"arguments"', code=BAD_JSON),
    mem("m-json-null", "get_user", b"null", code=BAD_JSON),
    mem("m-empty-body", "get_user", b"", code=BAD_JSON),
    mem("m-no-arguments-key", "get_user", b"{}", code=BAD_JSON),
    mem("m-arguments-is-a-list", "get_user", b'{"arguments": ["@USER@"]}', code=BAD_JSON),
    mem("m-extra-top-level-field", "get_user", b'{"arguments": {"user_id": "@USER@"}, "sudo": true}',
        code=BAD_JSON),
    mem("m-unknown-argument", "get_user", args(user_id="@USER@", is_admin=True), code=BAD_ARGS),
    mem("m-id-wrong-type", "get_user", args(user_id=42), code=BAD_ARGS),
    mem("m-ctype-text-plain", "get_user", args(**USER), ctype="text/plain", status=415, code=MEDIA),
    mem("m-ctype-form", "get_user", b"user_id=@USER@", ctype="application/x-www-form-urlencoded",
        status=415, code=MEDIA),
    mem("m-ctype-xml", "get_user", b"<arguments user_id='@USER@'/>", ctype="application/xml", status=415,
        code=MEDIA),
    mem("m-ctype-missing", "get_user", args(**USER), ctype=None, status=415, code=MEDIA),
    mem("m-invalid-utf8-body", "get_user", b'{"arguments": {"user_id": "\xff\xfe\xfd"}}', code=BAD_JSON),
    mem("m-raw-nul-in-body", "get_user", b'{"arguments":\x00{"user_id": "@USER@"}}', code=BAD_JSON),
    mem("m-escaped-nul-in-id", "get_user", b'{"arguments": {"user_id": "ab\\u0000cd"}}', code=BAD_ARGS),
    mem("m-lone-surrogate-id", "get_user", b'{"arguments": {"user_id": "\\ud800"}}', code=BAD_JSON),
    mem("m-deep-nesting-100k", "get_user", b'{"arguments": {"user_id": ' + DEEP_ARRAY + b"}}", code=BAD_JSON),
    mem("m-int-5000-digits", "list_workspaces", b'{"arguments": {"user_id": "@USER@", "limit": '
        + b"9" * 5000 + b"}}", code=BAD_JSON),
    mem("m-limit-infinity", "list_workspaces", b'{"arguments": {"user_id": "@USER@", "limit": 1e400}}',
        code=BAD_ARGS),
    mem("m-limit-nan", "list_workspaces", b'{"arguments": {"user_id": "@USER@", "limit": NaN}}', code=BAD_ARGS),
    mem("m-limit-negative", "list_workspaces", args(**USER, limit=-1), code=BAD_ARGS),
    mem("m-limit-zero", "list_workspaces", args(**USER, limit=0), code=BAD_ARGS),
    mem("m-limit-huge", "list_workspaces", args(**USER, limit=10**30), code=BAD_ARGS),
    mem("m-limit-fraction", "list_workspaces", args(**USER, limit=2.5), code=BAD_ARGS),
    mem("m-offset-negative", "list_workspaces", args(**USER, offset=-1), code=BAD_ARGS),
    mem("m-offset-huge", "list_workspaces", args(**USER, offset=10**20), code=BAD_ARGS),
    mem("m-after-sequence-negative", "list_messages", args(**USER, conversation_id="@CONV@", after_sequence=-1),
        code=BAD_ARGS),
    mem("m-id-65-chars", "get_workspace", args(**USER, workspace_id="a" * 65), code=BAD_ARGS),
    mem("m-id-sql-injection", "get_workspace", args(**USER, workspace_id="x' OR '1'='1"), code=BAD_ARGS),
    mem("m-id-path-traversal", "get_conversation", args(**USER, conversation_id="../../etc/passwd"),
        code=BAD_ARGS),
    mem("m-body-2mb", "get_user", HUGE_USER_ID, status=413, code=TOO_LARGE),
    mem("m-content-length-2mb-lie", "get_user", args(**USER), status=413, code=TOO_LARGE, framing="none",
        headers=(("Content-Length", b"2000000"),)),
    mem("m-body-2mb-chunked", "get_user", HUGE_USER_ID, status=413, code=TOO_LARGE, framing="chunked"),
    mem("m-unknown-tool", "drop_all_tables", args(**USER), status=404, code="tool_not_found"),
    Row("m-tool-dotdot", "memory", "POST", b"/tool/../tools", args(**USER), status=404, code="tool_not_found"),
    Row("m-tool-encoded-dotdot", "memory", "POST", b"/tool/%2e%2e%2ftools", args(**USER), status=404,
        code="tool_not_found"),
    mem("m-tool-name-3000-chars", "x" * 3000, args(**USER), status=404, code="tool_not_found"),
    get("m-get-on-a-tool", "memory", "/tool/get_user", 405, "method_not_allowed"),
    Row("m-delete-tools", "memory", "DELETE", b"/tools", status=405, code="method_not_allowed"),
    get("m-root-dotdot", "memory", "/../../etc/passwd", 404, "not_found"),
    mem("m-idempotency-key-short", "get_user", args(**USER), headers=(("Idempotency-Key", b"abc"),),
        code=BAD_JSON),
    mem("m-idempotency-key-invalid-utf8", "get_user", args(**USER),
        headers=(("Idempotency-Key", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"),), code=BAD_JSON),
    mem("m-store-empty-content", "store_input", args(**USER, input_data={**STORE, "content": ""}), code=BAD_ARGS),
    mem("m-store-content-32001", "store_input", args(**USER, input_data={**STORE, "content": "x" * 32_001}),
        code=BAD_ARGS),
    mem("m-store-role-admin", "store_input", args(**USER, input_data={**STORE, "role": "admin"}), code=BAD_ARGS),
    mem("m-store-unknown-nested-field", "store_input", args(**USER, input_data={**STORE, "sender_id": "x"}),
        code=BAD_ARGS),
    mem("m-metadata-101-keys", "create_workspace", args(**USER, name="w", metadata={str(i): i for i in range(101)}),
        code=BAD_ARGS),
    mem("m-metadata-not-an-object", "create_workspace", args(**USER, name="w", metadata="x"), code=BAD_ARGS),
    mem("m-metadata-nested-300-with-key", "store_input", b'{"arguments": {"user_id": "@USER@", "input_data": '
        b'{"conversation_id": "@CONV@", "content": "deep", "metadata": ' + deep(300) + b"}}}", code=BAD_ARGS,
        headers=WITH_KEY),
    mem("m-metadata-lone-surrogate-with-key", "create_workspace",
        b'{"arguments": {"user_id": "@USER@", "name": "w", "metadata": {"k": "\\ud800"}}}', code=BAD_JSON,
        headers=WITH_KEY),
    mem("m-metadata-lone-surrogate-no-key", "store_input", b'{"arguments": {"user_id": "@USER@", "input_data": '
        b'{"conversation_id": "@CONV2@", "content": "odd", "metadata": {"k": "\\ud800"}}}}', code=BAD_JSON),
    mem("m-create-user-bad-email", "create_user", args(email="not-an-email", name="n", password="password-1"),
        code=BAD_ARGS),
    mem("m-create-user-short-password", "create_user", args(email="x@example.com", name="n", password="short"),
        code=BAD_ARGS),
    mem("m-create-user-taken-email-other-case", "create_user", args(email="@EMAIL@", name="n",
                                                                    password="password-1"), status=409,
        code="conflict"),
    mem("m-participants-101", "create_conversation", args(**USER, workspace_id="@WS@", topic="t",
                                                          participant_ids=[f"u{i}" for i in range(101)]),
        code=BAD_ARGS),
    mem("m-search-empty-query", "search_messages", args(**USER, query=""), code=BAD_ARGS),
    mem("m-search-query-32001", "search_messages", args(**USER, query="owl " * 8001), code=BAD_ARGS),
]

RESOURCE_ROWS = [
    get("m-res-dotdot", "memory", "/resource/history/../../etc/passwd", 404, "not_found"),
    get("m-res-encoded-slashes", "memory", "/resource/message/..%2f..%2fetc?user_id=@USER@", 404, "not_found"),
    get("m-res-invalid-utf8-escape", "memory", "/resource/history/%ff%fe", 400, BAD_ARGS),
    get("m-res-nul-escape", "memory", "/resource/history/ab%00cd", 400, BAD_ARGS),
    get("m-res-unknown", "memory", "/resource/secrets/all", 404, "not_found"),
    get("m-res-empty-segment", "memory", "/resource/history/", 404, "not_found"),
    get("m-res-limit-negative", "memory", "/resource/history/@USER@/limit/-5", 400, BAD_ARGS),
    get("m-res-limit-huge", "memory", "/resource/history/@USER@/limit/" + "9" * 30, 400, BAD_ARGS),
    get("m-res-limit-not-a-number", "memory", "/resource/history/@USER@/limit/ten", 400, BAD_ARGS),
    get("m-res-param-twice", "memory", "/resource/history/@USER@?user_id=@USER@", 400, BAD_ARGS),
    get("m-res-unknown-param", "memory", "/resource/conversation/@CONV@?user_id=@USER@&debug=1", 400, BAD_ARGS),
    get("m-res-missing-user", "memory", "/resource/conversation/@CONV@", 400, BAD_ARGS),
    get("m-res-invalid-utf8-query", "memory", "/resource/conversation/@CONV@?user_id=%ff", 400, BAD_ARGS),
    get("c-res-dotdot", "cognition", "/resource/context/../../etc/passwd", 404, "not_found"),
    get("c-res-limit-negative", "cognition", "/resource/context/@USER@?limit=-1", 400, BAD_ARGS),
    get("c-res-limit-201", "cognition", "/resource/context/@USER@?limit=201", 400, BAD_ARGS),
    get("c-res-analysis-type-unknown", "cognition", "/resource/conversation_analysis/@CONV@/astrology"
        "?user_id=@USER@", 400, BAD_ARGS),
    get("c-res-unknown", "cognition", "/resource/memory/dump", 404, "not_found"),
]

COGNITION_ROWS = [
    cog("c-json-truncated", "get_context", b'{"arguments": {', code=BAD_JSON),
    cog("c-ctype-text-plain", "get_context", args(**USER), ctype="text/plain", status=415, code=MEDIA),
    cog("c-invalid-utf8-body", "get_context", b'{"arguments": {"user_id": "@USER@", "query": "\xc3\x28"}}',
        code=BAD_JSON),
    cog("c-deep-nesting-100k", "get_context", b'{"arguments": {"query": ' + DEEP_ARRAY + b"}}", code=BAD_JSON),
    cog("c-body-2mb", "get_context", HUGE_USER_ID, status=413, code=TOO_LARGE),
    cog("c-body-2mb-chunked", "get_context", HUGE_USER_ID, status=413, code=TOO_LARGE, framing="chunked"),
    cog("c-unknown-tool", "exec_python", args(**USER), status=404, code="tool_not_found"),
    cog("c-unknown-argument", "get_context", args(**USER, sql="SELECT 1"), code=BAD_ARGS),
    cog("c-context-limit-zero", "get_context", args(**USER, limit=0), code=BAD_ARGS),
    cog("c-context-limit-201", "get_context", args(**USER, limit=201), code=BAD_ARGS),
    cog("c-search-limit-huge", "search_history", args(**USER, query="owl", limit=10**12), code=BAD_ARGS),
    cog("c-search-empty-query", "search_history", args(**USER, query="   "), code=BAD_ARGS),
    cog("c-query-32001", "get_context", args(**USER, query="o" * 32_001), code=BAD_ARGS),
    cog("c-analysis-type-unknown", "analyze_conversation", args(**USER, conversation_id="@CONV@",
                                                                analysis_type="astrology"), code=BAD_ARGS),
    cog("c-analysis-type-injection", "analyze_conversation", args(**USER, conversation_id="@CONV@",
                                                                  analysis_type="summary; rm -rf /"),
        code=BAD_ARGS),
]

CORE_ROWS = [
    core("k-register-json-truncated", "POST", "/v1/auth/register", b'{"email": "a@b.co", ', code=BAD_JSON),
    core("k-register-json-array", "POST", "/v1/auth/register", [{"email": "a@b.co"}], code=BAD_JSON),
    core("k-register-unknown-field", "POST", "/v1/auth/register",
         {"email": "k1@example.com", "name": "k", "password": "password-1", "is_admin": True}, code=BAD_ARGS),
    core("k-register-text-plain", "POST", "/v1/auth/register", b"email=a@b.co", ctype="text/plain", status=415,
         code=MEDIA),
    core("k-register-nul-in-email", "POST", "/v1/auth/register",
         {"email": "a\u0000b@example.com", "name": "k", "password": "password-1"}, code=BAD_ARGS),
    core("k-register-invalid-utf8", "POST", "/v1/auth/register",
         b'{"email": "\xff@example.com", "name": "k", "password": "password-1"}', code=BAD_JSON),
    core("k-register-2mb", "POST", "/v1/auth/register", {"email": "a@b.co", "name": "x" * TWO_MB}, status=413,
         code=TOO_LARGE),
    core("k-register-2mb-chunked", "POST", "/v1/auth/register", {"email": "a@b.co", "name": "x" * TWO_MB},
         status=413, code=TOO_LARGE, framing="chunked"),
    core("k-login-text-plain", "POST", "/v1/auth/login", b"@EMAIL@:pw", ctype="text/plain", status=415,
         code=MEDIA),
    core("k-login-form-no-password", "POST", "/v1/auth/login", b"username=@EMAIL@",
         ctype="application/x-www-form-urlencoded", code=BAD_ARGS),
    core("k-login-form-invalid-utf8", "POST", "/v1/auth/login", b"username=%ff%fe&password=\xff",
         ctype="application/x-www-form-urlencoded", code=BAD_ARGS),
    core("k-login-form-2mb", "POST", "/v1/auth/login", b"username=" + b"a" * TWO_MB,
         ctype="application/x-www-form-urlencoded", status=413, code=TOO_LARGE),
    core("k-login-broken-multipart", "POST", "/v1/auth/login", b"--zz\r\nbroken",
         ctype="multipart/form-data; boundary=zz", code=BAD_ARGS),
    core("k-workspaces-limit-negative", "GET", "/v1/workspace?limit=-1", code=BAD_ARGS),
    core("k-workspaces-limit-huge", "GET", "/v1/workspace?limit=" + "9" * 30, code=BAD_ARGS),
    core("k-workspaces-offset-negative", "GET", "/v1/workspace?offset=-1", code=BAD_ARGS),
    core("k-workspaces-limit-text", "GET", "/v1/workspace?limit=all", code=BAD_ARGS),
    core("k-workspaces-unknown-param", "GET", "/v1/workspace?owner_id=@USER@", code=BAD_ARGS),
    core("k-workspaces-invalid-utf8-query", "GET", "/v1/workspace?limit=%ff", code=BAD_ARGS),
    core("k-workspace-empty-name", "POST", "/v1/workspace", {"name": "   "}, code=BAD_ARGS),
    core("k-workspace-owner-field", "POST", "/v1/workspace", {"name": "w", "owner_id": "@USER@"}, code=BAD_ARGS),
    core("k-workspace-metadata-nested-300", "POST", "/v1/workspace", b'{"name": "w", "metadata": ' + deep(300)
         + b"}", code=BAD_ARGS),
    core("k-message-metadata-lone-surrogate", "POST", "/v1/conversation/@CONV@/messages",
         b'{"content": "hi", "metadata": {"k": "\\ud800"}}', code=BAD_JSON),
    core("k-conversation-no-workspace", "POST", "/v1/conversation", {"topic": "t"}, code=BAD_ARGS),
    core("k-conversations-no-workspace-param", "GET", "/v1/conversation", code=BAD_ARGS),
    core("k-conversation-dotdot", "GET", "/v1/conversation/../../etc/passwd", status=404, code="not_found"),
    core("k-conversation-encoded-dotdot", "GET", "/v1/conversation/%2e%2e%2f%2e%2e/messages", status=404,
         code="not_found"),
    core("k-conversation-nul-escape", "GET", "/v1/conversation/@CONV@%00/messages", status=404, code="not_found"),
    core("k-conversation-id-65-chars", "GET", "/v1/conversation/" + "a" * 65, status=404, code="not_found"),
    core("k-history-after-negative", "GET", "/v1/conversation/@CONV@/messages?after_sequence=-1", code=BAD_ARGS),
    core("k-history-limit-zero", "GET", "/v1/conversation/@CONV@/messages?limit=0", code=BAD_ARGS),
    core("k-history-limit-1001", "GET", "/v1/conversation/@CONV@/messages?limit=1001", code=BAD_ARGS),
    core("k-message-empty-content", "POST", "/v1/conversation/@CONV@/messages", {"content": ""}, code=BAD_ARGS),
    core("k-message-deep-nesting", "POST", "/v1/conversation/@CONV@/messages",
         b'{"content": "x", "metadata": ' + DEEP_ARRAY + b"}", code=BAD_JSON),
    core("k-message-2mb", "POST", "/v1/conversation/@CONV@/messages", {"content": "x" * TWO_MB}, status=413,
         code=TOO_LARGE),
    core("k-message-idempotency-key-spaces", "POST", "/v1/conversation/@CONV@/messages", {"content": "x"},
         headers=(("Idempotency-Key", b"not a valid key"),), code=BAD_JSON),
    core("k-stream-last-event-id-text", "GET", "/v1/conversation/@CONV@/messages/stream",
         headers=(("Last-Event-ID", b"latest"),), code=BAD_JSON),
    core("k-stream-last-event-id-21-digits", "GET", "/v1/conversation/@CONV@/messages/stream?last_event_id="
         + "9" * 21, code=BAD_JSON),
    core("k-stream-last-event-id-invalid-utf8", "GET", "/v1/conversation/@CONV@/messages/stream",
         headers=(("Last-Event-ID", b"\xff\xfe"),), code=BAD_JSON),
    core("k-auth-header-invalid-utf8", "GET", "/v1/workspace", auth=False,
         headers=(("Authorization", b"Bearer \xff\xfe\xfd"),), status=401, code="unauthorized"),
    core("k-auth-token-8000-chars", "GET", "/v1/workspace", auth=False,
         headers=(("Authorization", b"Bearer " + b"A" * 8000),), status=401, code="unauthorized"),
    core("k-search-empty-query", "POST", "/v1/search", {"query": ""}, code=BAD_ARGS),
    core("k-search-limit-101", "POST", "/v1/search", {"query": "owl", "limit": 101}, code=BAD_ARGS),
    core("k-search-user-id-field", "POST", "/v1/search", {"query": "owl", "user_id": "@USER@"}, code=BAD_ARGS),
    core("k-context-limit-zero", "POST", "/v1/context", {"limit": 0}, code=BAD_ARGS),
    core("k-analyze-type-unknown", "POST", "/v1/analyze", {"conversation_id": "@CONV@",
                                                          "analysis_type": "astrology"}, code=BAD_ARGS),
    core("k-unknown-route", "GET", "/v1/admin", status=404, code="not_found"),
    core("k-method-not-allowed", "DELETE", "/v1/auth/login", status=405, code="method_not_allowed"),
]

GUNICORN_ROWS = [
    Row(f"{prefix}-header-100kb", svc, "GET", b"/health", headers=(("X-Padding", b"p" * 100_000),), status=431)
    for prefix, svc in (("m", "memory"), ("c", "cognition"), ("k", "core"))
] + [
    Row("k-150-headers", "core", "GET", b"/v1/workspace", headers=tuple((f"X-H{i}", b"v") for i in range(150)),
        status=431),
    Row("m-request-line-9000", "memory", "POST", b"/tool/" + b"x" * 9000, args(**USER), status=414),
    Row("k-invalid-utf8-in-path", "core", "GET", b"/v1/conversation/\xff\xfe/messages", status=400),
    Row("m-negative-content-length", "memory", "POST", b"/tool/get_user", b"{}", framing="none",
        headers=(("Content-Length", b"-5"),), status=400),
]

# Search text is never FTS5 syntax (docs/DECISIONS.md): these answer 200, and words still match.
FTS_QUERIES = [('"', 0), ("*", 0), ("((((", 0), ("NEAR(owl heron, 2)", 1), ("owl AND OR NOT", 1),
               ("content:owl", 1), ("'; DROP TABLE messages; --", 0), ("^owl*", 1), ('"unbalanced owl', 1),
               ("owl -heron +", 1), ("{content}: owl", 1), ("owl\u0000heron", 1)]


def fts_rows() -> list[Row]:
    rows = [mem(f"m-fts-{i:02d}", "search_messages", args(**USER, query=q), status=200, min_count=n)
            for i, (q, n) in enumerate(FTS_QUERIES)]
    rows += [cog(f"c-fts-search-{i:02d}", "search_history", args(**USER, query=q), status=200, min_count=n)
             for i, (q, n) in enumerate(FTS_QUERIES[:4])]
    rows += [cog(f"c-fts-context-{i:02d}", "get_context", args(**USER, query=q), status=200)
             for i, (q, _) in enumerate(FTS_QUERIES[4:7])]
    rows += [core(f"k-fts-search-{i:02d}", "POST", "/v1/search", {"query": q}, status=200, min_count=n)
             for i, (q, n) in enumerate(FTS_QUERIES[7:])]
    return rows


# Flask serves `/static/<path:filename>` (the Core: the web page's files): traversal must not escape.
STATIC_TRAVERSALS = ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/etc/passwd",
                     "/static/../../var/cortex-memory.db"]


def static_rows() -> list[Row]:
    rows = [get(f"{prefix}-static-traversal-{i}", svc, target, 404, "not_found", auth=False)
            for prefix, svc in (("m", "memory"), ("c", "cognition"), ("k", "core"))
            for i, target in enumerate(STATIC_TRAVERSALS)]
    rows += [get("k-double-slash-in-path", "core", "/v1//workspace", 404, "not_found"),
             get("m-double-slash-static", "memory", "/static//etc/passwd", 404, "not_found", auth=False)]
    return rows


ROWS: list[Row] = [*PROTOCOL_ROWS, *RESOURCE_ROWS, *COGNITION_ROWS, *CORE_ROWS, *GUNICORN_ROWS, *static_rows(),
                   *fts_rows()]
