"""Knowledge bases: vector stores of a workspace, the files uploaded into them, their chunks (text, metadata, an
embedding in pgvector and a full-text vector), and a log of searches.

Vectors of different embedding models live in different spaces: a store fixes its embedding provider, model and
dimension when it is created, and every chunk of it is embedded with them. Each store has its own HNSW index (a
partial index over its rows, ``knowledge_app.indexes``), so a search of one store never walks another's graph.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField


class StoreBackend(models.TextChoices):
    PGVECTOR = "pgvector", "pgvector (this server's Postgres)"


class ChunkUnit(models.TextChoices):
    CHARACTERS = "characters", "Characters"
    TOKENS = "tokens", "Tokens"


class VectorStore(models.Model):
    """A knowledge base: files split into chunks, embedded with one model, searched together."""

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="vector_stores")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    provider = models.CharField(max_length=20, choices=StoreBackend.choices, default=StoreBackend.PGVECTOR)
    config = models.JSONField(default=dict, blank=True)
    # None: the bundled local embedding model. A deleted provider leaves the store unable to embed (it says so).
    embedding_provider = models.ForeignKey(
        "providers_app.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    embedding_model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    chunk_size = models.PositiveIntegerField(default=1000)
    chunk_overlap = models.PositiveIntegerField(default=200)
    chunk_unit = models.CharField(max_length=10, choices=ChunkUnit.choices, default=ChunkUnit.CHARACTERS)
    # Every member of the workspace may search it (and agents may use it); otherwise only its creator and admins.
    is_public = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("workspace", "name"), name="vector_store_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class FileStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    ERROR = "error", "Error"


class File(models.Model):
    """An uploaded document and where its ingestion stands. The client's file name is kept for display only; the
    stored object's key is ours (``workspaces/<id>/files/<random>``)."""

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="files")
    store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="files")
    original_name = models.CharField(max_length=255)
    detected_type = models.CharField(max_length=20, blank=True)  # pdf, docx, xlsx, html, csv, txt, md, json
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=300)
    status = models.CharField(max_length=12, choices=FileStatus.choices, default=FileStatus.QUEUED)
    message = models.TextField(blank=True)  # what went wrong, for a person
    chunk_count = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    chunk_size = models.PositiveIntegerField(null=True, blank=True)  # None: the store's
    chunk_overlap = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes: ClassVar = [models.Index(fields=("store", "sha256"), name="file_store_sha256")]

    def __str__(self) -> str:
        return self.original_name


class Chunk(models.Model):
    """A piece of a file: its text, where it came from (``metadata``: file, page or sheet, heading path), its
    embedding and its full-text vector."""

    store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="+", db_index=False)
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    position = models.PositiveIntegerField()
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    # No fixed dimension here: each store's partial HNSW index casts to its own (knowledge_app.indexes).
    embedding = VectorField()
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="simple"), output_field=SearchVectorField(), db_persist=True
    )

    class Meta:
        ordering = ("file", "position")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("file", "position"), name="chunk_unique_position"),
        ]
        indexes: ClassVar = [
            models.Index(fields=("store", "file"), name="chunk_store_file"),
            GinIndex(fields=("search_vector",), name="chunk_search_vector"),
            GinIndex(fields=("metadata",), name="chunk_metadata", opclasses=("jsonb_path_ops",)),
        ]

    def __str__(self) -> str:
        return f"Chunk {self.position} of file {self.file_id}"


class SearchLog(models.Model):
    """One search of a store: by whom, what, how, and how many results."""

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="+")
    store = models.ForeignKey(VectorStore, null=True, on_delete=models.SET_NULL, related_name="searches")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    run_id = models.BigIntegerField(null=True, blank=True)  # an agent's search: the run that made it
    query = models.TextField()
    mode = models.CharField(max_length=10)
    max_results = models.PositiveSmallIntegerField()
    filter = models.JSONField(default=dict, blank=True)
    result_count = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes: ClassVar = [models.Index(fields=("workspace", "-created_at"), name="search_ws_recent")]

    def __str__(self) -> str:
        return f"Search of {self.store_id}: {self.query[:40]}"
