"""Reads of workflows and their runs, scoped to the actor's workspace (another workspace's: NotFoundError)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts_app.actor import Actor
from workflows_app.exceptions import NotFoundError
from workflows_app.models import Workflow, WorkflowRun


def workflow_list(*, actor: Actor) -> QuerySet[Workflow]:
    """Return the workspace's workflows, by name."""
    return Workflow.objects.filter(workspace=actor.workspace)


def workflow_get(*, actor: Actor, workflow_id: int) -> Workflow:
    """Return one of the workspace's workflows; raises NotFoundError for any other."""
    found = workflow_list(actor=actor).filter(pk=workflow_id).first()
    if found is None:
        raise NotFoundError("Workflow not found.")
    return found


def workflow_run_list(*, actor: Actor, workflow_id: int | None = None) -> QuerySet[WorkflowRun]:
    """Return the workspace's workflow runs, newest first (of one workflow when ``workflow_id`` is given)."""
    runs = WorkflowRun.objects.filter(workspace=actor.workspace)
    if workflow_id is not None:
        runs = runs.filter(workflow_id=workflow_get(actor=actor, workflow_id=workflow_id).pk)
    return runs


def workflow_run_get(*, actor: Actor, run_id: int) -> WorkflowRun:
    """Return one workflow run with its step runs; raises NotFoundError outside the workspace."""
    found = WorkflowRun.objects.filter(workspace=actor.workspace, pk=run_id).prefetch_related("step_runs").first()
    if found is None:
        raise NotFoundError("Workflow run not found.")
    return found
