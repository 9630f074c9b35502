"""The workflows API: ``/api/v1/workflows`` (the spec's section 6.2)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from config.auth import request_actor
from workflows_app import selectors, services
from workflows_app.models import Workflow
from workflows_app.schemas import WorkflowCreate, WorkflowOut, WorkflowPatch

router = Router(tags=["workflows"])


def workflow_out(workflow: Workflow) -> dict[str, Any]:
    return {name: getattr(workflow, name) for name in WorkflowOut.model_fields}


@router.get("", response=list[WorkflowOut], summary="The workspace's workflows, by name")
def workflow_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [workflow_out(w) for w in selectors.workflow_list(actor=request_actor(request))]


@router.post(
    "",
    response={201: WorkflowOut},
    summary="Create a workflow of agents",
    description="Steps are checked as a whole: a 422 names each bad step and field (unknown steps or agents, "
    "another workspace's agents, unreachable steps, loops without max_iterations or a way out).",
)
def workflow_create(request: HttpRequest, payload: WorkflowCreate) -> Status:
    return Status(201, workflow_out(services.workflow_create(actor=request_actor(request), **payload.service_values())))


@router.get("/{workflow_id}", response=WorkflowOut, summary="A workflow")
def workflow_get(request: HttpRequest, workflow_id: int) -> dict[str, Any]:
    return workflow_out(selectors.workflow_get(actor=request_actor(request), workflow_id=workflow_id))


@router.patch("/{workflow_id}", response=WorkflowOut, summary="Change a workflow (steps: all of them)")
def workflow_update(request: HttpRequest, workflow_id: int, payload: WorkflowPatch) -> dict[str, Any]:
    actor = request_actor(request)
    return workflow_out(
        services.workflow_update(actor=actor, workflow_id=workflow_id, changes=payload.service_changes())
    )


@router.delete("/{workflow_id}", response={204: None}, summary="Delete a workflow (its runs stay)")
def workflow_delete(request: HttpRequest, workflow_id: int) -> Status:
    services.workflow_delete(actor=request_actor(request), workflow_id=workflow_id)
    return Status(204, None)
