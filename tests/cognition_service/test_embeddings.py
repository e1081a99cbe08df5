"""Embedders: an OpenAI-compatible endpoint on a `responses` mock, the built-in MiniLM model for real (loaded
once per module), and open_embedder picking one from the settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import responses
from responses import matchers

from cognition_service.config import load_config
from cognition_service.embeddings import MiniLM, OpenAICompatible, open_embedder
from common.errors import ServiceUnavailable

ENDPOINT = "http://embed.test/v1"
EMBEDDINGS_URL = f"{ENDPOINT}/embeddings"


@pytest.fixture
def endpoint():
    # Unregistered URLs raise ConnectionError; tests count the calls they expect themselves.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def answer(*vectors: list[float]) -> dict:
    """An OpenAI-style embeddings answer, one item per vector, in order."""
    return {"object": "list", "model": "m",
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)]}


def vector_of(text: str) -> list[float]:
    """A distinct, exactly representable direction per test text, so rows can be traced back to texts."""
    return [float(ord(text[0]) - ord("a") + 1), 1.0, 0.0]


def echo_vectors(request):
    """A callback endpoint answering each input with `vector_of` it."""
    texts = json.loads(request.body)["input"]
    return 200, {}, json.dumps(answer(*(vector_of(text) for text in texts)))


def sent_bodies(mock: responses.RequestsMock) -> list[dict]:
    return [json.loads(call.request.body) for call in mock.calls]


# OpenAICompatible


def test_openai_posts_model_and_input_to_the_embeddings_path(endpoint):
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0, 0.0], [0.0, 1.0]),
                  match=[matchers.json_params_matcher({"model": "text-embedding-3-small", "input": ["a", "b"]})])
    embedder = OpenAICompatible(ENDPOINT + "/", "text-embedding-3-small")  # a trailing slash is dropped

    rows = embedder.encode(["a", "b"])

    assert len(endpoint.calls) == 1 and endpoint.calls[0].request.url == EMBEDDINGS_URL
    assert rows.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert embedder.name == "openai:text-embedding-3-small"


def test_openai_sends_a_bearer_token_only_when_a_key_is_set(endpoint):
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0]))
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0]))
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0]))

    OpenAICompatible(ENDPOINT, "m", "sk-test").encode(["a"])
    OpenAICompatible(ENDPOINT, "m").encode(["a"])
    OpenAICompatible(ENDPOINT, "m", "").encode(["a"])

    with_key, without_key, empty_key = (call.request.headers for call in endpoint.calls)
    assert with_key["Authorization"] == "Bearer sk-test"
    assert "Authorization" not in without_key
    assert "Authorization" not in empty_key


def test_openai_sends_texts_in_batches_and_keeps_their_order(endpoint):
    endpoint.add_callback(responses.POST, EMBEDDINGS_URL, callback=echo_vectors)
    texts = ["a", "b", "c", "d", "e"]

    rows = OpenAICompatible(ENDPOINT, "m", batch=2).encode(texts)

    assert [body["input"] for body in sent_bodies(endpoint)] == [["a", "b"], ["c", "d"], ["e"]]
    assert all(body["model"] == "m" for body in sent_bodies(endpoint))
    expected = np.array([vector_of(text) for text in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(rows, expected, rtol=1e-6)


def test_openai_puts_rows_in_the_order_of_their_index_not_of_the_answer(endpoint):
    shuffled = [{"index": 2, "embedding": [0.0, 0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0, 0.0]},
                {"index": 1, "embedding": [0.0, 1.0, 0.0]}]
    endpoint.post(EMBEDDINGS_URL, json={"data": shuffled})

    rows = OpenAICompatible(ENDPOINT, "m").encode(["first", "second", "third"])

    assert rows.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_openai_rows_are_unit_length_float32(endpoint):
    endpoint.post(EMBEDDINGS_URL, json=answer([3.0, 4.0], [0.0, -2.0], [1e-3, 1e-3]))

    rows = OpenAICompatible(ENDPOINT, "m").encode(["a", "b", "c"])

    assert rows.dtype == np.float32 and rows.shape == (3, 2)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(rows[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(rows[1], [0.0, -1.0])


@pytest.mark.parametrize(
    ("response", "words"),
    [
        ({"json": {"error": {"message": "boom"}}, "status": 500}, "500"),
        ({"json": {"error": {"message": "bad key"}}, "status": 401}, "401"),
        ({"body": requests.ConnectionError("connection refused")}, "connection refused"),
        ({"body": requests.ReadTimeout("read timed out")}, "read timed out"),
        ({"body": "<html>not json</html>", "content_type": "text/html"}, "failed"),
        ({"json": {"object": "list"}}, "failed"),  # no "data"
        ({"json": {"data": [{"index": 0}]}}, "failed"),  # an item without "embedding"
        ({"json": {"data": [{"index": 0, "embedding": ["one", "two"]}]}}, "failed"),
        ({"json": [1, 2, 3]}, "failed"),  # not an object at all
    ],
    ids=["http-500", "http-401", "connection-error", "read-timeout", "malformed-json", "no-data",
         "no-embedding", "not-numbers", "not-an-object"],
)
def test_openai_failures_raise_service_unavailable_with_a_clear_message(endpoint, response, words):
    endpoint.post(EMBEDDINGS_URL, **response)

    with pytest.raises(ServiceUnavailable) as caught:
        OpenAICompatible(ENDPOINT, "m", "sk-secret").encode(["a"])

    message = caught.value.message
    assert message.startswith("the embeddings endpoint failed")
    assert words in message
    assert "sk-secret" not in message and "\n" not in message


@pytest.mark.parametrize(
    "body",
    [answer([1.0, 0.0]), answer([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]), {"data": []},
     answer([1.0, 0.0], [0.0, 1.0, 0.0])],
    ids=["too-few", "too-many", "none", "mixed-sizes"],
)
def test_openai_wrong_number_or_size_of_vectors_is_service_unavailable(endpoint, body):
    endpoint.post(EMBEDDINGS_URL, json=body)

    with pytest.raises(ServiceUnavailable, match="wrong number or size of vectors"):
        OpenAICompatible(ENDPOINT, "m").encode(["a", "b"])


def test_openai_a_failing_later_batch_fails_the_whole_call(endpoint):
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0, 0.0], [0.0, 1.0]))
    endpoint.post(EMBEDDINGS_URL, json={"error": "overloaded"}, status=503)

    with pytest.raises(ServiceUnavailable, match="503"):
        OpenAICompatible(ENDPOINT, "m", batch=2).encode(["a", "b", "c"])
    assert len(endpoint.calls) == 2


@pytest.mark.parametrize("data", ["oops", [None], [[1.0, 0.0]]], ids=["a-string", "null-items", "bare-vectors"])
def test_openai_data_that_is_not_a_list_of_objects_is_service_unavailable(endpoint, data):
    endpoint.post(EMBEDDINGS_URL, json={"data": data})

    with pytest.raises(ServiceUnavailable):
        OpenAICompatible(ENDPOINT, "m").encode(["a"])


def test_openai_mixed_sizes_across_batches_are_service_unavailable(endpoint):
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0, 0.0]))
    endpoint.post(EMBEDDINGS_URL, json=answer([1.0, 0.0, 0.0]))

    with pytest.raises(ServiceUnavailable, match="wrong number or size of vectors"):
        OpenAICompatible(ENDPOINT, "m", batch=1).encode(["a", "b"])


def test_openai_no_texts_is_no_rows_and_no_request(endpoint):
    rows = OpenAICompatible(ENDPOINT, "m").encode([])

    assert len(rows) == 0 and len(endpoint.calls) == 0


# MiniLM, the real model


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    model = MiniLM()
    model.load()
    return model


def test_minilm_rows_are_unit_length_float32_of_384_dimensions(minilm):
    rows = minilm.encode(["The cat sat on the mat.", "Quarterly tax filings are due in April.", "ok"])

    assert rows.shape == (3, 384) and rows.dtype == np.float32
    assert MiniLM.dims == 384 and minilm.name == "all-MiniLM-L6-v2-int8"
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)


def test_minilm_is_deterministic_for_the_same_text_alone_or_in_any_batch(minilm):
    text = "Remember that the launch code for project falcon is amber-7."
    alone = minilm.encode([text])[0]

    again = minilm.encode([text])[0]
    with_others = minilm.encode(["short", text, " ".join(["padding"] * 200)])[1]

    np.testing.assert_array_equal(alone, again)
    np.testing.assert_allclose(alone, with_others, atol=1e-5)


def test_minilm_rows_do_not_depend_on_the_order_of_the_texts(minilm):
    a, b = "The cat sat on the mat.", "A completely different and noticeably longer sentence about trains."
    same_length = "The dog sat on the mat."

    np.testing.assert_allclose(minilm.encode([a, b]), minilm.encode([b, a])[::-1], atol=1e-5)
    np.testing.assert_allclose(minilm.encode([a, same_length]), minilm.encode([same_length, a])[::-1], atol=1e-5)


@pytest.mark.parametrize(
    ("text", "paraphrase", "unrelated"),
    [
        ("How do I reset my password?", "I forgot my password and need to change it.",
         "The train to Lyon leaves at noon."),
        ("The cat is sleeping on the sofa.", "A kitten naps on the couch.", "Interest rates rose by half a percent."),
    ],
)
def test_minilm_a_paraphrase_is_closer_than_an_unrelated_sentence(minilm, text, paraphrase, unrelated):
    query, near, far = minilm.encode([text, paraphrase, unrelated])

    assert float(query @ near) > float(query @ far) + 0.3


def test_minilm_encodes_an_empty_string(minilm):
    rows = minilm.encode([""])

    assert rows.shape == (1, 384) and np.all(np.isfinite(rows))
    assert np.linalg.norm(rows[0]) == pytest.approx(1.0, abs=1e-5)


def test_minilm_truncates_a_very_long_text_instead_of_failing(minilm):
    words = ["apple", "river", "music", "stone", "green"]
    long_text = " ".join(words[i % len(words)] for i in range(10_000))
    prefix = " ".join(long_text.split()[:400])  # already past the 256-token limit

    long_row, prefix_row, other_tail = minilm.encode([long_text, prefix, prefix + " zebra" * 9_600])

    assert np.linalg.norm(long_row) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(long_row, prefix_row, atol=1e-5)  # only the first 256 tokens count
    np.testing.assert_allclose(long_row, other_tail, atol=1e-5)


@pytest.mark.parametrize(("attribute", "file"), [("MODEL_SHA256", "model.onnx"),
                                                 ("TOKENIZER_SHA256", "tokenizer.json")])
def test_minilm_refuses_a_file_whose_sha256_does_not_match(monkeypatch, attribute, file):
    fresh = MiniLM()
    monkeypatch.setattr(fresh, attribute, "0" * 64)

    with pytest.raises(RuntimeError, match=rf"{file}.* is not the file this version was built for"):
        fresh.load()
    with pytest.raises(RuntimeError, match=file):  # nothing half-loaded: encode checks again and refuses
        fresh.encode(["hello"])
    assert fresh._session is None


# open_embedder


def test_open_embedder_off_is_none():
    assert open_embedder(load_config({"EMBEDDINGS": "off"})) is None


def test_open_embedder_openai_uses_the_settings():
    settings = load_config({"EMBEDDINGS": "openai", "EMBEDDINGS_URL": "https://api.example.com/v1/",
                            "EMBEDDINGS_MODEL": "text-embedding-3-small", "EMBEDDINGS_API_KEY": "sk-test",
                            "EMBEDDING_BATCH": "16"})

    embedder = open_embedder(settings)

    assert isinstance(embedder, OpenAICompatible)
    assert embedder.name == "openai:text-embedding-3-small"
    assert embedder.url == "https://api.example.com/v1/embeddings"
    assert embedder.batch == 16
    assert embedder.session.headers["Authorization"] == "Bearer sk-test"


def test_open_embedder_builtin_is_minilm_not_yet_loaded():
    embedder = open_embedder(load_config({"EMBEDDING_THREADS": "2", "EMBEDDING_BATCH": "8"}))

    assert isinstance(embedder, MiniLM)
    assert embedder.name == "all-MiniLM-L6-v2-int8"
    assert (embedder.threads, embedder.batch) == (2, 8)
    assert embedder._session is None  # loads on first use, not at start
