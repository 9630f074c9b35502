"""Traces and spans of agent runs, as the Agents SDK reports them (traces_app/processor.py writes them).

Both tables grow with every run, so they are built for size: they are keyed by the SDK's own ids (a trace by
its trace id, a span by its trace id and span id: no lookup when writing, one index per span row, and both
tables can be hash-partitioned by trace id), every list is served by an index that starts with the filter,
and retention deletes old traces in bounded batches (traces_app/services.py).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


class TraceStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    ERROR = "error", "Error"


class Trace(models.Model):
    """One SDK trace: a run (or, later, a workflow run) and every span it produced."""

    trace_id = models.CharField(max_length=64, primary_key=True)  # the SDK's "trace_<32 hex>"
    # Indexed by the composite indexes below (each starts with it), not by indexes of their own. Runs and
    # agents are referenced without a database constraint: a trace is written by a background thread and
    # must not fail when its run or agent went away meanwhile.
    workspace = models.ForeignKey(
        "accounts_app.Workspace", on_delete=models.CASCADE, related_name="traces", db_index=False
    )
    run = models.ForeignKey(
        "agents_app.AgentRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    agent = models.ForeignKey(
        "agents_app.Agent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    workflow_run_id = models.BigIntegerField(null=True, blank=True)  # for workflow runs (a later section)
    name = models.CharField(max_length=200, blank=True)
    group_id = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=TraceStatus.choices, default=TraceStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    span_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=("workspace", "-started_at"), name="trace_ws_recent"),
            models.Index(fields=("agent", "-started_at"), name="trace_agent_recent"),
            models.Index(fields=("run",), name="trace_run"),
            models.Index(fields=("workflow_run_id",), name="trace_workflow_run"),
        ]

    def __str__(self) -> str:
        return self.trace_id


class Span(models.Model):
    """One SDK span: an agent turn, a model call, a tool call, a handoff, a guardrail, or a custom step."""

    # The key is (trace, span_id): both tables' keys start with the trace id, so either can be hash-partitioned
    # by it when it grows (tests/traces_app/test_partitioning.py creates such partitioned copies).
    pk = models.CompositePrimaryKey("trace_id", "span_id")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="spans", db_index=False)
    span_id = models.CharField(max_length=64)  # the SDK's "span_<24 hex>"
    parent_id = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=30)  # agent, generation, response, function, guardrail, handoff, custom, ...
    name = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)  # the span's payload, secrets redacted
    error = models.JSONField(null=True, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}".strip()


class TraceForwarding(models.Model):
    """A workspace's choice to also send its traces to OpenAI's trace dashboard, with one of its OpenAI keys."""

    workspace = models.OneToOneField(
        "accounts_app.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="trace_forwarding"
    )
    provider = models.ForeignKey("providers_app.Provider", null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Forwarding of {self.workspace_id}"
