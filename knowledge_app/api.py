"""Knowledge API: vector stores. No `from __future__ import annotations`: ninja reads annotations."""

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from config.auth import request_actor
from knowledge_app import selectors, services
from knowledge_app.models import VectorStore
from knowledge_app.schemas import VectorStoreCreate, VectorStoreOut, VectorStorePatch

router = Router(tags=["knowledge"])


def store_out(store: VectorStore) -> dict[str, Any]:
    """Return the public view of a store, with its counts (as ``selectors.store_list`` annotates them)."""
    pending = getattr(store, "pending_total", 0) or 0
    return {
        **{name: getattr(store, name) for name in VectorStoreOut.model_fields if hasattr(store, name)},
        "status": "processing" if pending else "ready",
        "file_count": getattr(store, "file_total", 0) or 0,
        "chunk_count": getattr(store, "chunk_total", 0) or 0,
    }


@router.get("", response=list[VectorStoreOut], summary="The vector stores the caller may see")
def store_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [store_out(s) for s in selectors.store_list(actor=request_actor(request))]


@router.post("", response={201: VectorStoreOut}, summary="Create a vector store")
def store_create(request: HttpRequest, payload: VectorStoreCreate) -> Status:
    actor = request_actor(request)
    store = services.store_create(actor=actor, **payload.service_values())
    return Status(201, store_out(selectors.store_get(actor=actor, store_id=store.pk)))


@router.get("/{vector_store_id}", response=VectorStoreOut)
def store_get(request: HttpRequest, vector_store_id: int) -> dict[str, Any]:
    return store_out(selectors.store_get(actor=request_actor(request), store_id=vector_store_id))


@router.patch("/{vector_store_id}", response=VectorStoreOut, summary="Change a store (not its embedding model)")
def store_update(request: HttpRequest, vector_store_id: int, payload: VectorStorePatch) -> dict[str, Any]:
    actor = request_actor(request)
    services.store_update(actor=actor, store_id=vector_store_id, changes=payload.service_changes())
    return store_out(selectors.store_get(actor=actor, store_id=vector_store_id))


@router.delete("/{vector_store_id}", response={204: None}, summary="Delete a store with its files and chunks")
def store_delete(request: HttpRequest, vector_store_id: int) -> Status:
    services.store_delete(actor=request_actor(request), store_id=vector_store_id)
    return Status(204, None)
