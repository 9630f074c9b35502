"""Knowledge API: vector stores. No `from __future__ import annotations`: ninja reads annotations."""

from typing import Any

from django.http import HttpRequest
from ninja import File as FileParam
from ninja import Form, Router, Status, UploadedFile

from config.auth import request_actor
from knowledge_app import ingestion, search, selectors, services
from knowledge_app.models import File, VectorStore
from knowledge_app.schemas import (
    FileOut,
    VectorSearchOut,
    VectorSearchQuery,
    VectorStoreCreate,
    VectorStoreOut,
    VectorStorePatch,
)

router = Router(tags=["knowledge"])
files_router = Router(tags=["knowledge"])


def file_out(found: File) -> dict[str, Any]:
    return {
        "id": found.pk,
        "vector_store_id": found.store_id,
        "filename": found.original_name,
        "detected_type": found.detected_type,
        "size": found.size,
        "sha256": found.sha256,
        "status": found.status,
        "message": found.message,
        "progress": found.progress,
        "chunk_count": found.chunk_count,
        "created_at": found.created_at,
        "processed_at": found.processed_at,
    }


@files_router.post(
    "",
    response={201: FileOut, 200: FileOut},
    summary="Upload a file into a vector store; answers at once (queued), a worker ingests it",
    description="201: queued for ingestion. 200: the same content is already in the store (that file).",
    openapi_extra={
        "responses": {
            "404": {
                "description": "No such vector store, or another workspace's.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        }
    },
)
def file_upload(
    request: HttpRequest,
    file: UploadedFile = FileParam(...),  # noqa: B008 - ninja's way of declaring a multipart file
    vector_store_id: int = Form(...),
    chunk_size: int | None = Form(None, ge=1, le=100_000),
    chunk_overlap: int | None = Form(None, ge=0, le=100_000),
    embedding_model: str | None = Form(None, max_length=200),
) -> Status:
    upload, created = ingestion.file_upload(
        actor=request_actor(request),
        store_id=vector_store_id,
        name=file.name or "upload",
        content=file,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        embedding_model=embedding_model,
    )
    return Status(201 if created else 200, file_out(upload))


@files_router.get("/{file_id}", response=FileOut, summary="A file, with its ingestion status and progress")
def file_get(request: HttpRequest, file_id: int) -> dict[str, Any]:
    return file_out(ingestion.file_get(actor=request_actor(request), file_id=file_id))


@files_router.post(
    "/{file_id}/reingest",
    response={202: FileOut},
    summary="Process a processed or failed file again (its chunks are replaced when the new ones are ready)",
)
def file_reingest(request: HttpRequest, file_id: int) -> Status:
    return Status(202, file_out(ingestion.file_reingest(actor=request_actor(request), file_id=file_id)))


@files_router.delete("/{file_id}", response={204: None}, summary="Delete a file, its chunks and its stored object")
def file_delete(request: HttpRequest, file_id: int) -> Status:
    ingestion.file_delete(actor=request_actor(request), file_id=file_id)
    return Status(204, None)


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


@router.get("/{vector_store_id}/files", response=list[FileOut], summary="A store's files, newest first")
def store_files(request: HttpRequest, vector_store_id: int) -> list[dict[str, Any]]:
    store = selectors.store_get(actor=request_actor(request), store_id=vector_store_id)
    return [file_out(f) for f in store.files.all()[:1000]]


@router.post(
    "/{vector_store_id}/search",
    response=VectorSearchOut,
    summary="Search a store by meaning, by words, or both (hybrid: reciprocal rank fusion)",
)
def store_search(request: HttpRequest, vector_store_id: int, payload: VectorSearchQuery) -> dict[str, Any]:
    hits = search.search(actor=request_actor(request), store_id=vector_store_id, **payload.search_options())
    return search_answer(payload, hits)


def search_answer(payload: VectorSearchQuery, hits: list[search.Hit]) -> dict[str, Any]:
    """Return a search's answer (VectorSearchOut), for this endpoint and the hot path (knowledge_app/hot_path.py)."""
    return {"results": [h.as_json() for h in hits], "count": len(hits), "query": payload.text, "mode": payload.mode}


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
