"""Trace API schemas. No `from __future__ import annotations`: ninja reads annotations at runtime."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from config.input import InputSchema, IsoDatetime, QuerySchema


class TraceFilter(QuerySchema):
    status: str | None = Field(None, pattern="^(running|ok|error)$")
    since: IsoDatetime | None = Field(None, description="Traces started at or after this time")
    until: IsoDatetime | None = Field(None, description="Traces started before this time")
    min_duration_ms: int | None = Field(None, ge=0)
    max_duration_ms: int | None = Field(None, ge=0)
    search: str = Field("", max_length=200, description="Part of the trace's name, or its exact trace id")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=100_000)


class TraceOut(Schema):
    trace_id: str
    name: str
    status: str
    agent_id: int | None
    run_id: int | None
    workflow_run_id: int | None
    group_id: str
    metadata: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int


class TracePage(Schema):
    items: list[TraceOut]
    has_more: bool = Field(description="More traces match: ask again with offset + limit")


class SpanSummary(Schema):
    """What every view of a span shows: where it sits, what it is, when, and its tokens."""

    span_id: str
    parent_id: str
    kind: str
    name: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: float | None
    input_tokens: int
    output_tokens: int


class SpanNode(SpanSummary):
    error: Any
    children: list["SpanNode"]


class TraceDetailOut(TraceOut):
    spans: list[SpanNode] = Field(description="The span tree: root spans, each with its children, in start order")


class SpanOut(SpanSummary):
    trace_id: str
    data: dict[str, Any] = Field(description="The span's payload: model input and output, tool arguments, ...")
    error: dict[str, Any] | None


class RetentionOut(Schema):
    retention_days: int = Field(description="Traces older than this are deleted (hourly)")


class RetentionIn(InputSchema):
    retention_days: int


class ForwardingOut(Schema):
    openai_provider_id: int | None = Field(description="Traces also go to OpenAI's dashboard with this provider's key")


class ForwardingIn(InputSchema):
    openai_provider_id: int | None
