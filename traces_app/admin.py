"""Operator view of traces and spans: read-only, cheap to list at millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts_app.admin import ReadOnlyAdmin
from config.paginators import EstimatedCountPaginator
from traces_app.models import Span, Trace


class SpanInline(admin.TabularInline):
    model = Span
    extra = 0
    fields = ("span_id", "parent_id", "kind", "name", "started_at", "duration_ms", "input_tokens", "output_tokens")
    readonly_fields = fields
    ordering = ("started_at",)
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Trace)
class TraceAdmin(ReadOnlyAdmin):
    list_display = ("trace_id", "name", "workspace", "status", "span_count", "error_count", "duration_ms", "started_at")
    list_filter = ("status",)
    # Exact matches only: they use the unique and foreign key indexes.
    search_fields = ("=trace_id", "=run__id")
    list_select_related = ("workspace",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    inlines = (SpanInline,)


@admin.register(Span)
class SpanAdmin(ReadOnlyAdmin):
    list_display = ("span_id", "trace_id", "kind", "name", "duration_ms", "input_tokens", "output_tokens")
    list_filter = ("kind",)
    search_fields = ("=trace__trace_id",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
