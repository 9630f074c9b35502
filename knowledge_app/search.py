"""Searching a store: by meaning (the store's HNSW index), by words (Postgres full text), or both fused by
reciprocal rank (``hybrid``, the default). Every search is logged.

The store's id and dimension are written into the statement as integers, not bound as parameters: its HNSW index
is a partial index (``WHERE store_id = N``) on ``embedding::vector(D)``, and a plan made for any store would not
use it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, transaction

from accounts_app.actor import Actor
from knowledge_app.exceptions import InvalidInputError
from knowledge_app.models import Chunk, File, SearchLog, VectorStore
from knowledge_app.selectors import store_get
from providers_app.embeddings import LOCAL_EMBEDDING_MODEL, LocalEmbedder, embedder_for

MODES = ("vector", "keyword", "hybrid")
RRF_K = 60  # the usual constant of reciprocal rank fusion
MAX_RESULTS = 50
_CHUNKS = Chunk._meta.db_table
_FILES = File._meta.db_table


@dataclass
class Hit:
    """One chunk found: its text, where it came from, and its scores (``score`` is the mode's own)."""

    chunk_id: int
    file_id: int
    file_name: str
    position: int
    text: str
    metadata: dict[str, Any]
    score: float = 0.0
    scores: dict[str, float | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "metadata": self.metadata,
            "score": self.score,
            "scores": self.scores,
            "file_id": self.file_id,
            "filename": self.file_name,
            "position": self.position,
        }


_query_cache: OrderedDict[tuple[int | None, str, str], str] = OrderedDict()
_query_cache_lock = threading.Lock()


def _query_vector(store: VectorStore, text: str) -> str:
    """Return the query's embedding by the store's model, as pgvector's text input.

    The last SEARCH_QUERY_CACHE_SIZE queries' embeddings are kept per process (a store's embedding model never
    changes): a repeated search, or an agent asking again, skips the model, which costs more than the rest of the
    search (bench/search.py).
    """
    if store.embedding_provider_id is None and store.embedding_model != LOCAL_EMBEDDING_MODEL:
        raise InvalidInputError(
            "The store's embedding provider was deleted; it cannot be searched by meaning.",
            fields={"mode": 'Use "keyword", or create a new store.'},
        )
    key = (store.embedding_provider_id, store.embedding_model, text)
    with _query_cache_lock:
        cached = _query_cache.get(key)
        if cached is not None:
            _query_cache.move_to_end(key)
            return cached
    if store.embedding_provider_id is None:
        vector = LocalEmbedder(threads=settings.LOCAL_QUERY_EMBEDDING_THREADS).embed_sync([text]).vectors[0]
    else:
        embedder = embedder_for(provider=store.embedding_provider, model=store.embedding_model)
        vector = async_to_sync(embedder.embed)([text]).vectors[0]
    literal = _vector_text(vector)
    with _query_cache_lock:
        _query_cache[key] = literal
        while len(_query_cache) > settings.SEARCH_QUERY_CACHE_SIZE:
            _query_cache.popitem(last=False)
    return literal


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _settle(where: str, limit: int, vector: bool) -> None:
    """Set the transaction's own settings in one statement: its commit does not wait for the disk (a crash may
    lose the last search log rows of its final moment, never a chunk), and a vector search gets enough
    candidates for ``limit`` (with a filter, pgvector 0.8 keeps scanning the graph until enough match)."""
    assignments = ["set_config('synchronous_commit', 'off', true)"]
    params: list[Any] = []
    if vector:
        candidates = max(100, 4 * limit)  # recall@10 0.96 at 100,000 chunks (bench/search.py)
        if where and _has_iterative_scans():
            assignments.append("set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            candidates *= 2  # a filter keeps few of each pass's candidates
        elif where:
            candidates = 1000  # older pgvector filters one pass of candidates: look at many more (its limit)
        assignments.append("set_config('hnsw.ef_search', %s, true)")
        params.append(str(candidates))
    _rows("SELECT " + ", ".join(assignments), params)


def _vector_hits(store: VectorStore, query: str, limit: int, where: str, params: list[Any]) -> list[Hit]:
    dimensions, store_id = int(store.dimensions), int(store.pk)
    distance = f"c.embedding::vector({dimensions}) <=> %s::vector({dimensions})"
    rows = _rows(
        f"SELECT c.id, c.file_id, f.original_name, c.position, c.text, c.metadata, 1 - ({distance}) "  # noqa: S608
        f"FROM {_CHUNKS} c JOIN {_FILES} f ON f.id = c.file_id "
        f"WHERE c.store_id = {store_id}{where} ORDER BY {distance} LIMIT %s",
        [query, *params, query, limit],
    )
    return [_hit(row, "vector") for row in rows]


def _keyword_hits(store: VectorStore, text: str, limit: int, where: str, params: list[Any]) -> list[Hit]:
    rows = _rows(
        f"SELECT c.id, c.file_id, f.original_name, c.position, c.text, c.metadata, "  # noqa: S608
        f"ts_rank_cd(c.search_vector, q) FROM {_CHUNKS} c JOIN {_FILES} f ON f.id = c.file_id, "
        f"websearch_to_tsquery('simple', %s) q "
        f"WHERE c.store_id = {int(store.pk)} AND c.search_vector @@ q{where} ORDER BY 7 DESC, c.id LIMIT %s",
        [text, *params, limit],
    )
    return [_hit(row, "keyword") for row in rows]


def _hit(row: tuple[Any, ...], mode: str) -> Hit:
    """Return a hit from a row (chunk id, file id, file name, position, text, metadata, score)."""
    chunk_id, file_id, file_name, position, text, metadata, score = row
    if isinstance(metadata, str):  # Django's connection hands jsonb over as text (JSONField decodes it)
        metadata = json.loads(metadata)
    return Hit(chunk_id, file_id, file_name, position, text, metadata, float(score), {mode: float(score)})


_iterative: bool | None = None


def _has_iterative_scans() -> bool:
    global _iterative
    if _iterative is None:
        version = _rows("SELECT extversion FROM pg_extension WHERE extname = 'vector'", [])
        parts = tuple(int(p) for p in version[0][0].split(".")[:2]) if version else (0, 0)
        _iterative = parts >= (0, 8)
    return _iterative


def _fuse(vector: list[Hit], keyword: list[Hit], limit: int) -> list[Hit]:
    """Return the hits of both lists ranked by reciprocal rank fusion, with each list's score kept."""
    fused: dict[int, Hit] = {}
    for hits, name in ((vector, "vector"), (keyword, "keyword")):
        for rank, hit in enumerate(hits, 1):
            kept = fused.setdefault(hit.chunk_id, Hit(**{**vars(hit), "score": 0.0, "scores": {}}))
            kept.scores[name] = hit.scores[name]
            kept.score += 1 / (RRF_K + rank)
    for hit in fused.values():
        hit.scores.setdefault("vector", None)
        hit.scores.setdefault("keyword", None)
        hit.scores["rrf"] = hit.score
    return sorted(fused.values(), key=lambda h: (-h.score, h.chunk_id))[:limit]


def search(*, actor: Actor, store_id: int, **options: Any) -> list[Hit]:
    """Return the chunks of a store the actor may see that best answer ``options["text"]`` (``search_store``'s
    options), logged as the actor's search. Raises NotFoundError and InvalidInputError."""
    return search_store(store_get(actor=actor, store_id=store_id, counts=False), user=actor.user, **options)


def search_store(
    store: VectorStore,
    *,
    user: Any,
    text: str,
    max_results: int = 5,
    mode: str = "hybrid",
    filter: dict[str, Any] | None = None,
    similarity_threshold: float | None = None,
    embedding_model: str | None = None,
    run_id: int | None = None,
) -> list[Hit]:
    """Return the store's chunks that best answer ``text``, best first, and log the search (``user``: who
    searched; None for an agent, whose search is logged with its ``run_id``).

    ``filter``: metadata the chunks must contain (``{"file_name": "guide.md"}``, ``{"page": 2}``).
    ``similarity_threshold``: the least cosine similarity a chunk needs (vector and hybrid modes). Raises
    InvalidInputError.
    """
    fields: dict[str, str] = {}
    text = (text or "").strip()
    if not text:
        fields["text"] = "Give the text to search for."
    elif len(text) > 10_000:
        fields["text"] = "At most 10,000 characters."
    if mode not in MODES:
        fields["mode"] = "Give vector, keyword or hybrid."
    if not 1 <= max_results <= MAX_RESULTS:
        fields["max_results"] = f"Give 1 to {MAX_RESULTS}."
    if embedding_model and embedding_model != store.embedding_model:
        fields["embedding_model"] = f"This store embeds with {store.embedding_model!r}; leave it out or give that."
    if filter is not None and not isinstance(filter, dict):
        fields["filter"] = "Give an object of metadata the chunks must hold."
    if fields:
        raise InvalidInputError("The search could not be run.", fields=fields)
    started = time.monotonic()
    where, params = (" AND c.metadata @> %s::jsonb", [_json(filter)]) if filter else ("", [])
    pool = max_results if mode != "hybrid" else max(4 * max_results, 20)
    # Embedded before the transaction opens: a provider's embedding is a network call.
    query = _query_vector(store, text) if mode in ("vector", "hybrid") else None
    vector_hits: list[Hit] = []
    keyword_hits: list[Hit] = []
    with transaction.atomic():  # the search and its log: one commit (about 1 ms a search; bench/search.py)
        _settle(where, pool, vector=query is not None)
        if query is not None:
            vector_hits = _vector_hits(store, query, pool, where, params)
            if similarity_threshold is not None:
                vector_hits = [h for h in vector_hits if h.score >= similarity_threshold]
        if mode in ("keyword", "hybrid"):
            keyword_hits = _keyword_hits(store, text, pool, where, params)
        if mode == "vector":
            hits = vector_hits
        elif mode == "keyword":
            hits = keyword_hits
        else:
            allowed = {h.chunk_id for h in vector_hits}
            if similarity_threshold is not None:  # a chunk below the threshold is left out whatever its words
                keyword_hits = [h for h in keyword_hits if h.chunk_id in allowed]
            hits = _fuse(vector_hits, keyword_hits, max_results)
        SearchLog.objects.create(
            workspace_id=store.workspace_id,  # ids: the store's workspace is not loaded, and need not be
            store=store,
            user=user,
            run_id=run_id,
            query=text,
            mode=mode,
            max_results=max_results,
            filter=filter or {},
            result_count=len(hits),
            duration_ms=(time.monotonic() - started) * 1000,
        )
    return hits


def _json(value: Any) -> str:
    return json.dumps(value)


def _vector_text(vector: list[float]) -> str:
    """Return a vector as pgvector's text input ("[0.1,0.2]"), cast in the statement to the store's dimension."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"
