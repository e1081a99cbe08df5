"""Reply generators: `builtin` (offline, deterministic) and `openai` (any OpenAI-compatible endpoint).

A generator turns a `Prompt` into an iterator of text deltas; it never blocks until the reply is whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from common.client import ClientSettings, RetryPolicy
from common.client.transport import Transport
from common.errors import ServiceError


class ProviderError(ServiceError):
    status, code, default_message = 502, "provider_error", "the reply generator failed"


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
        finished = done = False
        try:
            with self.transport.open_events(self.url, method="POST", json=body, headers=headers) as events:
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
        except ServiceError as exc:
            if done:
                return  # the reply was whole; only the connection is lost
            raise ProviderError(f"the language model failed: {exc.message}") from None
        # Some compatible servers close after the finishing chunk without sending [DONE].
        if not (finished or done):
            raise ProviderError("the language model's stream ended before the reply was finished")

    @staticmethod
    def _delta(data: str) -> tuple[str, bool]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderError("the language model sent a chunk that is not JSON") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise ProviderError(f"the language model reported an error: {str(chunk['error'])[:200]}")
        try:
            choice = chunk["choices"][0]
            return choice.get("delta", {}).get("content") or "", bool(choice.get("finish_reason"))
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError("the language model sent a chunk without choices") from None
