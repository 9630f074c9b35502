"""Request and response schemas of the workflows API (the spec's section 6.2, with additions)."""

from __future__ import annotations

from datetime import datetime
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
