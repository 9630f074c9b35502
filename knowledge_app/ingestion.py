"""Files into a store: the upload (stored under a key of ours, queued for a worker) and the ingestion a worker runs
(extract, chunk, embed in batches with progress, then all chunks written at once).

Ingestion is idempotent: it claims the file with a conditional update, and a file's chunks are replaced in one
transaction with its status, so a worker that dies mid-file leaves no partial set, and the redelivered task (or a
retry) ends with exactly one. Every failure ends the file in ``error`` with a message a person understands.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

import openai
from django.conf import settings
from django.core.files.base import File as DjangoFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts_app.actor import Actor
from knowledge_app.chunking import split
from knowledge_app.exceptions import ConflictError, InvalidInputError, NotFoundError
from knowledge_app.extraction import ExtractionError, detect_type, extract
from knowledge_app.models import Chunk, File, FileStatus, VectorStore
from knowledge_app.selectors import store_get, visible_stores
from knowledge_app.services import check_store
from providers_app.clients import close_clients_for_running_loop
from providers_app.embeddings import LOCAL_EMBEDDING_MODEL, embedder_for
from providers_app.failures import describe_failure

logger = logging.getLogger(__name__)
EMBED_BATCH = 64
INSERT_BATCH = 500
# Provider failures worth another try later; anything else (a bad key, a refused model) ends the file in error.
TRANSIENT = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


def file_get(*, actor: Actor, file_id: int) -> File:
    """Return a file of a store the actor may see; NotFoundError for any other."""
    found = File.objects.filter(store__in=visible_stores(actor=actor), pk=file_id).select_related("store").first()
    if found is None:
        raise NotFoundError("File not found.")
    return found


def file_upload(
    *,
    actor: Actor,
    store_id: int,
    name: str,
    content: IO[bytes],
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    embedding_model: str | None = None,
) -> tuple[File, bool]:
    """Store an upload and queue its ingestion (members and above). Returns ``(file, created)``: the same content
    already in the store (by sha256) is that file, not embedded twice.

    Raises NotFoundError, PermissionDeniedError and InvalidInputError (empty or too large, chunking outside the
    store's limits, another embedding model than the store's). The client's name is kept for display only.
    """
    store = store_get(actor=actor, store_id=store_id, counts=False)
    actor.require_write()
    fields: dict[str, str] = {}
    if embedding_model and embedding_model != store.embedding_model:
        fields["embedding_model"] = f"This store embeds with {store.embedding_model!r}; leave it out or give that."
    probe = VectorStore(
        workspace=store.workspace,
        pk=store.pk,
        name=store.name,
        chunk_size=chunk_size or store.chunk_size,
        chunk_overlap=store.chunk_overlap if chunk_overlap is None else chunk_overlap,
        chunk_unit=store.chunk_unit,
        embedding_provider_id=store.embedding_provider_id,
    )
    check_store(probe, fields)  # the store's own rules, for this file's chunking
    digest, size = hashlib.sha256(), 0
    content.seek(0)
    while block := content.read(1024 * 1024):
        digest.update(block)
        size += len(block)
    if size == 0:
        fields["file"] = "The file is empty."
    elif size > settings.KNOWLEDGE_MAX_FILE_BYTES:
        fields["file"] = f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES:,} bytes (KNOWLEDGE_MAX_FILE_MB)."
    if fields:
        raise InvalidInputError("The file was not accepted.", fields=fields)
    sha256 = digest.hexdigest()
    existing = File.objects.filter(store=store, sha256=sha256).exclude(status=FileStatus.ERROR).first()
    if existing is not None:
        return existing, False
    content.seek(0)
    key = default_storage.save(f"workspaces/{store.workspace_id}/files/{uuid.uuid4().hex}", DjangoFile(content))
    upload = File.objects.create(
        workspace=store.workspace,
        store=store,
        original_name=(name or "upload").replace("\x00", "")[:255],
        size=size,
        sha256=sha256,
        storage_key=key,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        created_by=actor.user,
    )
    transaction.on_commit(lambda: queue_ingestion(upload.pk))
    return upload, True


def queue_ingestion(file_id: int) -> None:
    """Hand a file to a worker. Never raises: with the broker down, the file stays queued and the beat sweep
    (``resume_stuck_files``) hands it over once the broker is back; the upload itself has succeeded."""
    from knowledge_app.tasks import knowledge_ingest

    try:
        knowledge_ingest.delay(file_id)
    except Exception as exc:  # kombu's connection errors vary by transport
        logger.warning("File %s stays queued: the broker refused it (%s)", file_id, type(exc).__name__)


def file_reingest(*, actor: Actor, file_id: int) -> File:
    """Process a processed or failed file again (members and above): its chunks are replaced only when the new
    ones are written, so it stays searchable meanwhile. Returns the file, queued.

    Raises NotFoundError, PermissionDeniedError and ConflictError (it is queued or being processed already).
    """
    found = file_get(actor=actor, file_id=file_id)
    actor.require_write()
    changed = File.objects.filter(pk=found.pk, status__in=[FileStatus.PROCESSED, FileStatus.ERROR]).update(
        status=FileStatus.QUEUED, progress=0, message="", attempts=0, updated_at=timezone.now()
    )
    if not changed:
        raise ConflictError("The file is queued or being processed already.", code="file_busy")
    transaction.on_commit(lambda: queue_ingestion(found.pk))
    found.refresh_from_db()
    return found


def file_delete(*, actor: Actor, file_id: int) -> None:
    """Delete a file, its chunks and its stored object (members and above)."""
    found = file_get(actor=actor, file_id=file_id)
    actor.require_write()
    key = found.storage_key
    found.delete()
    transaction.on_commit(lambda: default_storage.delete(key))


MAX_ATTEMPTS = 8  # deliveries of one file: retries after provider faults, and redeliveries after a worker died
QUEUED_GRACE = timedelta(hours=1)


def resume_stuck_files(*, now: datetime | None = None) -> tuple[int, int]:
    """Hand files that no worker finished back to the workers; fail those that were tried MAX_ATTEMPTS times.

    A file is stuck when it has been queued for QUEUED_GRACE (the broker was down when it was uploaded) or
    processing for longer than a task may run (its worker died without the broker redelivering it). A duplicate
    delivery is harmless: only the file's latest claim writes its chunks. Returns
    ``(requeued, failed)``. Run every few minutes by Celery beat.
    """
    now = now or timezone.now()
    running = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) + QUEUED_GRACE
    stuck = File.objects.filter(
        Q(status=FileStatus.QUEUED, updated_at__lt=now - QUEUED_GRACE)
        | Q(status=FileStatus.PROCESSING, updated_at__lt=now - running)
    )
    failed = stuck.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=FileStatus.ERROR,
        progress=0,
        message=f"Processing was started {MAX_ATTEMPTS} times without finishing; the file was set aside.",
    )
    requeued = 0
    for file_id in stuck.filter(attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True):
        File.objects.filter(pk=file_id).update(updated_at=now)  # not picked again before the next sweep
        queue_ingestion(file_id)
        requeued += 1
    return requeued, failed


def store_index_name(store_id: int) -> str:
    return f"chunk_hnsw_store_{store_id}"


def ensure_store_index(store: VectorStore) -> None:
    """Build the store's HNSW index (a partial index over its chunks, at its dimension) if it is missing or was left
    invalid by a failed build. Concurrently: chunks of every store stay writable meanwhile. Needs autocommit."""
    name = store_index_name(store.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s", [name]
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            return
        if row is not None:
            cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        dimensions, store_id = int(store.dimensions), int(store.pk)  # integers: safe to write into the statement
        cursor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON {Chunk._meta.db_table} '
            f"USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) WHERE store_id = {store_id}"
        )


def drop_store_index(store_id: int) -> None:
    """Drop a deleted store's HNSW index (concurrently: other stores' searches and writes go on)."""
    with connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{store_index_name(int(store_id))}"')


@dataclass
class Claim:
    file: File
    store: VectorStore
    attempt: int  # the claim's token: only the latest claim of a file may write its chunks


def _claim(file_id: int) -> Claim | None:
    """Take a queued file, or one left processing (its worker died, or a duplicate delivery); None when it is
    done or gone. A file started MAX_ATTEMPTS times without finishing is set aside in error instead."""
    claimed = File.objects.filter(Q(status=FileStatus.QUEUED) | Q(status=FileStatus.PROCESSING), pk=file_id).update(
        status=FileStatus.PROCESSING, attempts=F("attempts") + 1, progress=0, message="", updated_at=timezone.now()
    )
    if not claimed:
        return None
    found = File.objects.select_related("store__embedding_provider").get(pk=file_id)
    if found.attempts > MAX_ATTEMPTS:
        fail(file_id, f"Processing was started {MAX_ATTEMPTS} times without finishing; the file was set aside.")
        return None
    return Claim(file=found, store=found.store, attempt=found.attempts)


def _progress(file_id: int, percent: int, attempt: int) -> None:
    File.objects.filter(pk=file_id, status=FileStatus.PROCESSING, attempts=attempt).update(progress=percent)


def fail(file_id: int, message: str, attempt: int | None = None) -> None:
    """End a file in error with ``message`` (never left processing). With ``attempt`` (a claim's token), only
    while that claim is the file's latest: a superseded claim's failure must not end a later one's work."""
    found = File.objects.filter(pk=file_id).exclude(status=FileStatus.PROCESSED)
    if attempt is not None:
        found = found.filter(attempts=attempt)
    found.update(status=FileStatus.ERROR, message=message[:2000], progress=0)


def ingest(file_id: int, *, may_retry: bool = False) -> str:
    """Ingest one file; return its status. A TRANSIENT provider error is raised for the task to retry while
    ``may_retry``, else ends the file in error. Whatever stops it once claimed ends the file in error under its claim
    (so never a later claim's work) before going on."""
    claim = _claim(file_id)
    if claim is None:
        return "skipped"
    upload, store = claim.file, claim.store
    try:
        if store.embedding_provider_id is None and store.embedding_model != LOCAL_EMBEDDING_MODEL:
            raise ExtractionError("The store's embedding provider was deleted; its files cannot be embedded.")
        with default_storage.open(upload.storage_key, "rb") as stored:
            data = stored.read(settings.KNOWLEDGE_MAX_FILE_BYTES + 1)
        kind = detect_type(data, upload.original_name)
        File.objects.filter(pk=file_id).update(detected_type=kind)
        sections = extract(data, kind)
        pieces = split(
            sections,
            size=upload.chunk_size or store.chunk_size,
            overlap=store.chunk_overlap if upload.chunk_overlap is None else upload.chunk_overlap,
            unit=store.chunk_unit,
        )
        _progress(file_id, 10, claim.attempt)
        vectors = asyncio.run(_embed(store, [p.text for p in pieces], file_id, claim.attempt))
        ensure_store_index(store)
        with transaction.atomic():
            # A later claim of the same file (a duplicate delivery) wins; this one leaves the writing to it.
            current = File.objects.select_for_update().filter(pk=file_id).values_list("attempts", flat=True).first()
            if current != claim.attempt:
                return "superseded"
            Chunk.objects.filter(file_id=file_id).delete()
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        store=store,
                        file=upload,
                        position=n,
                        text=piece.text,
                        metadata={**piece.metadata, "file_id": upload.pk, "file_name": upload.original_name},
                        embedding=vector,
                    )
                    for n, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))
                ],
                batch_size=INSERT_BATCH,
            )
            File.objects.filter(pk=file_id).update(
                status=FileStatus.PROCESSED, chunk_count=len(pieces), progress=100, processed_at=timezone.now()
            )
        return FileStatus.PROCESSED
    except ExtractionError as exc:
        fail(file_id, str(exc), claim.attempt)
    except TRANSIENT as exc:
        if may_retry:
            raise
        name = type(exc).__name__
        fail(file_id, f"The embedding provider stayed unavailable ({name}); upload it again later.", claim.attempt)
    except openai.OpenAIError as exc:
        provider = store.embedding_provider
        message = describe_failure(exc, provider).message if provider else f"Embedding failed: {exc}"
        fail(file_id, message, claim.attempt)
    except Exception as exc:
        logger.exception("Ingesting file %s failed", file_id)
        fail(file_id, f"The file could not be processed ({type(exc).__name__}).", claim.attempt)
    except BaseException:
        fail(file_id, "The worker stopped while processing the file (a time limit?); upload it again.", claim.attempt)
        raise
    return FileStatus.ERROR


async def _embed(store: VectorStore, texts: list[str], file_id: int, attempt: int) -> list[Any]:
    """Return the texts' vectors, embedded in batches; progress goes from 10 to 90 percent."""
    from config.db import db_call

    embedder = embedder_for(provider=store.embedding_provider, model=store.embedding_model)
    vectors: list[Any] = []
    try:
        for start in range(0, len(texts), EMBED_BATCH):
            result = await embedder.embed(texts[start : start + EMBED_BATCH])
            if result.dimensions != store.dimensions:
                raise ExtractionError(
                    f"The embedding model now answers with {result.dimensions} dimensions; the store has "
                    f"{store.dimensions}. Create a new store for it."
                )
            vectors.extend(result.vectors)
            done = 10 + 80 * min(start + EMBED_BATCH, len(texts)) // max(len(texts), 1)
            await db_call(_progress, file_id, done, attempt)
    finally:
        await close_clients_for_running_loop()
    return vectors
