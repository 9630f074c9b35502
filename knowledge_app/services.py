"""Writes of knowledge bases: vector stores (this module), files and their ingestion, searches.

A store fixes its embedding provider, model and dimension when it is created (vectors of different models cannot
be compared); its chunking settings apply to files ingested after a change.
"""

from __future__ import annotations

from typing import Any

import openai
from asgiref.sync import async_to_sync
from django.core.files.storage import default_storage
from django.db import transaction

from accounts_app.actor import Actor
from config.db import save_or_field_error
from knowledge_app.exceptions import InvalidInputError
from knowledge_app.models import ChunkUnit, StoreBackend, VectorStore
from knowledge_app.selectors import store_get
from providers_app.embeddings import (
    LOCAL_EMBEDDING_MODEL,
    OPENAI_EMBEDDING_DIMENSIONS,
    OPENAI_EMBEDDING_MODEL,
    LocalEmbedder,
    embedder_for,
)
from providers_app.failures import describe_failure
from providers_app.models import Provider, ProviderType

# Chunk sizes a store accepts, per unit; the bundled embedding model reads at most 256 tokens of a chunk.
CHUNK_LIMITS = {ChunkUnit.CHARACTERS: (100, 20_000), ChunkUnit.TOKENS: (20, 8_000)}
LOCAL_CHUNK_LIMITS = {ChunkUnit.CHARACTERS: 1_200, ChunkUnit.TOKENS: 256}
EDITABLE = ("name", "description", "config", "chunk_size", "chunk_overlap", "chunk_unit", "is_public")


def _embedding(
    actor: Actor, provider_id: int | None, model: str, fields: dict[str, str]
) -> tuple[Provider | None, str, int]:
    """Return the store's embedding provider (None: the bundled model), model and dimension.

    A provider's model of unknown size is asked to embed one word to learn its dimension.
    """
    provider = None
    if provider_id is not None:
        provider = Provider.objects.filter(workspace=actor.workspace, pk=provider_id).first()
        if provider is None:
            fields["embedding_provider_id"] = "No provider with this id in this workspace."
            return None, model, 0
    if provider is None or provider.type == ProviderType.LOCAL:
        if model and model != LOCAL_EMBEDDING_MODEL:
            fields["embedding_model"] = f"The bundled embedding model is {LOCAL_EMBEDDING_MODEL!r}; leave it empty."
        return None, LOCAL_EMBEDDING_MODEL, LocalEmbedder.dimensions
    model = model or OPENAI_EMBEDDING_MODEL
    if model == OPENAI_EMBEDDING_MODEL:
        return provider, model, OPENAI_EMBEDDING_DIMENSIONS
    try:
        result = async_to_sync(embedder_for(provider=provider, model=model).embed)(["dimension"])
    except openai.OpenAIError as exc:
        fields["embedding_model"] = f"It could not be used: {describe_failure(exc, provider).message}"
        return provider, model, 0
    if not result.vectors or not result.dimensions:
        fields["embedding_model"] = "The provider answered without a vector."
    elif result.dimensions > 16_000:
        fields["embedding_model"] = f"Its vectors have {result.dimensions} dimensions; at most 16,000 are stored."
    return provider, model, result.dimensions


def check_store(store: VectorStore, fields: dict[str, str]) -> None:
    """Put in ``fields`` what is wrong with the store's name, description, config and chunking."""
    store.name = (store.name or "").strip()
    if not store.name:
        fields["name"] = "Give the store a name."
    elif len(store.name) > 100:
        fields["name"] = "At most 100 characters."
    elif VectorStore.objects.filter(workspace=store.workspace, name=store.name).exclude(pk=store.pk).exists():
        fields["name"] = "Another vector store of this workspace has this name."
    if len(store.description or "") > 2000:
        fields["description"] = "At most 2,000 characters."
    if not isinstance(store.config, dict):
        fields["config"] = "Give an object."
    if store.chunk_unit not in ChunkUnit.values:
        fields["chunk_unit"] = "Give characters or tokens."
        return
    low, high = CHUNK_LIMITS[ChunkUnit(store.chunk_unit)]
    if store.embedding_provider_id is None:
        high = LOCAL_CHUNK_LIMITS[ChunkUnit(store.chunk_unit)]
    if not low <= store.chunk_size <= high:
        why = (
            " (the bundled embedding model reads 256 tokens of a chunk)" if store.embedding_provider_id is None else ""
        )
        fields["chunk_size"] = f"Give {low:,} to {high:,} {store.chunk_unit}{why}."
    elif not 0 <= store.chunk_overlap < store.chunk_size // 2 + 1:
        fields["chunk_overlap"] = f"Give 0 to half the chunk size ({store.chunk_size // 2:,})."


def _save(store: VectorStore, fields: dict[str, str]) -> VectorStore:
    if fields:
        raise InvalidInputError("The vector store could not be saved.", fields=fields)
    save_or_field_error(
        store,
        message="The vector store could not be saved.",
        conflict_fields={"name": "Another vector store of this workspace has this name."},
    )
    return store


def store_create(
    *,
    actor: Actor,
    name: str,
    description: str = "",
    provider: str = StoreBackend.PGVECTOR,
    config: dict[str, Any] | None = None,
    embedding_provider_id: int | None = None,
    embedding_model: str = "",
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    chunk_unit: str = ChunkUnit.CHARACTERS,
    is_public: bool = True,
) -> VectorStore:
    """Create a vector store in the actor's workspace (members and above). Returns it.

    Without an embedding provider the bundled local model embeds (offline, 384 dimensions). Raises
    PermissionDeniedError for viewers and InvalidInputError with per-field messages; nothing is saved then.
    """
    actor.require_write()
    fields: dict[str, str] = {}
    if provider != StoreBackend.PGVECTOR:
        fields["provider"] = "Only pgvector (this server's Postgres) is served."
    embedder, model, dimensions = _embedding(actor, embedding_provider_id, embedding_model.strip(), fields)
    store = VectorStore(
        workspace=actor.workspace,
        name=name,
        description=description,
        provider=StoreBackend.PGVECTOR,
        config=config if config is not None else {},
        embedding_provider=embedder,
        embedding_model=model,
        dimensions=dimensions,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        chunk_unit=chunk_unit,
        is_public=is_public,
        created_by=actor.user,
    )
    check_store(store, fields)
    return _save(store, fields)


@transaction.atomic
def store_update(*, actor: Actor, store_id: int, changes: dict[str, Any]) -> VectorStore:
    """Change a store's name, description, config, chunking (for files ingested from now on) or visibility
    (members and above). Returns it. The embedding provider and model cannot change: they made its vectors.

    Raises NotFoundError, PermissionDeniedError and InvalidInputError.
    """
    store = store_get(actor=actor, store_id=store_id)
    actor.require_write()
    fixed = {"embedding_provider_id", "embedding_model", "provider"} & set(changes)
    if fixed:
        problem = "Fixed when the store was created (its vectors were made with it); create a new store."
        raise InvalidInputError("The vector store could not be saved.", fields=dict.fromkeys(sorted(fixed), problem))
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInputError("Unknown fields.", fields=dict.fromkeys(sorted(unknown), "Not a field of a store."))
    for key, value in changes.items():
        setattr(store, key, value)
    fields: dict[str, str] = {}
    check_store(store, fields)
    return _save(store, fields)


def store_delete(*, actor: Actor, store_id: int) -> None:
    """Delete a store with its files, their stored objects, its chunks and its HNSW index (members and above).
    Raises NotFoundError, PermissionDeniedError."""
    from knowledge_app.ingestion import drop_store_index

    store = store_get(actor=actor, store_id=store_id)
    actor.require_write()
    keys = list(store.files.values_list("storage_key", flat=True))
    store.delete()

    def clean_up() -> None:
        for key in keys:
            default_storage.delete(key)
        drop_store_index(store_id)

    transaction.on_commit(clean_up)
