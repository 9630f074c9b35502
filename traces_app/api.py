"""Traces API. No `from __future__ import annotations`: ninja reads annotations at runtime."""

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from agents_app.selectors import agent_get
from config.auth import request_actor
from traces_app import selectors, services
from traces_app.models import Trace
from traces_app.schemas import (
    ForwardingIn,
    ForwardingOut,
    RetentionIn,
    RetentionOut,
    SpanOut,
    TraceDetailOut,
    TraceFilter,
    TracePage,
)

router = Router(tags=["traces"])
agent_traces_router = Router(tags=["traces"])


def _page(request: HttpRequest, filters: TraceFilter, agent_id: int | None = None) -> dict[str, Any]:
    traces = selectors.trace_list(
        actor=request_actor(request),
        agent_id=agent_id,
        status=filters.status,
        since=filters.since,
        until=filters.until,
        min_duration_ms=filters.min_duration_ms,
        max_duration_ms=filters.max_duration_ms,
        search=filters.search,
    )
    # No total count: counting every matching trace would cost more than the page itself at millions of rows.
    rows = list(traces[filters.offset : filters.offset + filters.limit + 1])
    return {"items": rows[: filters.limit], "has_more": len(rows) > filters.limit}


@router.get("", response=TracePage, summary="The workspace's traces, newest first")
def trace_list(request: HttpRequest, filters: Query[TraceFilter]) -> dict[str, Any]:
    return _page(request, filters)


@agent_traces_router.get("/{agent_id}/traces", response=TracePage, summary="An agent's traces, newest first")
def agent_trace_list(request: HttpRequest, agent_id: int, filters: Query[TraceFilter]) -> dict[str, Any]:
    agent = agent_get(actor=request_actor(request), agent_id=agent_id)  # another workspace's agent is a 404
    return _page(request, filters, agent_id=agent.pk)


@router.get("/retention", response=RetentionOut, summary="How long the workspace keeps traces")
def retention_get(request: HttpRequest) -> dict[str, int]:
    return {"retention_days": request_actor(request).workspace.trace_retention_days}


@router.put("/retention", response=RetentionOut, summary="Change how long traces are kept (admins)")
def retention_set(request: HttpRequest, payload: RetentionIn) -> dict[str, int]:
    workspace = services.trace_retention_set(actor=request_actor(request), days=payload.retention_days)
    return {"retention_days": workspace.trace_retention_days}


@router.get("/forwarding", response=ForwardingOut, summary="Whether traces also go to OpenAI's dashboard")
def forwarding_get(request: HttpRequest) -> dict[str, int | None]:
    return {"openai_provider_id": services.trace_forwarding_provider_id(actor=request_actor(request))}


@router.put("/forwarding", response=ForwardingOut, summary="Forward traces to OpenAI's dashboard, or stop (admins)")
def forwarding_set(request: HttpRequest, payload: ForwardingIn) -> dict[str, int | None]:
    setting = services.trace_forwarding_set(actor=request_actor(request), provider_id=payload.openai_provider_id)
    return {"openai_provider_id": setting.provider_id}


@router.get("/{trace_id}", response=TraceDetailOut, summary="A trace with its span tree")
def trace_get(request: HttpRequest, trace_id: str) -> dict[str, Any]:
    trace: Trace = selectors.trace_get(actor=request_actor(request), trace_id=trace_id)
    data = {field: getattr(trace, field) for field in TraceDetailOut.model_fields if field != "spans"}
    data["spans"] = selectors.span_tree(selectors.trace_spans(trace=trace))
    return data


@router.get("/{trace_id}/spans/{span_id}", response=SpanOut, summary="One span with its full payload")
def span_get(request: HttpRequest, trace_id: str, span_id: str) -> Any:
    return selectors.span_get(actor=request_actor(request), trace_id=trace_id, span_id=span_id)
