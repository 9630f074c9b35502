"""Request and response schemas of the knowledge API (the spec's section 10, with additions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from config.input import InputSchema

ChunkUnitName = Literal["characters", "tokens"]


class VectorStoreCreate(InputSchema):
    """The spec's ``VectorStoreCreate``; the embedding and chunking fields are additions."""

    name: str = Field(min_length=1, max_length=100)
    provider: Literal["pgvector"] = Field("pgvector", description="Where vectors live; pgvector is served")
    description: str = Field("", max_length=2000)
    config: dict[str, Any] | None = None
    embedding_provider_id: int | None = Field(None, description="Null: the bundled local embedding model (offline)")
    embedding_model: str = Field("", max_length=200, description="Empty: the provider's default embedding model")
    chunk_size: int = Field(1000, ge=1, le=100_000)
    chunk_overlap: int = Field(200, ge=0, le=100_000)
    chunk_unit: ChunkUnitName = "characters"
    is_public: bool = Field(True, description="Every member may search it; false: its creator and admins only")

    def service_values(self) -> dict[str, Any]:
        return {k: v for k, v in self.dict().items() if v is not None}


class VectorStorePatch(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    config: dict[str, Any] | None = None
    chunk_size: int | None = Field(None, ge=1, le=100_000)
    chunk_overlap: int | None = Field(None, ge=0, le=100_000)
    chunk_unit: ChunkUnitName | None = None
    is_public: bool | None = None
    embedding_provider_id: int | None = Field(None, description="Fixed at creation: sending it is refused")
    embedding_model: str | None = Field(None, description="Fixed at creation: sending it is refused")

    def service_changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.dict(exclude_unset=True).items() if v is not None or k in ("config",)}


class VectorStoreOut(Schema):
    id: int
    name: str
    provider: str
    description: str
    config: dict[str, Any]
    status: str = Field(description='"ready", or "processing" while files are queued or being processed')
    embedding_provider_id: int | None
    embedding_model: str
    dimensions: int
    chunk_size: int
    chunk_overlap: int
    chunk_unit: str
    is_public: bool
    file_count: int
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class FileOut(Schema):
    id: int
    vector_store_id: int
    filename: str
    detected_type: str
    size: int
    sha256: str
    status: str = Field(description="queued, processing, processed or error")
    message: str = Field(description="Why it is in error, for a person")
    progress: int = Field(description="Percent")
    chunk_count: int
    created_at: datetime
    processed_at: datetime | None


class VectorSearchQuery(InputSchema):
    """The spec's ``VectorSearchQuery``, with ``mode`` and ``similarity_threshold`` added."""

    text: str = Field(min_length=1, max_length=10_000)
    max_results: int = Field(5, ge=1, le=50)
    filter: dict[str, Any] | None = Field(None, description='Metadata the chunks must hold, e.g. {"page": 2}')
    embedding_model: str | None = Field(None, max_length=200, description="Omit: the store's (no other is allowed)")
    similarity_threshold: float | None = Field(None, ge=-1, le=1, description="Least cosine similarity")
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"

    def search_options(self) -> dict[str, Any]:
        """Return the keyword arguments of ``knowledge_app.search.search`` that come from this input."""
        return self.model_dump(
            include={"text", "max_results", "mode", "filter", "similarity_threshold", "embedding_model"}
        )


class SearchResultOut(Schema):
    text: str
    metadata: dict[str, Any]
    score: float = Field(description="The mode's score: cosine similarity, full-text rank, or the fused rank score")
    scores: dict[str, float | None] = Field(description="Per mode (hybrid: vector, keyword and rrf)")
    file_id: int
    filename: str
    position: int


class VectorSearchOut(Schema):
    results: list[SearchResultOut]
    count: int
    query: str
    mode: str
