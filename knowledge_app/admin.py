"""Operator view of knowledge bases, their files and the search log.

Stores and files are written through the services (config.admin_services), as from the API and the pages:
a store's embedding stays fixed, a deleted file takes its chunks and stored object along, and "Process again"
queues a file for a worker the same way the page's button does. Chunks and search logs are read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from accounts_app.admin import ReadOnlyAdmin
from config.admin_services import ServiceAdmin, changed_values, error_text, operator_actor
from config.errors import ApplicationError
from knowledge_app import ingestion, services
from knowledge_app.models import File, SearchLog, VectorStore

_STORE_FIELDS = {
    name: name for name in ("name", "description", "config", "chunk_size", "chunk_overlap", "chunk_unit", "is_public")
}


@admin.register(VectorStore)
class VectorStoreAdmin(ServiceAdmin):
    list_display = ("name", "workspace", "embedding_model", "dimensions", "is_public", "created_at")
    list_filter = ("is_public", "provider")
    search_fields = ("name", "workspace__name", "description")
    list_select_related = ("workspace",)
    raw_id_fields = ("workspace", "embedding_provider", "created_by")
    readonly_fields = (
        "workspace",
        "provider",
        "embedding_provider",
        "embedding_model",
        "dimensions",
        "created_by",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Stores are created by workspace members, who choose the embedding model their documents need.
        return False

    def service_save(self, request: HttpRequest, obj: VectorStore, form: ModelForm, change: bool) -> VectorStore:
        changes = changed_values(form, _STORE_FIELDS)
        return services.store_update(actor=operator_actor(request, obj.workspace), store_id=obj.pk, changes=changes)

    def service_delete(self, request: HttpRequest, obj: VectorStore) -> None:
        services.store_delete(actor=operator_actor(request, obj.workspace), store_id=obj.pk)


@admin.register(File)
class FileAdmin(ServiceAdmin):
    list_display = ("original_name", "store", "status", "progress", "chunk_count", "size", "attempts", "created_at")
    list_filter = ("status", "detected_type")
    search_fields = ("original_name", "sha256", "store__name", "message")
    list_select_related = ("store",)
    actions = ("reingest",)
    fields = (
        "store",
        "original_name",
        "detected_type",
        "size",
        "sha256",
        "storage_key",
        "status",
        "message",
        "progress",
        "chunk_count",
        "chunk_size",
        "chunk_overlap",
        "attempts",
        "processed_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # files come in through uploads (the page or the API), which check and store them

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a file's state is the ingestion's; operators process it again or delete it

    def service_delete(self, request: HttpRequest, obj: File) -> None:
        ingestion.file_delete(actor=operator_actor(request, obj.workspace), file_id=obj.pk)

    @admin.action(description="Process the selected files again")
    def reingest(self, request: HttpRequest, queryset: QuerySet[File]) -> None:
        queued = 0
        for found in queryset.select_related("workspace"):
            try:
                ingestion.file_reingest(actor=operator_actor(request, found.workspace), file_id=found.pk)
            except ApplicationError as exc:
                self.message_user(request, f"{found.original_name}: {error_text(exc)}", messages.WARNING)
            else:
                queued += 1
        if queued:
            self.message_user(request, f"Queued {queued} file{'s' if queued != 1 else ''} for processing.")


@admin.register(SearchLog)
class SearchLogAdmin(ReadOnlyAdmin):
    list_display = ("query", "store", "mode", "result_count", "duration_ms", "user", "run_id", "created_at")
    list_filter = ("mode",)
    search_fields = ("query", "store__name")
    list_select_related = ("store", "user")
