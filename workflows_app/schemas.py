"""Request and response schemas of the workflows API (the spec's section 6.2, with additions)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ninja import Field, Schema

from config.input import InputSchema
from workflows_app.definition import MAX_STEPS, StepSpec


class WorkflowCreate(InputSchema):
    """The spec's ``WorkflowCreate``: a name and its steps (workflows_app/definition.py says what a step may be)."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=5000)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def service_values(self) -> dict[str, Any]:
        values = self.model_dump(exclude={"steps"})
        values["steps"] = [step.model_dump(exclude_unset=True) for step in self.steps]
        return values


class WorkflowPatch(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=5000)
    steps: list[StepSpec] | None = Field(None, min_length=1, max_length=MAX_STEPS, description="All of them")
    metadata: dict[str, Any] | None = None

    def service_changes(self) -> dict[str, Any]:
        changes = self.model_dump(exclude_unset=True, exclude={"steps"})
        if self.steps is not None:
            changes["steps"] = [step.model_dump(exclude_unset=True) for step in self.steps]
        return {k: v for k, v in changes.items() if v is not None}


class WorkflowOut(Schema):
    id: int
    name: str
    description: str
    steps: list[dict[str, Any]]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class WorkflowRunInput(InputSchema):
    """The spec's ``WorkflowRunInput``: the user's message, and the context every step receives."""

    message: str = Field(description="The user's message: the first step's input by default")
    context_id: int | None = Field(None, description="A context (of any agent of the workspace) given to every step")
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream: bool = Field(False, description="Answer with the run's events as Server-Sent Events as they happen")
    background: bool = Field(False, description="Answer 202 at once; a worker runs it (see /workflow-runs/{id})")


class WorkflowRunQueued(Schema):
    workflow_run_id: str
    status: str
    trace_id: str


class WorkflowRunAnswer(Schema):
    """A finished workflow run: ``results`` keyed by step id (each step's output, messages, usage, run id...)."""

    workflow_run_id: str
    workflow_id: int | None
    status: str
    results: dict[str, Any]
    output: Any
    path: list[str]
    usage: dict[str, Any]
    cost: Decimal
    trace_id: str
    error: str | None
    code: str | None
    duration_ms: int | None


class WorkflowRunFailed(WorkflowRunAnswer):
    detail: str


class StepRunOut(Schema):
    step_id: str
    sequence: int
    iteration: int
    group_id: str
    agent_id: int | None
    agent_run_id: int | None
    status: str
    input: str
    output: Any
    last_agent_name: str
    guardrail_tripped: bool
    usage: dict[str, Any]
    cost: Decimal
    error: str
    error_code: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None


class WorkflowRunOut(Schema):
    id: int
    workflow_id: int | None
    workflow_name: str
    workflow_version: int
    status: str
    mode: str
    message: str
    context_name: str
    results: dict[str, Any]
    path: list[str]
    final_output: Any
    error: str
    error_code: str
    usage: dict[str, Any]
    cost: Decimal
    trace_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class WorkflowRunDetailOut(WorkflowRunOut):
    steps: list[dict[str, Any]]
    step_runs: list[StepRunOut]


class WorkflowImportIn(InputSchema):
    """A workflow export as JSON (``document``) or as JSON/YAML text (``text``), and optionally its name here."""

    document: dict[str, Any] | None = None
    text: str | None = Field(None, max_length=2_000_000)
    name: str | None = Field(None, max_length=100, description="Name the workflow (default: the export's name)")


class TemplateOut(Schema):
    key: str
    name: str
    description: str
    needs_knowledge_base: bool = Field(
        description="Its agents search documents: give vector_store_id, or get a new one"
    )


class TemplateUseIn(InputSchema):
    name: str | None = Field(None, max_length=100, description="Name the workflow (default: the template's name)")
    vector_store_id: int | None = Field(
        None, description="The knowledge base its agents search (default: a new, empty one to upload documents to)"
    )
