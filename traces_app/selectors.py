"""Trace reads, scoped to the actor's workspace."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from accounts_app.actor import Actor
from traces_app.exceptions import NotFoundError
from traces_app.models import Span, Trace


def trace_list(
    *,
    actor: Actor,
    agent_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    min_duration_ms: int | None = None,
    max_duration_ms: int | None = None,
    search: str = "",
) -> QuerySet[Trace]:
    """Return the workspace's traces, newest first, filtered (each filter optional).

    Served by the (workspace, -started_at) or (agent, -started_at) index; the other filters apply to
    the rows that index yields, so a first page stays cheap however many traces there are.
    """
    traces = Trace.objects.filter(workspace=actor.workspace)
    if agent_id is not None:
        traces = traces.filter(agent_id=agent_id)
    if status:
        traces = traces.filter(status=status)
    if since is not None:
        traces = traces.filter(started_at__gte=since)
    if until is not None:
        traces = traces.filter(started_at__lt=until)
    if min_duration_ms is not None:
        traces = traces.filter(duration_ms__gte=min_duration_ms)
    if max_duration_ms is not None:
        traces = traces.filter(duration_ms__lte=max_duration_ms)
    if search:
        traces = traces.filter(name__icontains=search) | traces.filter(trace_id=search.strip())
    return traces.order_by("-started_at", "-trace_id")


def trace_get(*, actor: Actor, trace_id: str) -> Trace:
    """Return one trace of the workspace; raises NotFoundError otherwise (another workspace's too)."""
    trace = Trace.objects.filter(workspace=actor.workspace, trace_id=trace_id).first()
    if trace is None:
        raise NotFoundError("Trace not found.")
    return trace


def trace_spans(*, trace: Trace) -> list[Span]:
    """Return the trace's spans in start order (its tree is built from their parent ids)."""
    return sorted(Span.objects.filter(trace=trace), key=lambda s: (s.started_at is None, s.started_at, s.span_id))


def span_get(*, actor: Actor, trace_id: str, span_id: str) -> Span:
    """Return one span of one of the workspace's traces; raises NotFoundError otherwise."""
    trace = trace_get(actor=actor, trace_id=trace_id)
    span = Span.objects.filter(trace=trace, span_id=span_id).first()
    if span is None:
        raise NotFoundError("Span not found.")
    return span


def span_tree(spans: list[Span]) -> list[dict[str, object]]:
    """Return the spans as a forest of ``{..., "children": [...]}`` nodes in start order (``spans`` sorted).

    A span whose parent is not in the trace (lost in a failed write) becomes a root, so nothing is hidden.
    """
    nodes: dict[str, dict[str, object]] = {}
    for span in spans:
        nodes[span.span_id] = {
            "span_id": span.span_id,
            "parent_id": span.parent_id,
            "kind": span.kind,
            "name": span.name,
            "started_at": span.started_at,
            "ended_at": span.ended_at,
            "duration_ms": span.duration_ms,
            "error": span.error,
            "input_tokens": span.input_tokens,
            "output_tokens": span.output_tokens,
            "children": [],
        }
    roots: list[dict[str, object]] = []
    for span in spans:
        parent = nodes.get(span.parent_id) if span.parent_id else None
        if parent is None or parent is nodes[span.span_id]:
            roots.append(nodes[span.span_id])
        else:
            parent["children"].append(nodes[span.span_id])  # type: ignore[attr-defined]
    return roots
