"""Reply generators: `builtin` (offline, deterministic) and `openai` (any OpenAI-compatible endpoint).

A generator turns a `Prompt` into an iterator of text deltas; it never blocks until the reply is whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from urllib3.exceptions import ReadTimeoutError

from common.client import ClientSettings, RetryPolicy
from common.client.transport import Transport
from common.errors import ServiceError, ServiceTimeout, ServiceUnavailable

# What went wrong with the language model, in a word (`cortex_provider_errors{kind}`): no answer in time;
# not reachable (or a proxy in front said so); its stream broke off or ended before the reply was finished;
# it refused the request (key, model, request: a 4xx) or its rate limit or quota (429); it answered with
# another error (5xx, or a body that is no error we can read); a chunk we cannot read; an error it
# reported in the middle of its stream.
PROVIDER_FAILURES = ("timeout", "unavailable", "cut", "rejected", "rate_limited", "server_error", "bad_response",
                     "model_error")


class ProviderError(ServiceError):
    """The language model failed the reply; `kind` is one of PROVIDER_FAILURES ("other" when not said)."""

    status, code, default_message = 502, "provider_error", "the reply generator failed"

    def __init__(self, message: str | None = None, *, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def failure_kind(exc: ServiceError, streaming: bool) -> str:
    """The PROVIDER_FAILURES word for an error the transport raised, before the stream opened or while it
    was being read (`streaming`)."""
    if isinstance(exc, ServiceTimeout) or isinstance(exc.__cause__, ReadTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, ServiceUnavailable):
        return "cut" if streaming else "unavailable"
    if exc.status == 429:
        return "rate_limited"
    if 400 <= exc.status < 500:
        return "rejected"
    return "server_error"


@dataclass(frozen=True)
class Prompt:
    message: str
    context: list[dict] = field(default_factory=list)  # related messages from all the user's history
    history: list[dict] = field(default_factory=list)  # this conversation's turns before the message
    sender_id: str | None = None  # who wrote the message: "I" in a conversation with several people


class Generator(Protocol):
    def stream(self, prompt: Prompt) -> Iterator[str]: ...


def _snippet(text: str, words: int = 24, chars: int = 200) -> str:
    parts = text.split()
    snippet = " ".join(parts[:words])
    if len(snippet) > chars:
        return snippet[:chars] + "…"
    return snippet + (" …" if len(parts) > words else "")


# "What did I say?", "what did I just write", "what was my last message" ...
_ASKS_WHAT_I_SAID = re.compile(
    r"\bwhat (did|have) i (just |last )?(say|said|write|written|ask|asked|tell|told)\b"
    r"|\bwhat was my (last |previous )?(message|question)\b", re.IGNORECASE)


class BuiltinGenerator:
    """Answers from the conversation's recent turns and the retrieved context, the same way every time,
    a few words per delta."""

    words_per_delta = 3

    def compose(self, prompt: Prompt) -> str:
        earlier = self._said_before(prompt)
        if _ASKS_WHAT_I_SAID.search(prompt.message):
            if not earlier:
                return "You have not said anything before this in our conversation."
            reply = f"Just before this you said: “{_snippet(earlier[-1]['content'])}”."
            if len(earlier) > 1:
                reply += f" Before that: “{_snippet(earlier[-2]['content'])}”."
            return reply
        # What the user said before is the useful recall; earlier replies only echo it.
        said = [item for item in prompt.context if item.get("role") == "user"] or prompt.context
        quoted = [_snippet(item["content"]) for item in said[:2] if item.get("content")]
        if quoted:
            recalled = " ".join(f"“{text}”" for text in quoted)
            return f"You asked: “{_snippet(prompt.message)}”. From your history I recall {recalled}."
        if earlier:
            recent = " and ".join(f"“{_snippet(turn['content'])}”" for turn in earlier[-2:])
            return f"You said: “{_snippet(prompt.message)}”. Earlier in this conversation you said {recent}."
        return f"You said: “{_snippet(prompt.message)}”. I have nothing earlier on this yet."

    @staticmethod
    def _said_before(prompt: Prompt) -> list[dict]:
        """The sender's own earlier messages in this conversation, oldest first."""
        return [turn for turn in prompt.history if turn.get("role") == "user" and turn.get("content")
                and (prompt.sender_id is None or turn.get("sender_id") in (None, prompt.sender_id))]

    def stream(self, prompt: Prompt) -> Iterator[str]:
        words = self.compose(prompt).split(" ")
        step = self.words_per_delta
        for start in range(0, len(words), step):
            chunk = " ".join(words[start:start + step])
            yield chunk if start + step >= len(words) else chunk + " "


def chat_messages(prompt: Prompt) -> list[dict[str, str]]:
    """The OpenAI chat message list: instructions with the context, recent turns, the new message."""
    system = "You are a helpful assistant."
    if prompt.context:
        lines = "\n".join(f"- {_snippet(item['content'], 80)}" for item in prompt.context if item.get("content"))
        system += f"\nRelevant messages from the user's history:\n{lines}"
    messages = [{"role": "system", "content": system}]
    messages += [{"role": turn["role"], "content": turn["content"]} for turn in prompt.history
                 if turn.get("role") in ("user", "assistant")]
    messages.append({"role": "user", "content": prompt.message})
    return messages


class OpenAIGenerator:
    """Streams `/chat/completions` with `stream: true`; the SSE framing is parsed by sseclient-py."""

    def __init__(self, base_url: str, api_key: str | None, model: str, timeout: float, pool_size: int = 64) -> None:
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.api_key = api_key
        self.model = model
        # Nothing is generated before the headers arrive, so retrying the opening is safe. One pool of
        # kept-alive connections for every reply: a TLS handshake per reply would cost more than the reply's
        # first token; `pool_size` is how many replies may run at once.
        settings = ClientSettings(read_timeout=timeout, stream_read_timeout=timeout, pool_size=pool_size,
                                  retry=RetryPolicy(attempts=1, max_elapsed=2.0))
        # An outside endpoint: honour HTTPS_PROXY and friends from the environment.
        self.transport = Transport("llm", settings, trust_env=True)

    def stream(self, prompt: Prompt) -> Iterator[str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "messages": chat_messages(prompt), "stream": True}
        finished = done = streaming = False
        try:
            with self.transport.open_events(self.url, method="POST", json=body, headers=headers) as events:
                streaming = True
                for event in events:
                    # Read on to the end of the body after [DONE] (the server ends it at once), as the
                    # openai library does: only a connection read to its end goes back to the pool.
                    if done:
                        continue
                    if event.data.strip() == "[DONE]":
                        done = True
                        continue
                    delta, finished = self._delta(event.data)
                    if delta:
                        yield delta
        except ProviderError:
            raise
        except ServiceError as exc:
            if done:
                return  # the reply was whole; only the connection is lost
            raise ProviderError(f"the language model failed: {exc.message}",
                                kind=failure_kind(exc, streaming)) from None
        # Some compatible servers close after the finishing chunk without sending [DONE].
        if not (finished or done):
            raise ProviderError("the language model's stream ended before the reply was finished", kind="cut")

    @staticmethod
    def _delta(data: str) -> tuple[str, bool]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderError("the language model sent a chunk that is not JSON", kind="bad_response") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise ProviderError(f"the language model reported an error: {str(chunk['error'])[:200]}",
                                kind="model_error")
        try:
            choice = chunk["choices"][0]
            return choice.get("delta", {}).get("content") or "", bool(choice.get("finish_reason"))
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError("the language model sent a chunk without choices", kind="bad_response") from None
