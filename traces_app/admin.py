"""Operator view of traces and their spans: read-only, cheap to list at millions of rows.

Spans are shown on their trace's page: their key is (trace id, span id), and the admin cannot list models
with a composite primary key.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from accounts_app.admin import ReadOnlyAdmin
from config.paginators import EstimatedCountPaginator
from traces_app.models import Span, Trace


def _error(span: Span) -> str:
    """Return a span's error as one line of text: its message (the details are on the trace page)."""
    error = span.error or {}
    return str(error.get("message") or error) if error else ""


@admin.register(Trace)
class TraceAdmin(ReadOnlyAdmin):
    list_display = ("trace_id", "name", "workspace", "status", "span_count", "error_count", "duration_ms", "started_at")
    list_filter = ("status",)
    # Exact matches only: they use the primary key and the run index.
    search_fields = ("=trace_id", "=run__id")
    list_select_related = ("workspace",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    readonly_fields = ("span_table",)

    @admin.display(description="Spans")
    def span_table(self, trace: Trace) -> SafeString:
        spans = Span.objects.filter(trace=trace).order_by("started_at")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            (
                (s.span_id, s.parent_id, s.kind, s.name, s.duration_ms, s.input_tokens, s.output_tokens, _error(s))
                for s in spans
            ),
        )
        header = mark_safe(  # a constant
            "<tr><th>Span</th><th>Parent</th><th>Kind</th><th>Name</th><th>ms</th><th>Tokens</th><th>Error</th></tr>"
        )
        return format_html("<table>{}{}</table>", header, rows)
