"""Reply generators: the offline `builtin` one, and `openai` against a real OpenAI-compatible streaming
server on a loopback port (close-delimited HTTP/1.0 bodies and HTTP/1.1 chunked bodies)."""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core_app.generators import BuiltinGenerator, OpenAIGenerator, Prompt, ProviderError
from tests.system.support.fake_llm import FakeLLM

CONTEXT = [{"id": "m1", "content": "I planted tomatoes and basil in the garden last spring"},
           {"id": "m2", "content": "My favourite tea is a smoky lapsang souchong"}]
HISTORY = [{"role": "user", "content": "Hello there", "sequence": 1},
           {"role": "assistant", "content": "Hi! How can I help?", "sequence": 2}]


# --- builtin ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "prompt",
    [Prompt("What did I plant in the garden?", CONTEXT, HISTORY), Prompt("Good morning"),
     Prompt("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four "
            "twenty-five twenty-six"),
     Prompt("What did I say?", [], HISTORY), Prompt("And then?", [], HISTORY)],
    ids=["with-context", "no-context", "long-message", "what-did-i-say", "recent-turns"],
)
def test_builtin_streams_its_answer_in_several_deltas_the_same_way_every_time(prompt):
    deltas = list(BuiltinGenerator().stream(prompt))

    assert len(deltas) >= 2
    assert all(deltas)
    assert "".join(deltas) == BuiltinGenerator().compose(prompt)
    assert list(BuiltinGenerator().stream(prompt)) == deltas


def test_builtin_answers_from_the_context():
    reply = "".join(BuiltinGenerator().stream(Prompt("What did I plant?", CONTEXT)))

    assert "tomatoes and basil" in reply
    assert "lapsang souchong" in reply


def test_builtin_without_context_still_answers_the_message():
    reply = "".join(BuiltinGenerator().stream(Prompt("Tell me about the weather")))

    assert "Tell me about the weather" in reply
    assert "nothing earlier" in reply


MINE = "u-me"
SAID_HELLO = [{"role": "user", "content": "Hello", "sender_id": MINE, "sequence": 1},
              {"role": "assistant", "content": "You said: “Hello”. I have nothing earlier on this yet.",
               "sender_id": None, "sequence": 2}]


@pytest.mark.parametrize("question", ["What did I say?", "what did i just write", "What was my last message?",
                                      "Remind me: what have I said"])
def test_builtin_asked_what_i_said_quotes_my_previous_message(question):
    reply = BuiltinGenerator().compose(Prompt(question, [], SAID_HELLO, sender_id=MINE))

    assert "“Hello”" in reply
    assert "nothing earlier" not in reply


def test_builtin_asked_what_i_said_quotes_the_last_two_of_my_turns_not_someone_elses():
    history = [{"role": "user", "content": "I like figs", "sender_id": MINE, "sequence": 1},
               {"role": "user", "content": "Plums are better", "sender_id": "u-other", "sequence": 2},
               {"role": "user", "content": "And pears", "sender_id": MINE, "sequence": 3},
               {"role": "user", "content": "Apricots!", "sender_id": "u-other", "sequence": 4}]

    reply = BuiltinGenerator().compose(Prompt("What did I say?", [], history, sender_id=MINE))

    assert reply == "Just before this you said: “And pears”. Before that: “I like figs”."


def test_builtin_asked_what_i_said_with_nothing_before_says_so():
    reply = BuiltinGenerator().compose(Prompt("What did I say?", [], [], sender_id=MINE))

    assert "not said anything" in reply


def test_builtin_without_context_mentions_the_recent_turns():
    reply = BuiltinGenerator().compose(Prompt("Tell me more", [], SAID_HELLO, sender_id=MINE))

    assert "Tell me more" in reply and "“Hello”" in reply
    assert "nothing earlier" not in reply


def test_builtin_skips_context_items_without_content():
    reply = "".join(BuiltinGenerator().stream(Prompt("Anything?", [{"id": "x", "content": ""}])))

    assert reply == "".join(BuiltinGenerator().stream(Prompt("Anything?")))


# --- an OpenAI-compatible provider on a real socket ---------------------------------------------------

def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test-model", "choices": [choice]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class Reply:
    """Writes one response the way the test asks: close-delimited (HTTP/1.0) or chunked (HTTP/1.1)."""

    def __init__(self, handler: BaseHTTPRequestHandler, framing: str) -> None:
        self.handler = handler
        self.chunked = framing == "chunked"

    def start(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        if self.chunked:
            self.handler.protocol_version = "HTTP/1.1"
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        if self.chunked:
            self.handler.send_header("Transfer-Encoding", "chunked")
        self.handler.send_header("Connection", "close")
        self.handler.end_headers()

    def write(self, data: bytes) -> None:
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def finish(self) -> None:
        if self.chunked:
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()

    def cut(self) -> None:
        """Drop the connection where it stands: no [DONE], and for chunked no terminating chunk."""
        self.handler.wfile.flush()
        self.handler.connection.shutdown(socket.SHUT_RDWR)


Script = Callable[[Reply], None]


class ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the connection closes after each response

    def do_POST(self) -> None:
        provider: Provider = self.server.provider  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        provider.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        provider.script(Reply(self, provider.framing))

    def log_message(self, format: str, *args: object) -> None:
        pass


class Provider:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.framing = "close-delimited"
        self.script: Script = stream_of(["Hel", "lo"])
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), ProviderHandler)
        self.server.daemon_threads = True
        self.server.provider = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def generator(self, api_key: str | None = "sk-test") -> OpenAIGenerator:
        return OpenAIGenerator(self.base_url, api_key, "test-model", timeout=5)


def stream_of(contents: list[str], *, finish: bool = True, done: bool = True) -> Script:
    def script(reply: Reply) -> None:
        reply.start()
        reply.write(chunk())  # a first chunk without content, as OpenAI sends the role first
        for content in contents:
            reply.write(chunk(content))
        if finish:
            reply.write(chunk(finish="stop"))
        if done:
            reply.write(DONE)
        reply.finish()
    return script


@pytest.fixture
def provider() -> Iterator[Provider]:
    provider = Provider()
    provider.thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


def collect(deltas: Iterator[str]) -> tuple[list[str], ProviderError | None]:
    got: list[str] = []
    try:
        for delta in deltas:
            got.append(delta)
    except ProviderError as exc:
        return got, exc
    return got, None


FRAMINGS = ["close-delimited", "chunked"]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_openai_deltas_arrive_in_order_and_join_to_the_reply(provider, framing):
    provider.framing = framing
    provider.script = stream_of(["The ", "quick ", "brown ", "fox", " — ", "naïve ✓"])

    deltas, error = collect(provider.generator().stream(Prompt("Say something")))

    assert error is None
    assert deltas == ["The ", "quick ", "brown ", "fox", " — ", "naïve ✓"]
    assert "".join(deltas) == "The quick brown fox — naïve ✓"


def test_openai_request_is_a_streaming_chat_completion_with_context_and_history(provider):
    prompt = Prompt("What tea do I like?", CONTEXT, HISTORY)

    collect(provider.generator().stream(prompt))

    [sent] = provider.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    body = sent["body"]
    assert body["stream"] is True
    assert body["model"] == "test-model"
    messages = body["messages"]
    assert messages[0]["role"] == "system"
    assert "lapsang souchong" in messages[0]["content"]
    assert "tomatoes and basil" in messages[0]["content"]
    assert messages[1:-1] == [{"role": "user", "content": "Hello there"},
                              {"role": "assistant", "content": "Hi! How can I help?"}]
    assert messages[-1] == {"role": "user", "content": "What tea do I like?"}


def test_openai_without_a_key_sends_no_authorization(provider):
    collect(provider.generator(api_key=None).stream(Prompt("hi")))

    [sent] = provider.requests
    assert "Authorization" not in sent["headers"]
    assert sent["body"]["messages"] == [{"role": "system", "content": "You are a helpful assistant."},
                                        {"role": "user", "content": "hi"}]


def answer_500(reply: Reply) -> None:
    reply.start(500, "application/json")
    reply.write(json.dumps({"error": {"message": "The server had an error", "type": "server_error",
                                      "code": None}}).encode())
    reply.finish()


def answer_401(reply: Reply) -> None:
    reply.start(401, "application/json")
    reply.write(json.dumps({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                      "code": "invalid_api_key"}}).encode())
    reply.finish()


def cut_after_two_chunks(reply: Reply) -> None:
    reply.start()
    reply.write(chunk("Hel"))
    reply.write(chunk("lo"))
    reply.cut()


def chunk_not_json(reply: Reply) -> None:
    reply.start()
    reply.write(chunk("Hel"))
    reply.write(b"data: {this is not json\n\n")
    reply.write(chunk("lo", finish="stop") + DONE)
    reply.finish()


def in_band_error(reply: Reply) -> None:
    reply.start()
    reply.write(chunk("Hel"))
    reply.write(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
    reply.finish()


def chunk_without_choices(reply: Reply) -> None:
    reply.start()
    reply.write(b'data: {"id": "x", "object": "chat.completion.chunk"}\n\n')
    reply.finish()


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize(
    ("script", "delivered"),
    [
        (answer_500, []),
        (answer_401, []),
        (cut_after_two_chunks, ["Hel", "lo"]),
        (stream_of(["Hel", "lo"], finish=False, done=False), ["Hel", "lo"]),
        (chunk_not_json, ["Hel"]),
        (in_band_error, ["Hel"]),
        (chunk_without_choices, []),
    ],
    ids=["http-500", "http-401", "cut-mid-stream", "ends-unfinished", "chunk-not-json", "in-band-error",
         "chunk-without-choices"],
)
def test_openai_failures_raise_provider_error_after_what_was_delivered(provider, framing, script, delivered):
    provider.framing = framing
    provider.script = script

    deltas, error = collect(provider.generator().stream(Prompt("hi")))

    assert deltas == delivered
    assert isinstance(error, ProviderError)
    assert error.code == "provider_error"


@pytest.mark.parametrize("framing", FRAMINGS)
def test_openai_stream_that_ends_after_the_finishing_chunk_without_done_is_complete(provider, framing):
    provider.framing = framing
    provider.script = stream_of(["All ", "done"], finish=True, done=False)

    assert collect(provider.generator().stream(Prompt("hi"))) == (["All ", "done"], None)


def test_openai_replies_reuse_one_kept_alive_connection():
    """Issue 11 item 21: a TCP (and, against a real endpoint, TLS) handshake per reply is gone."""
    with FakeLLM(["Hel", "lo"]) as llm:
        generator = OpenAIGenerator(llm.base_url, "sk-test", "test-model", timeout=5)
        replies = ["".join(generator.stream(Prompt(f"question {n}"))) for n in range(5)]

    assert replies == ["Hello"] * 5
    assert len(llm.requests) == 5
    assert llm.connections == 1


def test_openai_after_a_cut_connection_the_next_reply_opens_a_fresh_one():
    with FakeLLM(["Hel", "lo"]) as llm:
        generator = OpenAIGenerator(llm.base_url, "sk-test", "test-model", timeout=5)
        first = collect(generator.stream(Prompt("one")))
        llm.fail_after = 1
        cut = collect(generator.stream(Prompt("two")))
        llm.fail_after = None
        third = collect(generator.stream(Prompt("three")))

    assert first == (["Hel", "lo"], None) and third == (["Hel", "lo"], None)
    assert cut[0] == ["Hel"] and isinstance(cut[1], ProviderError)
    assert llm.connections == 2


def test_openai_provider_not_listening_is_a_provider_error():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    generator = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "sk-test", "test-model", timeout=2)

    deltas, error = collect(generator.stream(Prompt("hi")))

    assert deltas == []
    assert isinstance(error, ProviderError)


@pytest.mark.parametrize(
    "framing",
    ["close-delimited", "chunked"],
)
def test_openai_first_delta_arrives_before_the_provider_sends_the_rest(provider, framing):
    release = threading.Event()

    def slow_model(reply: Reply) -> None:
        reply.start()
        reply.write(chunk("Hel"))
        release.wait(10)
        reply.write(chunk("lo", finish="stop") + DONE)
        reply.finish()

    provider.framing = framing
    provider.script = slow_model
    deltas = provider.generator().stream(Prompt("hi"))
    arrived: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: arrived.put(next(deltas)), daemon=True)
    reader.start()
    try:
        first = arrived.get(timeout=2)
    except queue.Empty:
        first = None
    finally:
        release.set()
        reader.join(timeout=10)
    rest = list(deltas)

    assert first == "Hel"
    assert rest == ["lo"]
