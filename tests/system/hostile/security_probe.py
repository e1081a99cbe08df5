"""Helpers for the security system tests: a probe that checks every answer it sees (no 5xx, no stack
traces or URLs in error bodies), forged user tokens, and the Core App's route table from the app itself."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from tests.system.hostile.raw_http import assert_error_shape, assert_no_leak

# Routes anyone may call without a user token (/metrics: only from this machine or with METRICS_TOKEN);
# every other route of the Core App needs one.
PUBLIC_ROUTES = {("POST", "/v1/auth/register"), ("POST", "/v1/auth/login"), ("GET", "/health"),
                 ("GET", "/"), ("GET", "/static/<path:filename>"), ("GET", "/metrics")}


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text)

    def error_code(self) -> str | None:
        """Our error shape's code, or the `data.code` of an MCP (JSON-RPC) refusal."""
        try:
            body = self.json()
        except ValueError:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return None
        code = error.get("code")
        if isinstance(code, int) and isinstance(error.get("data"), dict):
            return error["data"].get("code")
        return code if isinstance(code, str) else None


@dataclass
class Probe:
    """Sends requests and checks every answer: never 5xx; error bodies in the error shape (JSON-RPC for
    `/mcp`) and free of stack traces and internal URLs. Counts statuses for the test's figures."""

    statuses: Counter = field(default_factory=Counter)
    sent: int = 0

    def __call__(self, method: str, url: str, **kwargs: Any) -> Answer:
        kwargs.setdefault("timeout", 15)
        response = requests.request(method, url, stream=True, **kwargs)
        with response:
            live = "text/event-stream" in response.headers.get("Content-Type", "") and "/messages/stream" in url
            # A live stream never ends on its own: its status and headers are the answer.
            text = "" if live else read_body(response)
        answer = Answer(response.status_code, text, dict(response.headers))
        self.sent += 1
        self.statuses[answer.status] += 1
        where = f"{method} {url.split('?')[0]}"
        assert answer.status < 500, f"{where}: {answer.status}: {text[:300]}"
        if answer.status >= 400:
            assert_no_leak(text, where)
            if url.split("?")[0].endswith("/mcp"):
                assert isinstance(answer.json()["error"]["message"], str), text[:300]
            else:
                assert_error_shape(answer.status, text, where)
        return answer

    def figures(self) -> dict[str, Any]:
        return {"requests": self.sent, "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}


def read_body(response: requests.Response, limit_seconds: float = 10) -> str:
    deadline = time.monotonic() + limit_seconds
    chunks = []
    for chunk in response.iter_content(chunk_size=None):
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise AssertionError(f"{response.url}: body did not end within {limit_seconds} s")
    return b"".join(chunks).decode("utf-8", errors="replace")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(user_id: str, secret: str, someone_elses_token: str) -> dict[str, str]:
    """Tokens naming `user_id` that the Core App must refuse, by kind."""
    now = int(time.time())
    claims = {"sub": user_id, "email": "forged@example.com", "name": "Forged", "iat": now, "exp": now + 600}

    def signed(changes: dict, key: str = secret, algorithm: str = "HS256", drop: str | None = None) -> str:
        payload = {k: v for k, v in {**claims, **changes}.items() if k != drop}
        with warnings.catch_warnings():  # PyJWT warns that the test secret is short for HS512
            warnings.simplefilter("ignore")
            return jwt.encode(payload, key, algorithm=algorithm)

    honest = signed({})
    header, _, signature = honest.split(".")
    other_header, other_payload, other_signature = someone_elses_token.split(".")
    return {
        "expired": signed({"iat": now - 700, "exp": now - 100}),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "alg None": f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{_b64(claims)}.",
        "alg none, real signature": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.{signature}",
        "other key": signed({}, key="another-secret-that-is-long-enough-0123456789"),
        "HS512 with the right key": signed({}, algorithm="HS512"),
        "signature stripped": f"{header}.{_b64(claims)}.",
        "payload swapped into another user's token": f"{other_header}.{_b64(claims)}.{other_signature}",
        "no exp": signed({}, drop="exp"),
        "no iat": signed({}, drop="iat"),
        "no sub": signed({}, drop="sub"),
        "sub not a string": signed({"sub": 12345}),
        "exp not a number": signed({"exp": "tomorrow"}),
        "not valid yet (nbf)": signed({"nbf": now + 3600}),
        "garbage": "not.a.token",
        "empty": "",
    }


def core_routes(env: dict[str, str]) -> set[tuple[str, str]]:
    """Every (method, rule) the Core App serves, read from a Core App built in this process with the same
    settings as the one under test (its background health probe off)."""
    from core_app.app import create_app

    app = create_app({**env, "HEALTH_INTERVAL_SECONDS": "0"})
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}


def authenticated_attempts(ws: str, conv: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """One request for every route that needs a user token, aimed at workspace `ws` and conversation
    `conv`: (method, rule, path, requests kwargs)."""
    w, c = "/v1/workspace/<id:workspace_id>", "/v1/conversation/<id:conversation_id>"
    return [
        ("GET", "/v1/auth/verify", "/v1/auth/verify", {}),
        ("POST", "/v1/workspace", "/v1/workspace", {"json": {"name": "Mine now"}}),
        ("GET", "/v1/workspace", "/v1/workspace", {}),
        ("GET", w, f"/v1/workspace/{ws}", {}),
        ("PUT", w, f"/v1/workspace/{ws}", {"json": {"name": "Mine now"}}),
        ("DELETE", w, f"/v1/workspace/{ws}", {}),
        ("POST", "/v1/conversation", "/v1/conversation", {"json": {"workspace_id": ws, "topic": "Mine"}}),
        ("GET", "/v1/conversation", "/v1/conversation", {"params": {"workspace_id": ws}}),
        ("GET", c, f"/v1/conversation/{conv}", {}),
        ("PUT", c, f"/v1/conversation/{conv}", {"json": {"topic": "Mine now"}}),
        ("DELETE", c, f"/v1/conversation/{conv}", {}),
        ("POST", f"{c}/messages", f"/v1/conversation/{conv}/messages", {"json": {"content": "let me in"}}),
        ("GET", f"{c}/messages", f"/v1/conversation/{conv}/messages", {}),
        ("GET", f"{c}/messages/stream", f"/v1/conversation/{conv}/messages/stream", {}),
        ("POST", f"{c}/stream-ticket", f"/v1/conversation/{conv}/stream-ticket", {}),
        ("POST", "/v1/context", "/v1/context", {"json": {"query": "owl", "conversation_id": conv}}),
        ("POST", "/v1/search", "/v1/search", {"json": {"query": "owl"}}),
        ("POST", "/v1/analyze", "/v1/analyze", {"json": {"conversation_id": conv, "analysis_type": "summary"}}),
        ("POST", f"{c}/participants", f"/v1/conversation/{conv}/participants",
         {"json": {"user_id": str(uuid.uuid4())}}),
        ("DELETE", f"{c}/participants/me", f"/v1/conversation/{conv}/participants/me", {}),
        ("DELETE", f"{c}/participants/<id:user_id>", f"/v1/conversation/{conv}/participants/{uuid.uuid4()}", {}),
        ("GET", "/v1/invitations", "/v1/invitations", {"params": {"conversation_id": conv}}),
        ("POST", "/v1/invitations/<id:invitation_id>/<any(accept, decline):answer>",
         f"/v1/invitations/{uuid.uuid4()}/accept", {}),
    ]


def fill_resource(template: str, params_schema: dict, values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A concrete `/resource/...` path and query for a template from `GET /resources`, every required
    parameter filled from `values`."""
    path = template
    in_path = set()
    for name, value in values.items():
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", value)
            in_path.add(name)
    assert "{" not in path, f"no value for a parameter of {template}"
    query = {name: values[name] for name in params_schema.get("required", []) if name not in in_path}
    return f"/resource/{path}", query
